"""Refusals as HTTP answers: the one table from a kind of error to a status.

Domain code raises :mod:`node.errors`' kinds (``NotFound``, ``Conflict``...) with a
stable reason code; :data:`STATUS` here is the only place a kind becomes a status,
for the API's error middleware and the pages alike (node/http/web/render.py).
``protocol``'s ``ProtocolError`` and ``hierarchy``'s ``HierarchyError`` are mapped
through :data:`FOREIGN` to a kind first. The body is always
``{"error": reason, "detail": human text, "field": name or null}``. Never a stack
trace: anything else (a bug, or a ``NodeError`` of no kind such as a
``StorageError``) is logged and answered 500 ``internal`` with no detail.

A full disk (``node.storage.disk_full``) is no bug of ours: any request (the
API's, the pages', the sync endpoints') that meets it is answered 503
``storage_full`` with ``Retry-After``, and logged as one WARNING line at most
once a minute. A client that goes away mid-request (a cut connection while its
body is read) is one INFO line, no traceback: nobody is left to answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType

from aiohttp import web

from hierarchy.errors import HierarchyError
from node.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NodeError,
    NotAllowed,
    NotFound,
    TooLarge,
    TooMany,
    Unauthenticated,
    Unavailable,
    Unsupported,
)
from node.errors import bad as bad  # re-exported for validate.py's raise lines
from node.storage.disk_full import storage_full
from protocol.errors import ProtocolError

logger = logging.getLogger(__name__)

STATUS: Mapping[type[NodeError], int] = MappingProxyType(
    {
        Invalid: 400,
        Unauthenticated: 401,
        Forbidden: 403,
        NotFound: 404,
        NotAllowed: 405,
        Conflict: 409,
        TooLarge: 413,
        Unsupported: 415,
        TooMany: 429,
        Unavailable: 503,
    }
)
"""The HTTP status of each kind of refusal (``node.errors.KINDS``, all of them):
the only such table. A ``NodeError`` of no kind is no refusal: 500 ``internal``."""

INTERNAL = 500
"""Anything that is not a refusal: logged, answered ``internal`` with no detail."""

FOREIGN: Mapping[type[Exception], type[NodeError]] = MappingProxyType(
    {ProtocolError: Invalid, HierarchyError: Forbidden}
)
"""The kind of the other packages' error roots when one reaches a request."""


def kind_of(error: NodeError) -> type[NodeError] | None:
    """The kind in :data:`STATUS` that ``error`` is of, or None."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return cls
    return None


def refusal(exc: BaseException) -> NodeError | None:
    """``exc`` as a refusal that :data:`STATUS` maps, or None: not a refusal (500)."""
    if isinstance(exc, NodeError):
        return exc if kind_of(exc) is not None else None
    for root, kind in FOREIGN.items():
        if isinstance(exc, root):
            return kind(exc.reason, exc.detail)  # type: ignore[attr-defined]
    return None


def status_of(error: NodeError) -> int:
    """The HTTP status of ``error``: its kind's, else 500."""
    kind = kind_of(error)
    return STATUS[kind] if kind is not None else INTERNAL


def seconds(value: float) -> str:
    """A ``Retry-After`` value: whole seconds, rounded up."""
    return str(math.ceil(value))


def response(error: NodeError) -> web.Response:
    """The JSON answer of a refusal, with ``Retry-After`` when it says when."""
    return _json(status_of(error), error.reason, error.detail, error.field, error.retry_after)


def _json(
    status: int, reason: str, detail: str, field: str | None, retry_after: float | None = None
) -> web.Response:
    answer = web.json_response(
        {"error": reason, "detail": detail, "field": field}, status=status, dumps=_dumps
    )
    if retry_after is not None:
        answer.headers["Retry-After"] = seconds(retry_after)
    return answer


def kind_for(status: int) -> type[NodeError] | None:
    """The kind that :data:`STATUS` answers ``status`` for, or None."""
    return next((kind for kind, code in STATUS.items() if code == status), None)


def ApiError(status: int, reason: str, detail: str = "", field: str | None = None) -> NodeError:
    """The refusal of ``status``'s kind: the old spelling, kept for the request
    checks of node/http/api/validate.py. New code raises the kinds themselves."""
    kind = kind_for(status)
    if kind is None:
        raise ValueError(f"no kind of refusal is answered HTTP {status}")
    return kind(reason, detail, field)


STORAGE_FULL_RETRY_SECONDS = 30
"""``Retry-After`` of a 503 ``storage_full``: a child's sync backs off at least this."""
STORAGE_FULL_LOG_SECONDS = 60.0


class StorageFullNotice:
    """When a full disk was last logged (loop time), so it is logged once a minute."""

    def __init__(self) -> None:
        self.logged_at: float | None = None
        self.refused = 0

    def due(self, now: float) -> bool:
        self.refused += 1
        if self.logged_at is None or now - self.logged_at >= STORAGE_FULL_LOG_SECONDS:
            self.logged_at = now
            return True
        return False


STORAGE_NOTICE = web.AppKey("storage_full_notice", StorageFullNotice)


def _dumps(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from the request, echoed as a field name
        return json.dumps(value)
    return text


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_REASONS: Mapping[type[NodeError], str] = {
    NotFound: "not_found",
    NotAllowed: "method_not_allowed",
}
"""The reason of aiohttp's own refusals (no such path, a method the path does not
take) by their kind; any other is ``http_error``."""


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge as exc:
        return response(TooLarge("too_large", exc.text or "request body too large"))
    except web.HTTPException as exc:
        if isinstance(exc, web.HTTPError) and request.path.startswith("/api/"):
            return _http_answer(exc)
        raise
    except ConnectionResetError as exc:  # aiohttp's ClientConnectionResetError too
        logger.info("%s %s from %s: the client went away mid-request (%s)",
                    request.method, request.path, request.remote, exc or type(exc).__name__)
        # Nobody reads this answer; returned (not raised) so aiohttp logs no traceback.
        return response(Invalid("connection_reset", "the request was cut"))
    except Exception as exc:
        error = refusal(exc)
        if error is not None:
            logger.info(
                "%s %s refused: %s %s", request.method, request.path, error.reason, error.detail
            )
            return response(error)
        if storage_full(exc):
            return response(storage_full_error(request, exc))
        logger.exception("%s %s failed", request.method, request.path)
        return _internal()


def _internal() -> web.Response:
    return _json(INTERNAL, "internal", "the server failed; the error is logged", None)


def _http_answer(exc: web.HTTPException) -> web.Response:
    """aiohttp's own 4xx/5xx under /api/ (no such path, a method the path does not
    take...) as the refusal of its status's kind; a 4xx of no kind is a 400."""
    kind = kind_for(exc.status) or (Invalid if isinstance(exc, web.HTTPClientError) else None)
    if kind is None:
        return _internal()
    return response(kind(_HTTP_REASONS.get(kind, "http_error"), exc.reason))


def storage_full_error(request: web.Request, exc: BaseException) -> Unavailable:
    """The 503 ``storage_full`` refusal for ``exc`` (a full disk), logged at most once
    a minute; the pages render it in words (node/http/web/render.py)."""
    notice = request.app.get(STORAGE_NOTICE)
    if notice is None or notice.due(asyncio.get_running_loop().time()):
        logger.warning(
            "storage full: %s %s answered 503 storage_full (%d refused so far): %s",
            request.method, request.path, notice.refused if notice else 1,
            str(exc).replace("\n", " ")[:300],
        )
    return Unavailable(
        "storage_full",
        "the node's disk is full; try again later (the error is logged)",
        retry_after=STORAGE_FULL_RETRY_SECONDS,
    )
