"""What every page shares: the signed-in person, the language, rendering and refusals.

Pages are the API's callers: they use ``node.http.api``'s functions for who is
signed in, the ledger, the workflow and validation, and translate the
refusals' reason codes into sentences (:meth:`node.http.web.i18n.I18n.error`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy.exc import SQLAlchemyError

from hierarchy.tree import Tree
from node.errors import KINDS, Forbidden, NodeError, TooLarge, Unauthenticated
from node.http.api.auth import current_user
from node.http.api.todo import who_of
from node.http.errors import refusal, seconds, status_of, storage_full_error
from node.http.services import CLOCK, TODO, TREE, WORKFLOW
from node.http.web import csrf, i18n
from node.queries.todo import waiting_counts
from node.storage.accounts import User
from node.storage.disk_full import storage_full
from node.workflow.actions import Workflow

logger = logging.getLogger(__name__)

STATIC_URL = web.AppKey("duban_static_url", dict)
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
YEAR_S = 365 * 86400

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def workflow(request: web.Request) -> Workflow:
    return request.app[WORKFLOW]


def translator(request: web.Request) -> i18n.I18n:
    return i18n.I18n(i18n.choose(request)[0])


def node_name(tree: Tree, node: str | None) -> str:
    if node is None:
        return ""
    found = tree.get(node)
    return found.name if found is not None else node


HOME = "/ledger"
_NEXT_MAX = 2000
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+\Z")
_UNSAFE_DECODED = re.compile(r"[\x00-\x20\x7f\\\s]")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: an absolute path on this site, else the home page.

    Browsers drop tabs and newlines from URLs and read ``\\`` as ``/``, so
    ``/<tab>/evil.example`` or ``/\\evil.example`` would leave the site. Only
    printable ASCII is taken (the sign-in redirect sends the percent-encoded
    ``path_qs``); the value, and each percent-decoding of it, must be a path that
    starts with one ``/`` and holds no backslash, space or control character, with
    no scheme and no host.
    """
    if not value or len(value) > _NEXT_MAX or not _PRINTABLE_ASCII.match(value):
        return HOME
    seen = value
    for _ in range(4):
        if not _local_path(seen):
            return HOME
        decoded = unquote(seen)
        if decoded == seen:
            return value
        seen = decoded
    return HOME  # still percent-encoded after several decodings: not a link of ours


def _local_path(value: str) -> bool:
    if not value.startswith("/") or value[1:2] in ("/", "\\"):
        return False
    if _UNSAFE_DECODED.search(value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def login_redirect(request: web.Request) -> web.HTTPSeeOther:
    return web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))


async def signed_in(request: web.Request) -> User | None:
    """The person of the session cookie, or None (not signed in, expired, disabled)."""
    try:
        return await current_user(request)
    except Unauthenticated:
        return None


def page(handler: Callable[[web.Request, User], Awaitable[web.StreamResponse]]) -> Handler:
    """A page for signed-in people: others go to the sign-in page; refusals become pages,
    with the status the API would answer (``node.http.errors.STATUS``)."""

    @wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        user = await signed_in(request)
        if user is None:
            raise login_redirect(request)
        try:
            return await handler(request, user)
        except Unauthenticated:
            raise login_redirect(request) from None
        except Exception as exc:
            error = refusal(exc)
            if error is None:
                raise
            return await render(request, "error.html", status=status_of(error), error=error)

    return wrapped


async def form_of(request: web.Request, *, login: bool = False) -> MultiDictProxy[Any]:
    """The posted form, after the CSRF check (``Forbidden`` ``csrf_failed``)."""
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge("too_large", "the form is too large", "attachments") from None
    check = csrf.valid_login if login else csrf.valid
    if not check(request, form.get(csrf.FIELD)):  # type: ignore[arg-type]
        logger.warning("%s %s: CSRF check failed", request.method, request.path)
        raise Forbidden("csrf_failed", "the form's token is missing or wrong")
    return form


_NOT_PAGES = ("/api/", "/sync/", "/enroll/", "/static/")


@web.middleware
async def storage_full_page(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A page (a form's POST above all: sign-in writes a session row) that meets a full
    disk answers the 503 ``storage_full`` as a page in the person's language, with
    ``Retry-After``; the API's error middleware answers everything else as JSON."""
    try:
        return await handler(request)
    except Exception as exc:
        if request.path.startswith(_NOT_PAGES) or not storage_full(exc):
            raise
        error = storage_full_error(request, exc)
        page = await render(request, "error.html", status=status_of(error), error=error)
        if error.retry_after is not None:
            page.headers["Retry-After"] = seconds(error.retry_after)
        return page


def lang_switch_url(request: web.Request, lang: str) -> str:
    query = {k: v for k, v in request.query.items() if k != "lang"}
    query["lang"] = "en" if lang == "zh-CN" else "zh-CN"
    return request.path + "?" + urlencode(query)


async def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """A page in the chosen language with the shared frame's values."""
    lang, remember = i18n.choose(request)
    t = i18n.I18n(lang)
    tree = request.app[TREE]
    certificate = tree.trust.current(tree.me)
    user = context.pop("user", None)
    if user is None:
        try:
            user = await signed_in(request)
        except KINDS:
            user = None
    base: dict[str, Any] = {
        "t": t,
        "_": t,
        "user": user,
        "csrf_field": csrf.FIELD,
        "csrf_token": csrf.token_for(request),
        "node_id": tree.me,
        "node_name": certificate.name,
        "node_level": certificate.level,
        "now": request.app[CLOCK].now_ms(),
        "nav": context.pop("nav", ""),
        "lang_url": lang_switch_url(request, lang),
        "css_url": request.app[STATIC_URL]["css"],
        "error": None,
        "notice": None,
        "waiting": await waiting(request, user),
    }
    error = context.get("error")
    if isinstance(error, NodeError):
        context["error"] = error_message(t, error)
        context["error_detail"] = error.detail
        context["error_field"] = error.field
    base["error_detail"] = None
    base["error_field"] = None
    response = aiohttp_jinja2.render_template(
        template, request, {**base, **context}, status=status
    )
    if remember:
        response.set_cookie(i18n.COOKIE, lang, max_age=YEAR_S, samesite="Lax", path="/")
    response.headers.update(_SECURITY_HEADERS)
    return response


async def waiting(request: web.Request, user: User | None) -> dict[str, int] | None:
    """The navigation's counts for ``user``: things to do, unread messages (one query).
    None when nobody is signed in, or when the database cannot answer (the page still
    shows: the count is a convenience, never a reason to fail a page)."""
    if user is None:
        return None
    try:
        todo, unread = await waiting_counts(request.app[TODO], who_of(user))
    except (SQLAlchemyError, OSError) as exc:
        logger.warning("navigation counts for %s not read: %s", user.name, exc)
        return None
    return {"todo": todo, "unread": unread}


def error_message(t: i18n.I18n, error: NodeError) -> str:
    """A refusal in the person's language; ``wait`` is its ``Retry-After`` seconds."""
    wait = seconds(error.retry_after) if error.retry_after is not None else ""
    return t.error(error.reason, error.field, wait=wait)
