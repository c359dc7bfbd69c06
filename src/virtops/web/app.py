"""The web console (`virtops serve`): virt-manager's windows in a browser, over the REST API.

Pages are rendered once from templates and fill themselves from /api with app.js; they listen
to /api/events (libvirt's events) and redraw what changed, with no polling.
"""
from __future__ import annotations

import asyncio
import contextlib
import secrets
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from starlette.middleware.sessions import SessionMiddleware

from virtops import __version__
from virtops.base.errors import VirtopsError
from virtops.host import Host
from virtops.web import api
from virtops.web.auth import SESSION_KEY, NotLoggedIn, logged_in, password_matches
from virtops.web.events import EventHub

HERE = Path(__file__).parent
WRONG_PASSWORD_DELAY_S = 1.0
PAGES = {"overview": "Host", "pools": "Storage", "networks": "Networks", "vms": "Virtual machines"}
templates = Jinja2Templates(directory=HERE / "templates")


class Login(BaseModel):
    password: str


def create_app(host: Host, password: str, secure_cookies: bool = False) -> FastAPI:
    """The app for one host, whose connection must run libvirt's event loop (Host's default):
    keepalive, and the events of EventHub. The app closes the host when it stops. Behind HTTPS,
    secure_cookies keeps the session cookie off plain HTTP."""
    events = EventHub()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        events.start(lambda: host.conn, asyncio.get_running_loop())
        try:
            yield
        finally:
            with contextlib.suppress(VirtopsError):  # a daemon gone for good: nothing to deregister
                events.stop(host.conn)
            host.close()

    app = FastAPI(title="virtops", version=__version__, lifespan=lifespan,
                  description="Pools, volumes, networks and the disks and NICs of VMs on a libvirt host. "
                              "Log in with POST /login first; the session cookie then authorises /api.")
    app.state.host, app.state.events, app.state.password = host, events, password
    app.add_middleware(SessionMiddleware, secret_key=secrets.token_urlsafe(32), session_cookie="virtops_session",
                       same_site="strict", https_only=secure_cookies, max_age=12 * 3600)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.mount("/vendor", StaticFiles(directory=HERE / "node_modules", check_dir=False), name="vendor")  # npm's
    app.include_router(api.router)
    _add_error_handlers(app)
    _add_pages(app)
    _add_console(app)
    return app


def same_origin(headers) -> bool:
    """A browser names the page that opens a WebSocket in Origin; it must be one of ours."""
    origin = headers.get("origin")
    return origin is None or origin.split("://", 1)[-1] == headers.get("host")


def _add_console(app: FastAPI) -> None:
    @app.websocket("/api/vms/{name}/console")
    async def console(websocket: WebSocket, name: str, force: bool = False):
        """A running VM's serial console: the guest's output as binary messages, keystrokes back
        as text or binary. Closes with code 4401 without login, 4409 when the VM refuses."""
        await websocket.accept()
        if websocket.session.get(SESSION_KEY) is not True:
            await websocket.close(code=4401, reason="log in first")
            return
        if not same_origin(websocket.headers):  # browsers let any page open a WebSocket anywhere
            await websocket.close(code=4403, reason="the console opens only from this server's own pages")
            return
        loop = asyncio.get_running_loop()
        output: asyncio.Queue[bytes] = asyncio.Queue()
        try:
            guest = await loop.run_in_executor(None, app.state.host.vms.console, name, force)
            guest.watch(lambda data: loop.call_soon_threadsafe(output.put_nowait, data))
        except VirtopsError as err:
            await websocket.close(code=4409, reason=str(err)[:120])
            return

        async def to_browser() -> None:
            while data := await output.get():
                await websocket.send_bytes(data)
            await websocket.close(code=1000, reason="the console closed")

        sender = asyncio.create_task(to_browser())
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                keys = message.get("bytes") or (message.get("text") or "").encode()
                await loop.run_in_executor(None, guest.write, keys)
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            await loop.run_in_executor(None, guest.close)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VirtopsError)
    async def refused(_request: Request, err: VirtopsError):
        return api.error_response(err)

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(_request: Request, _err: NotLoggedIn):
        return JSONResponse({"error": "log in first: POST /login with the server's password.", "field": None},
                            status_code=401)

    @app.exception_handler(RequestValidationError)
    async def malformed(_request: Request, err: RequestValidationError):
        """A request the API cannot even read: one sentence for the first problem, like the CLI's."""
        first = err.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        return JSONResponse({"error": f"{field or 'request'}: {first.get('msg', 'is not valid')}.", "field": field},
                            status_code=422)


def _add_pages(app: FastAPI) -> None:
    @app.post("/login", tags=["login"], responses={401: {"model": api.ApiError, "description": "wrong password"},
                                                    422: {"model": api.ApiError, "description": "no password given"}})
    async def login(request: Request, body: Login):
        if not password_matches(request, body.password):
            await asyncio.sleep(WRONG_PASSWORD_DELAY_S)  # guessing costs time; other requests go on
            return JSONResponse({"error": "password: that is not this server's password.", "field": "password"},
                                status_code=401)
        request.session[SESSION_KEY] = True
        return {"done": ["logged in"]}

    @app.post("/logout", tags=["login"])
    def logout(request: Request):
        request.session.clear()
        return {"done": ["logged out"]}

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request):
        return templates.TemplateResponse(request, "login.html", {"title": "Log in"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    @app.get("/", include_in_schema=False)
    def home():
        return RedirectResponse("/overview")

    @app.get("/{page}", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request, page: str):
        if page not in PAGES:
            return HTMLResponse("Not found", status_code=404)
        if not logged_in(request):
            return RedirectResponse(f"/login?next=/{page}")
        return templates.TemplateResponse(request, f"{page}.html",
                                          {"title": PAGES[page], "page": page, "pages": PAGES,
                                           "uri": app.state.host.uri})
