"""Reading request bodies: the bytes (capped), UTF-8, JSON, then the body's Struct.

``read_json`` takes the body (capped), checks its media type, UTF-8 and JSON, and
gives the JSON object; :func:`read_body` also checks it against its Struct
(:mod:`node.http.api.bodies`, where every field's rule is stated once). Times
in requests are read by :func:`parse_moment`; :func:`iso` writes them in
answers. Both are in China time (``protocol.rules.CHINA_TZ``).
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any, TypeVar

from aiohttp import web

from node.http.api.bodies import MAX_JSON_BYTES, MAX_MOMENT_TEXT, Body, decode
from node.http.errors import ApiError, bad
from protocol.events import MAX_MS
from protocol.rules import CHINA_TZ

B = TypeVar("B", bound=Body)


async def read_bytes(request: web.Request, max_bytes: int) -> bytes:
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "too_large", f"the body is at most {max_bytes} bytes")
    # StreamReader.read(n) answers with what has arrived so far: a body that comes in
    # several segments (a slow client, a proxy) is read until its end.
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(max_bytes + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, "too_large", f"the body is at most {max_bytes} bytes")
    return b"".join(chunks)


def parse_json_bytes(data: bytes, where: str = "body") -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, "invalid_utf8", f"{where} is not UTF-8 (byte {exc.start})", where
        ) from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ApiError(400, "bad_json", f"{where} is not JSON: {exc}", where) from None


async def read_json(request: web.Request, *, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The body as a JSON object; 415 ``unsupported_media_type`` unless it is sent as
    ``application/json`` (HTML forms cannot send that type: node/http/forgery.py)."""
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as Content-Type: application/json, not {request.content_type[:80]!r}",
            "body",
        )
    data = await read_bytes(request, max_bytes)
    if not data.strip():
        raise ApiError(400, "missing_body", "send a JSON object", "body")
    value = parse_json_bytes(data)
    if not isinstance(value, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object", "body")
    return value


async def read_body(request: web.Request, kind: type[B], *, max_bytes: int = MAX_JSON_BYTES) -> B:
    """The JSON body checked as a ``kind``."""
    return decode(await read_json(request, max_bytes=max_bytes), kind)


def parse_moment(value: Any, field: str) -> int:
    """A date or date-time: "2026-12-01" (end of that day, China time),
    "2026-12-01T18:00" (China time) or with an offset; or unix ms."""
    if type(value) is int:
        if not 0 < value <= MAX_MS:
            raise bad(field, "out of range")
        return value
    if not isinstance(value, str) or len(value) > MAX_MOMENT_TEXT:
        raise bad(field, "must be a date like 2026-12-01 or a date-time")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time(23, 59, 59), CHINA_TZ)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=CHINA_TZ)
    except ValueError:
        raise bad(field, "must be a date like 2026-12-01 or a date-time") from None
    return int(moment.timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    """Unix ms as an ISO date-time in China time (what people read)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, CHINA_TZ).isoformat(timespec="seconds")
