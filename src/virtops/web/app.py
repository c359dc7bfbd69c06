"""The web console (`virtops serve`): virt-manager's windows in a browser, over the REST API.

Pages are rendered once from templates and fill themselves from /api with app.js; they listen
to /api/events (libvirt's events) and redraw what changed, with no polling.
"""
from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager
from pathlib import Path

import logging
import re

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from virtops import __version__
from virtops.base.errors import VirtopsError
from virtops.host import Host
from virtops.web import api
from virtops.web.auth import (COOKIE, LoginThrottle, NotLoggedIn, Password, Sessions, current_session, refresh_password,
                              require_login)
from virtops.web.fleet import SCOPE_KEY, Fleet, HostPaths, served_of
from virtops.web import fleetapi
from virtops.web.history import add_history
from virtops.web.objects import add_object_pages, page_base
from virtops.web.screen import add_display
from virtops.web.refusals import body_model, http_refusal, validation_refusal
from virtops.web.security import TOO_LARGE, BodyTooLarge, Guard
from virtops.web.sockets import admit, next_or_session_end, session_over
from virtops.ops.vm import NEW_DISK_FORMAT
from virtops.xmlmodels.values import DISK_BUSES, NIC_MODELS, VOLUME_FORMATS

HERE = Path(__file__).parent
WRONG_PASSWORD_DELAY_S = 1.0
PAGES = {"overview": "Host", "pools": "Storage", "networks": "Networks", "vms": "Virtual machines"}
FLEET_PAGES = {"fleet": "Fleet", "fleet-vms": "All VMs", "fleet-networks": "All networks", "fleet-pools": "All storage"}
LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9._~/:-]*")  # a path on this server: no scheme, no //host, no \\
# (a colon is safe after the leading slash, and fleet pages have one: /hosts/lab:NAME/vms)
templates = Jinja2Templates(directory=HERE / "templates")
log = logging.getLogger(__name__)


class Login(api.Body):
    password: str


class LoginAnswer(api.Done):
    csrf_token: str


def create_app(host: Host | Fleet, password: Password | str, secure_cookies: bool = False,
               sessions: Sessions | None = None, throttle: LoginThrottle | None = None) -> FastAPI:
    """The app for one host, or for a fleet of them (web/fleet.py), whose connections must run
    libvirt's event loop (Host's default): keepalive, and the events of EventHub. The app closes
    the hosts when it stops. Behind HTTPS, secure_cookies keeps the session cookie off plain HTTP."""
    fleet = host if isinstance(host, Fleet) else Fleet.single(host)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        fleet.start(asyncio.get_running_loop())
        app.state.history.start()
        try:
            yield
        finally:
            await app.state.history.stop()
            with contextlib.suppress(VirtopsError):  # a daemon gone for good: nothing to deregister
                fleet.stop()

    app = FastAPI(title="virtops", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Pools, volumes, networks and the disks and NICs of VMs on a libvirt host. "
                              "Log in with POST /login first; the session cookie then authorises /api, and "
                              "every change also sends the login's csrf_token in an X-CSRF-Token header.")
    app.state.fleet = fleet
    app.state.host, app.state.events = fleet.default.host, fleet.default.events
    app.state.password = password if isinstance(password, Password) else Password(password)
    app.state.sessions, app.state.throttle = sessions or Sessions(), throttle or LoginThrottle()
    app.state.secure_cookies = secure_cookies
    app.add_middleware(Guard)
    app.add_middleware(HostPaths)  # outermost: /api/hosts/NAME/... is /api/... of host NAME for all the rest
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.mount("/vendor", StaticFiles(directory=HERE / "node_modules", check_dir=False), name="vendor")  # npm's
    app.include_router(fleetapi.router)  # before api.router: /api/hosts is not /api/{anything}
    app.include_router(api.router)
    _add_error_handlers(app)
    _add_pages(app)
    _add_console(app)
    add_display(app)
    app.state.history = add_history(app, {name: served.history_host for name, served in fleet.hosts.items()},
                                    lazy=fleet.is_fleet)
    return app


def _add_console(app: FastAPI) -> None:
    @app.websocket("/api/vms/{name}/console")
    async def console(websocket: WebSocket, name: str, force: bool = False):
        """A running VM's serial console: the guest's output as binary messages, keystrokes back
        as text or binary. Closes with code 4401 without login, 4409 when the VM refuses."""
        session = await admit(websocket, name, "console")
        if session is None:
            return
        loop = asyncio.get_running_loop()
        output: asyncio.Queue[bytes] = asyncio.Queue()
        try:
            guest = await loop.run_in_executor(None, lambda: api.host_of(websocket).vms.console(name, force))
            guest.watch(lambda data: loop.call_soon_threadsafe(output.put_nowait, data))
        except VirtopsError as err:
            await websocket.close(code=4409, reason=str(err)[:120])
            return

        async def to_browser() -> None:
            while True:
                data = await next_or_session_end(websocket, session, output)
                if data is None:
                    return
                if not data:
                    break
                await websocket.send_bytes(data)
            await websocket.close(code=1000, reason="the console closed")

        sender = asyncio.create_task(to_browser())
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if session_over(websocket, session):
                    await websocket.close(code=4401, reason="the session ended")
                    break
                keys = message.get("bytes") or (message.get("text") or "").encode()
                await loop.run_in_executor(None, guest.write, keys)
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            await loop.run_in_executor(None, guest.close)


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal in the API's one shape: {"error": one sentence, "field": ... or null}."""
    @app.exception_handler(VirtopsError)
    async def refused(_request: Request, err: VirtopsError):
        return api.error_response(err)

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(_request: Request, _err: NotLoggedIn):
        return api.refusal(401, "log in first: POST /login with the server's password.")

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, err: RequestValidationError):
        """A request the API cannot even read: one sentence for the first problem, like the CLI's."""
        field, sentence = validation_refusal(list(err.errors()), err.body, body_model(request.scope.get("route")))
        return api.refusal(422, sentence, field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        allow = allowed_methods(request) if err.status_code == 405 else None
        sentence = http_refusal(err.status_code, request.method, request.url.path, allow)
        return api.refusal(err.status_code, sentence, headers={"Allow": allow} if allow else err.headers)

    @app.exception_handler(BodyTooLarge)
    async def too_large(_request: Request, _err: BodyTooLarge):
        return api.refusal(413, TOO_LARGE)

    @app.exception_handler(Exception)
    async def failed(request: Request, err: Exception):
        """A bug: the user gets a sentence, the server's log the traceback."""
        log.error("%s %s failed", request.method, request.url.path, exc_info=err)
        return api.refusal(500, f"request: the server failed ({type(err).__name__}); its log has the details.")


def allowed_methods(request: Request) -> str:
    """Every method some route of this path accepts (Starlette's Allow names only the first route's)."""
    from starlette.routing import Match

    methods = [method for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
               if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in request.app.routes)]
    return ", ".join(methods) or "none"


