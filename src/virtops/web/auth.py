"""Login for the web console and its API: one password per server, sessions kept by the server.

The password comes from a file (`virtops serve --password-file`); without one, the server makes
a random one and prints it once on stderr. A changed password file ends every session.

The session cookie holds only a random id (HttpOnly, SameSite=strict); the session itself lives
in this process, so logging out, a changed password and a restart of `serve` end it, and it
expires when idle and at the end of its lifetime. Each session has a CSRF token that the pages
send back in a header (see security.py). Login attempts are rate-limited per client and overall.
"""
from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fastapi import Request
from starlette.requests import HTTPConnection

COOKIE = "virtops_session"
SESSION_IDLE_S = 3600  # an hour without a request
SESSION_MAX_S = 12 * 3600  # a working day, however busy
SESSIONS_MAX = 256  # a server holds at most this many; the oldest give way
LOGIN_TRIES_PER_CLIENT = 5  # failed logins one client may make within the lockout window
LOGIN_TRIES_OVERALL = 20  # ... and all clients together
LOGIN_LOCKOUT_S = 60
Clock = Callable[[], float]


def read_password(path: str | None) -> tuple[str, bool]:
    """(password, generated). The file's first line, without its newline."""
    if path is None:
        return secrets.token_urlsafe(18), True
    from virtops.base.errors import InvalidInput

    try:
        text = Path(path).read_text().splitlines()
    except OSError as err:
        raise InvalidInput("--password-file", f"cannot read {path} ({err.strerror}); give a readable file.") from err
    if not text or len(text[0]) < 8:
        raise InvalidInput("--password-file", f"{path} must hold a password of at least 8 characters on its first line.")
    return text[0], False


class Password:
    """The server's password; read again from its file when the file changes (a new password
    ends every session: see Sessions.end_all)."""

    def __init__(self, text: str, path: str | None = None):
        self._text, self._path = text, path
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            status = Path(self._path).stat() if self._path else None
        except OSError:
            return None
        return (status.st_mtime_ns, status.st_size) if status else None

    def changed(self) -> bool:
        """True once after the file's password changed (an unreadable or too short file keeps the old one)."""
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        from virtops.base.errors import InvalidInput

        try:
            text, _ = read_password(self._path)
        except InvalidInput:
            return False
        if text == self._text:
            return False
        self._text = text
        return True

    def matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._text.encode())


@dataclass
class Session:
    id: str
    csrf_token: str
    started: float
    seen: float


@dataclass
class Sessions:
    """The logged-in sessions of this server, by the random id in their cookie."""

    idle_s: float = SESSION_IDLE_S
    max_s: float = SESSION_MAX_S
    clock: Clock = time.monotonic
    _live: dict[str, Session] = field(default_factory=dict)

    def start(self) -> Session:
        now = self.clock()
        self._drop_expired(now)
        while len(self._live) >= SESSIONS_MAX:
            self._live.pop(next(iter(self._live)))  # dicts keep insertion order: the oldest first
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._live[session.id] = session
        return session

    def find(self, session_id: str | None, touch: bool = True) -> Session | None:
        """The live session of that id (touch: it is in use now), or None."""
        session = self._live.get(session_id or "")
        now = self.clock()
        if session is None or self._expired(session, now):
            self._live.pop(session_id or "", None)
            return None
        if touch:
            session.seen = now
        return session

    def end(self, session_id: str) -> None:
        self._live.pop(session_id, None)

    def end_all(self) -> None:
        self._live.clear()

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.seen > self.idle_s or now - session.started > self.max_s

    def _drop_expired(self, now: float) -> None:
        for session in [s for s in self._live.values() if self._expired(s, now)]:
            del self._live[session.id]


@dataclass
class LoginThrottle:
    """At most LOGIN_TRIES_PER_CLIENT failed logins per client and LOGIN_TRIES_OVERALL in all
    within any lockout window; beyond that, logins wait for the window to pass. An attempt counts
    from its arrival (as a failure until it succeeds), so parallel guesses cannot all slip in."""

    lockout_s: float = LOGIN_LOCKOUT_S
    clock: Clock = time.monotonic
    _by_client: dict[str, deque[float]] = field(default_factory=dict)
    _overall: deque[tuple[float, str]] = field(default_factory=deque)

    def admit(self, client: str) -> float | None:
        """None: the attempt may be tried (and is counted); else the seconds to wait."""
        now = self.clock()
        self._forget_before(now - self.lockout_s)
        mine = self._by_client.get(client, deque())
        if len(mine) >= LOGIN_TRIES_PER_CLIENT:
            return mine[0] + self.lockout_s - now
        if len(self._overall) >= LOGIN_TRIES_OVERALL:
            return self._overall[0][0] + self.lockout_s - now
        mine.append(now)
        self._by_client[client] = mine
        self._overall.append((now, client))
        return None

    def succeeded(self, client: str) -> None:
        """The right password: the client's own failures are forgiven."""
        self._by_client.pop(client, None)
        kept = [entry for entry in self._overall if entry[1] != client]
        self._overall.clear()
        self._overall.extend(kept)

    def _forget_before(self, horizon: float) -> None:
        while self._overall and self._overall[0][0] <= horizon:
            self._overall.popleft()
        for client, tries in list(self._by_client.items()):
            while tries and tries[0] <= horizon:
                tries.popleft()
            if not tries:
                del self._by_client[client]


class NotLoggedIn(Exception):
    """Answered as 401 {"error": ..., "field": null}, the shape of every refusal of the API."""


def refresh_password(state) -> None:
    """A changed password file ends every session (checked at each request: one stat)."""
    if state.password.changed():
        state.sessions.end_all()


def current_session(request: HTTPConnection, touch: bool = True) -> Session | None:
    """The live session of a request (or WebSocket)."""
    refresh_password(request.app.state)
    return request.app.state.sessions.find(request.cookies.get(COOKIE), touch=touch)


def require_login(request: Request) -> Session:
    """Every API route depends on this, except logging in."""
    session = current_session(request)
    if session is None:
        raise NotLoggedIn()
    return session
