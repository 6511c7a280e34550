"""Cross-site request forgery: every page form carries a token checked on POST.

The session cookie is already ``SameSite=Lax``, so a cross-site POST does not
carry it in current browsers; the token is the second lock, for older browsers
and same-site attackers. It is an HMAC of the session id (which only the
browser holding the httponly cookie knows), so it needs no storage, lives as
long as the session and works on every process of a node.

Before sign-in there is no session: the sign-in form uses a random value in a
short-lived cookie and the same value in the form (double submit).

A POST whose ``Origin`` header names another site (or is ``null``) is refused
whatever it carries; ``X-Forwarded-Host`` names this site only when a trusted
proxy sends it (``http.trusted_proxies``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aiohttp import web

from node.http.api.auth import COOKIE as SESSION_COOKIE
from node.http.clients import names_this_site

FIELD = "csrf_token"
LOGIN_COOKIE = "duban_login_csrf"
_LABEL = b"duban page form v1"


def session_token(session: str) -> str:
    return hmac.new(session.encode("utf-8", "replace"), _LABEL, hashlib.sha256).hexdigest()


def token_for(request: web.Request) -> str:
    """The token for forms on this page ("" when not signed in)."""
    session = request.cookies.get(SESSION_COOKIE)
    return session_token(session) if session else ""


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def same_origin(request: web.Request) -> bool:
    """False when the browser says the form came from another site (``X-Forwarded-Host``
    counts only from a trusted proxy: :mod:`node.http.clients`)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return names_this_site(request, origin)


def valid(request: web.Request, submitted: str | None) -> bool:
    """The form's token matches this browser's session and the form came from here."""
    expected = token_for(request)
    return (
        bool(expected and submitted)
        and hmac.compare_digest(expected, str(submitted))
        and same_origin(request)
    )


def valid_login(request: web.Request, submitted: str | None) -> bool:
    expected = request.cookies.get(LOGIN_COOKIE)
    return (
        bool(expected and submitted)
        and hmac.compare_digest(str(expected), str(submitted))
        and same_origin(request)
    )
