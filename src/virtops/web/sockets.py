"""What every WebSocket of the web console (the serial console, the screen) passes through before
it carries anything: a live login, a page of this server's own (browsers let any page open a
WebSocket anywhere, with the cookie), and a plain VM name. Closes with 4401, 4403 or 4409."""
from __future__ import annotations

import asyncio

from fastapi import WebSocket

from virtops.base.errors import VirtopsError
from virtops.web import api
from virtops.web.auth import Session, current_session
from virtops.web.security import same_origin

SESSION_CHECK_S = 5.0  # how soon an open console or screen notices that its session ended


async def admit(websocket: WebSocket, name: str, what: str) -> Session | None:
    """The session of an accepted WebSocket about VM `name`, or None once it is closed with the reason."""
    await websocket.accept()
    session = current_session(websocket)
    if session is None:
        await websocket.close(code=4401, reason="log in first")
        return None
    origin = websocket.headers.get("origin")
    if origin is not None and not same_origin(origin, websocket.headers.get("host")):
        await websocket.close(code=4403, reason=f"the {what} opens only from this server's own pages")
        return None
    try:
        api.check_route_parameter("name", name)
    except VirtopsError as err:
        await websocket.close(code=4409, reason=str(err)[:120])
        return None
    return session


def session_over(websocket: WebSocket, session: Session) -> bool:
    return websocket.app.state.sessions.find(session.id, touch=False) is None


async def next_or_session_end(websocket: WebSocket, session: Session, queue: asyncio.Queue):
    """The next item of `queue`; None once the session has ended (logged out or expired), checked
    every SESSION_CHECK_S, after closing the WebSocket with 4401."""
    while True:
        try:
            return await asyncio.wait_for(queue.get(), SESSION_CHECK_S)
        except asyncio.TimeoutError:
            if session_over(websocket, session):
                await websocket.close(code=4401, reason="the session ended")
                return None
