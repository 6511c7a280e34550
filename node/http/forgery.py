"""Cross-site request forgery on the API: the session cookie counts only from this site.

A browser attaches the ``duban_session`` cookie to requests that other sites
make it send. ``SameSite=Lax`` keeps it off cross-site POSTs in current
browsers; this is the second lock, for older browsers and same-site attackers
(another application on a sibling host). On ``/api/`` every request that is not
GET, HEAD or OPTIONS and carries the cookie without a bearer token (an empty or
malformed ``Authorization`` header counts as none) must show that it comes from
this site:

1. an ``Origin`` header naming this site (browsers send it on every such
   request they make on a page's behalf); ``Origin: null`` or another site is
   refused whatever else the request carries;
2. without ``Origin``, a ``Referer`` on this site;
3. without either, the ``X-Duban-CSRF`` header (any value): scripts that keep
   a cookie jar send it. Another site cannot make a browser send a custom
   header without a CORS preflight, which this node never grants.

"This site" is the request's ``Host``, or behind a trusted proxy
(``http.trusted_proxies``) its ``X-Forwarded-Host`` too
(:func:`node.http.clients.names_this_site`). Refusals are 403 ``csrf_failed``,
the reason the pages use for their own forms. Bearer tokens are not sent by
browsers on their own, so they are not checked here; JSON bodies must be
``application/json`` for every caller (:func:`node.http.api.validate.read_json`),
which also keeps HTML forms (text/plain, urlencoded) away from JSON endpoints.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from node.errors import Forbidden
from node.http.clients import names_this_site

logger = logging.getLogger(__name__)

HEADER = "X-Duban-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def refusal(request: web.Request, cookie: str) -> str | None:
    """Why a request is not taken from this site (None when it is)."""
    if request.method in SAFE_METHODS or not request.path.startswith("/api/"):
        return None
    if cookie not in request.cookies or _bearer(request.headers.get("Authorization")):
        return None
    origin = request.headers.get("Origin")
    if origin is not None:
        if names_this_site(request, origin):
            return None
        return f"Origin {origin[:100]!r} is not this site: the session cookie counts only here"
    referer = request.headers.get("Referer")
    if referer is not None:
        if names_this_site(request, referer):
            return None
        return "the Referer is not this site: the session cookie counts only here"
    if request.headers.get(HEADER):
        return None
    return (
        "a request with the session cookie needs an Origin or Referer of this site, "
        f"or the {HEADER} header; scripts can use a bearer token instead"
    )


def _bearer(header: str | None) -> bool:
    """Whether ``header`` carries a bearer token: an empty or odd ``Authorization``
    header is no credential, and the cookie beside it must pass the check."""
    scheme, _, value = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and bool(value.strip())


def middleware(cookie: str) -> Middleware:
    """The check above as a middleware, for the session cookie named ``cookie``."""

    @web.middleware
    async def same_site(request: web.Request, handler: Handler) -> web.StreamResponse:
        why = refusal(request, cookie)
        if why is not None:
            logger.warning("%s %s: cross-site request refused", request.method, request.path)
            raise Forbidden("csrf_failed", why)
        return await handler(request)

    return same_site
