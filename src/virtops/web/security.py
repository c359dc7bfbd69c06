"""What every request and answer of the web console passes through, before any route: the
same-origin check of requests that change something (CSRF), and the security headers.

SameSite=strict keeps other *sites* from sending the session cookie, but a page on another port
of the same host is the same site. So every state-changing request (any method but GET, HEAD and
OPTIONS; any path, body or not, any content type) must come from this server's own pages: its
Origin (else its Referer) names this server, or, from a script that sends neither, it carries the
session's CSRF token in X-CSRF-Token. The pages send the token too; a token that is sent must be
the session's. The routes then check the session itself (auth.require_login).
"""
from __future__ import annotations

import hmac
import re
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from virtops.web.auth import COOKIE, Session

TOKEN_HEADER = "x-csrf-token"
MAX_BODY_BYTES = 4 << 20  # the biggest body a route reads (a network's or VM's XML is a few KiB)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",  # xterm.js writes its colours into <style> elements; no script can
    "img-src 'self' data: blob:", "connect-src 'self'", "object-src 'none'", "base-uri 'none'",
    "form-action 'self'", "frame-ancestors 'none'"])
SECURITY_HEADERS = [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode()), (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                    (b"cross-origin-opener-policy", b"same-origin")]


def same_origin(url: str | None, host: str | None) -> bool:
    """Whether a browser's Origin or Referer names this server (its Host): scheme, then host and
    port. An address whose host part holds anything odd is not ours."""
    if not url or not host:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower() and "@" not in parts.netloc


def forgery_refusal(scope: Scope) -> str | None:
    """Why a state-changing request is refused as a possible forgery, or None."""
    if scope["method"] in SAFE_METHODS:
        return None
    headers = Headers(scope=scope)
    host, origin, referer = headers.get("host"), headers.get("origin"), headers.get("referer")
    if origin is not None:
        if not same_origin(origin, host):
            return f"request: refused, it comes from a page of {origin[:80]!r}; changes are accepted only from this server's own pages."
    elif referer is not None:
        if not same_origin(referer, host):
            return "request: refused, it comes from a page of another server; changes are accepted only from this server's own pages."
    token = headers.get(TOKEN_HEADER)
    session = _session(scope, headers)
    if token is not None and session is not None and not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
        return "X-CSRF-Token: not the token of this session; send the csrf_token the login answered."
    if origin is None and referer is None and scope["path"] != "/login" and session is not None and token is None:
        return ("request: refused, it names no origin and carries no X-CSRF-Token; "
                "send the csrf_token the login answered in an X-CSRF-Token header.")
    return None  # without a live session, the route answers 401 (or logs in)


def _session(scope: Scope, headers: Headers) -> Session | None:
    """The live session the request's cookie names, if any (Starlette's own cookie parser)."""
    session_id = cookie_parser(headers.get("cookie", "")).get(COOKIE)
    return scope["app"].state.sessions.find(session_id, touch=False)


class Guard:
    """ASGI middleware: refuses forgeries (403, the API's shape) and adds the security headers
    to every HTTP answer."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        refusal, status = forgery_refusal(scope), 403
        streamed = is_streamed_upload(scope)
        if refusal is None and not streamed and _declared_length(scope) > MAX_BODY_BYTES:
            refusal, status = TOO_LARGE, 413
        if refusal is not None:
            await JSONResponse({"error": refusal, "field": None}, status_code=status)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive if streamed else _bounded(receive), send_with_headers)


# A volume's image (PUT .../volumes/VOL/content) is the one body no limit fits: the route streams
# it to the daemon piece by piece, and the core refuses one larger than the volume.
STREAMED_UPLOAD = re.compile(r"/api(/hosts/[^/]+)?/pools/[^/]+/volumes/[^/]+/content")


def is_streamed_upload(scope: Scope) -> bool:
    return scope["method"] == "PUT" and STREAMED_UPLOAD.fullmatch(scope["path"]) is not None


TOO_LARGE = f"body: larger than {MAX_BODY_BYTES >> 20} MiB; send a smaller one."


class BodyTooLarge(Exception):
    """A body without Content-Length that grew past MAX_BODY_BYTES: answered 413 (app.py)."""


def _declared_length(scope: Scope) -> int:
    length = Headers(scope=scope).get("content-length", "0")
    return int(length) if length.isdigit() else 0


def _bounded(receive: Receive) -> Receive:
    """The request's body as the route reads it, refused once past MAX_BODY_BYTES (a chunked
    body names no length in advance)."""
    seen = 0

    async def receive_bounded() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > MAX_BODY_BYTES:
            raise BodyTooLarge()
        return message

    return receive_bounded
