"""A VM's screen in the web console: a PNG screenshot (thumbnails on the VM page) and the live
display for noVNC, a WebSocket that `serve` joins to the VM's VNC server (ops/screens.py: libvirt's
openGraphicsFD on a local host, an ssh tunnel to a qemu+ssh:// host, a connection inside a lab
host's namespace over its qemu+tcp:// remote URI), so that no VNC port is ever
opened beyond the host. The WebSocket's checks are the serial console's (web/sockets.py)."""
from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from virtops.base.errors import VirtopsError
from virtops.web import api
from virtops.web.sockets import admit, next_or_session_end, session_over

router = APIRouter(prefix="/api", dependencies=api.router.dependencies, responses=api.ERRORS)
CHUNK = 64 * 1024


@router.get("/vms/{name}/screenshot", response_class=Response, tags=["vms"],
            responses={200: {"content": {"image/png": {}}, "description": "the screen as a PNG"}})
def screenshot(request: Request, name: str, width: int | None = Query(None, ge=16, le=8192)):
    """The screen of a running VM with a display (`graphics: vnc`), as a PNG; `width` shrinks it."""
    from virtops.ops.screens import capture

    picture = capture(api.host_of(request), name)
    png = (picture.shrunk(width) if width else picture).png()
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


def add_display(app: FastAPI) -> None:
    app.include_router(router)

    @app.websocket("/api/vms/{name}/vnc")
    async def display(websocket: WebSocket, name: str):
        """The VM's VNC display (RFB) as binary messages both ways, for noVNC. Closes with 4401
        without login, 4403 from another site's page, 4409 when the VM has no display."""
        session = await admit(websocket, name, "screen")
        if session is None:
            return
        from virtops.ops.screens import open_display

        try:
            screen = await run_in_threadpool(lambda: open_display(api.host_of(websocket), name))
        except VirtopsError as err:
            await websocket.close(code=4409, reason=str(err)[:120])
            return
        await _join(websocket, session, screen)


async def _join(websocket: WebSocket, session, screen) -> None:
    """Bytes from the VNC server to the browser and back until either side ends or the session does."""
    loop = asyncio.get_running_loop()
    screen.sock.setblocking(False)
    frames: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)  # the browser's pace holds the server back

    async def read_server() -> None:
        while data := await loop.sock_recv(screen.sock, CHUNK):
            await frames.put(data)
        await frames.put(b"")

    async def to_browser() -> None:
        while (data := await next_or_session_end(websocket, session, frames)):
            await websocket.send_bytes(data)
        if data is not None:
            await websocket.close(code=1000, reason="the display closed")

    reader, sender = asyncio.create_task(read_server()), asyncio.create_task(to_browser())
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect" or sender.done():
                break
            if session_over(websocket, session):
                await websocket.close(code=4401, reason="the session ended")
                break
            data = message.get("bytes") or (message.get("text") or "").encode()
            await loop.sock_sendall(screen.sock, data)
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass
    finally:
        for task in (reader, sender):
            task.cancel()
        with contextlib.suppress(Exception):
            await websocket.close()
        await run_in_threadpool(screen.close)
