"""API refusals: one JSON shape, a stable reason code, the field when there is one.

``{"error": reason, "detail": human text, "field": name or null}`` with 400
(bad input), 401 (who are you?), 403 (not allowed), 404, 409 (does not fit the
item's state), 413, 429 or 503. Never a stack trace: unexpected errors are logged
and answered 500 ``internal`` with no detail.

A full disk (``node.storage.disk_full``) is no bug of ours: any request (the
API's, the pages', the sync endpoints') that meets it is answered 503
``storage_full`` with ``Retry-After``, and logged as one WARNING line at most
once a minute. A client that goes away mid-request (a cut connection while its
body is read) is one INFO line, no traceback: nobody is left to answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from node.storage.disk_full import storage_full

logger = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, reason: str, detail: str = "", field: str | None = None):
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail
        self.field = field
        self.retry_after: int | None = None

    def response(self) -> web.Response:
        response = web.json_response(
            {"error": self.reason, "detail": self.detail, "field": self.field},
            status=self.status,
            dumps=_dumps,
        )
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response


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


def bad(field: str, detail: str, reason: str = "bad_field") -> ApiError:
    return ApiError(400, reason, f"{field}: {detail}", field)


def _dumps(value: object) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from the request, echoed as a field name
        return json.dumps(value)
    return text


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.status >= 400:
            logger.info(
                "%s %s refused: %s %s", request.method, request.path, exc.reason, exc.detail
            )
        return exc.response()
    except web.HTTPRequestEntityTooLarge as exc:
        return ApiError(413, "too_large", exc.text or "request body too large").response()
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api/"):
            reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
            return ApiError(exc.status, reason, exc.reason).response()
        raise
    except ConnectionResetError as exc:  # aiohttp's ClientConnectionResetError too
        logger.info("%s %s from %s: the client went away mid-request (%s)",
                    request.method, request.path, request.remote, exc or type(exc).__name__)
        # Nobody reads this answer; returned (not raised) so aiohttp logs no traceback.
        return ApiError(400, "connection_reset", "the request was cut").response()
    except Exception as exc:
        if storage_full(exc):
            return storage_full_error(request, exc).response()
        logger.exception("%s %s failed", request.method, request.path)
        return ApiError(500, "internal", "the server failed; the error is logged").response()


def storage_full_error(request: web.Request, exc: BaseException) -> ApiError:
    """The 503 ``storage_full`` refusal for ``exc`` (a full disk), logged at most once
    a minute; the pages render it in words (node/http/web/render.py)."""
    notice = request.app.get(STORAGE_NOTICE)
    if notice is None or notice.due(asyncio.get_running_loop().time()):
        logger.warning(
            "storage full: %s %s answered 503 storage_full (%d refused so far): %s",
            request.method, request.path, notice.refused if notice else 1,
            str(exc).replace("\n", " ")[:300],
        )
    error = ApiError(
        503, "storage_full", "the node's disk is full; try again later (the error is logged)"
    )
    error.retry_after = STORAGE_FULL_RETRY_SECONDS
    return error
