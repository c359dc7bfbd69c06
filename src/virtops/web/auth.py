"""Login for the web console and its API: one password per server, a signed session cookie.

The password comes from a file (`virtops serve --password-file`); without one, the server makes
a random one and prints it once on stderr. The cookie is SameSite=strict and HttpOnly, so
another site can neither read it nor make the browser send it: that is the CSRF defence.
"""
from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from fastapi import Request

SESSION_KEY = "virtops-user"


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


def password_matches(request: Request, given: str) -> bool:
    return hmac.compare_digest(given.encode(), request.app.state.password.encode())


def logged_in(request: Request) -> bool:
    return request.session.get(SESSION_KEY) is True


class NotLoggedIn(Exception):
    """Answered as 401 {"error": ..., "field": null}, the shape of every refusal of the API."""


def require_login(request: Request) -> None:
    """Every API route depends on this, except logging in."""
    if not logged_in(request):
        raise NotLoggedIn()
