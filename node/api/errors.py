"""API refusals: one JSON shape, a stable reason code, the field when there is one.

``{"error": reason, "detail": human text, "field": name or null}`` with 400
(bad input), 401 (who are you?), 403 (not allowed), 404, 409 (does not fit the
item's state), 413 or 429. Never a stack trace: unexpected errors are logged
and answered 500 ``internal`` with no detail.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

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
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return ApiError(500, "internal", "the server failed; the error is logged").response()