def safe_next(target: str | None) -> str:
    """Where the login page may go after logging in: a path on this server, else "/"."""
    return target if target and LOCAL_PATH.fullmatch(target) else "/"


def _add_pages(app: FastAPI) -> None:
    @app.post("/login", tags=["login"], response_model=LoginAnswer,
              responses={401: {"model": api.ApiError, "description": "wrong password"},
                         403: {"model": api.ApiError, "description": "from another site's page"},
                         422: {"model": api.ApiError, "description": "no password given"},
                         429: {"model": api.ApiError, "description": "too many failed logins: wait for Retry-After"}})
    async def login(request: Request, body: Login):
        """Answers the session cookie, and the csrf_token that every change must send back in an
        X-CSRF-Token header (unless it comes from the console's own pages, which do that themselves)."""
        client = request.client.host if request.client else "unknown"
        wait_s = app.state.throttle.admit(client)
        if wait_s is not None:  # checked before the password: a locked-out guess learns nothing
            seconds = max(1, round(wait_s + 0.5))
            return api.refusal(429, f"password: too many failed logins; try again in {seconds} seconds.", "password",
                               headers={"Retry-After": str(seconds)})
        refresh_password(app.state)
        if not app.state.password.matches(body.password):
            await asyncio.sleep(WRONG_PASSWORD_DELAY_S)  # guessing costs time; other requests go on
            return api.refusal(401, "password: that is not this server's password.", "password")
        app.state.throttle.succeeded(client)
        old = request.cookies.get(COOKIE)
        if old:
            app.state.sessions.end(old)  # a new login never keeps an id the browser had before
        session = app.state.sessions.start()
        answer = JSONResponse(LoginAnswer(done=["logged in"], csrf_token=session.csrf_token).model_dump())
        answer.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", secure=app.state.secure_cookies,
                          max_age=int(app.state.sessions.max_s), path="/")
        return answer

    @app.post("/logout", tags=["login"], response_model=api.Done, responses=api.ERRORS)
    def logout(request: Request):
        session = require_login(request)
        app.state.sessions.end(session.id)
        answer = JSONResponse(api.Done(done=["logged out"]).model_dump())
        answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=app.state.secure_cookies)
        return answer

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str = "/"):
        return templates.TemplateResponse(request, "login.html", {"title": "Log in", "next": safe_next(next)})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    @app.get("/", include_in_schema=False)
    def home(request: Request):
        if request.scope.get(SCOPE_KEY) is None and app.state.fleet.is_fleet:
            return RedirectResponse("/fleet")
        return RedirectResponse(f"{page_base(request)}/overview")

    @app.get("/{page}", response_class=HTMLResponse, include_in_schema=False)
    def page(request: Request, page: str):
        scoped = request.scope.get(SCOPE_KEY) is not None
        if page not in PAGES and (page not in FLEET_PAGES or scoped):
            raise StarletteHTTPException(404)
        served_of(request)  # an unknown host: 404 in the API's shape
        session = current_session(request)
        if session is None:
            return RedirectResponse(f"/login?next={page_base(request)}/{page}")
        template = f"{page}.html" if page in PAGES or page == "fleet" else "fleetlist.html"
        return templates.TemplateResponse(request, template, page_context(request, session, page,
                                                                          PAGES.get(page) or FLEET_PAGES[page]))

    add_object_pages(app, templates, page_context)


def page_context(request: Request, session, page: str, title: str) -> dict:
    """What every page's template is given: a host's pages (PAGES, object pages) or the fleet's."""
    fleet, served, scoped = request.app.state.fleet, served_of(request), request.scope.get(SCOPE_KEY) is not None
    hosts_page = page in PAGES
    return {
        "title": title, "page": page, "pages": PAGES, "csrf_token": session.csrf_token,
        "uri": served.uri if hosts_page else f"{len(fleet.hosts)} hosts",
        "fleet_pages": FLEET_PAGES if fleet.is_fleet else {}, "host_name": served.name if fleet.is_fleet else "",
        "base": page_base(request) if hosts_page else f"/hosts/{served.path}",
        "api_base": f"/api/hosts/{served.path}" if scoped else "/api",
        "hosts": [entry.name for entry in fleet.hosts.values()] if fleet.is_fleet else [],
        "disk_buses": DISK_BUSES, "nic_models": NIC_MODELS, "volume_formats": VOLUME_FORMATS,
        "new_disk_format": NEW_DISK_FORMAT}  # the VM page's forms offer the core's own values and defaults


