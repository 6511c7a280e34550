"""Reading request bodies: every refusal names the field and says why.

``read_json`` takes the body (capped), checks UTF-8 and JSON, and gives a
:class:`Body` whose typed getters raise 400 ``bad_field`` / ``missing_field``
with the field's name; ``Body.finish()`` refuses fields nobody asked for
(``unknown_field``), so a misspelt field is never silently ignored.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from node.clock import parse_moment
from node.http.errors import ApiError, bad

MAX_JSON = 256 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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


async def read_json(request: web.Request, *, max_bytes: int = MAX_JSON) -> Body:
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
    return Body(value)


class Body:
    """A JSON object being read field by field."""

    def __init__(self, value: dict[str, Any], prefix: str = "") -> None:
        self.value = value
        self.prefix = prefix
        self.seen: set[str] = set()

    def _name(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def has(self, name: str) -> bool:
        return self.value.get(name) is not None

    def _get(self, name: str, required: bool) -> Any:
        self.seen.add(name)
        value = self.value.get(name)
        if value is None and required:
            raise bad(self._name(name), "is required", "missing_field")
        return value

    def text(
        self,
        name: str,
        *,
        max_len: int = 200,
        required: bool = True,
        strip: bool = True,
        allow_empty: bool = False,
        default: str | None = None,
    ) -> str:
        value = self._get(name, required and default is None)
        if value is None:
            return default if default is not None else ""
        if not isinstance(value, str):
            raise bad(self._name(name), f"must be a string, not {type(value).__name__}")
        if strip:
            value = value.strip()
        if not value and not allow_empty:
            raise bad(self._name(name), "must not be empty")
        if len(value) > max_len:
            raise bad(self._name(name), f"at most {max_len} characters")
        if _CONTROL.search(value):
            raise bad(self._name(name), "contains control characters")
        return value

    def optional_text(self, name: str, *, max_len: int = 200) -> str | None:
        if not self.has(name):
            self.seen.add(name)
            return None
        return self.text(name, max_len=max_len)

    def integer(
        self, name: str, *, lo: int, hi: int, required: bool = True, default: int | None = None
    ) -> int:
        value = self._get(name, required and default is None)
        if value is None:
            return default if default is not None else lo
        if type(value) is not int:
            raise bad(self._name(name), f"must be an integer, not {type(value).__name__}")
        if not lo <= value <= hi:
            raise bad(self._name(name), f"must be between {lo} and {hi}")
        return value

    def boolean(self, name: str) -> bool:
        value = self._get(name, True)
        if type(value) is not bool:
            raise bad(self._name(name), "must be true or false")
        return value

    def choice(
        self,
        name: str,
        options: tuple[str, ...] | list[str],
        *,
        default: str | None = None,
        reason: str = "bad_field",
    ) -> str:
        value = self._get(name, default is None)
        if value is None:
            assert default is not None
            return default
        if not isinstance(value, str) or value not in options:
            raise bad(self._name(name), f"must be one of {', '.join(options)}", reason)
        return value

    def strings(self, name: str, *, max_items: int = 50, max_len: int = 64) -> tuple[str, ...]:
        value = self._get(name, False)
        if value is None:
            return ()
        if not isinstance(value, list) or len(value) > max_items:
            raise bad(self._name(name), f"must be a list of at most {max_items} strings")
        out = []
        for i, entry in enumerate(value):
            if not isinstance(entry, str) or not entry.strip() or len(entry) > max_len:
                raise bad(f"{self._name(name)}[{i}]", f"must be a string of 1-{max_len} chars")
            out.append(entry.strip())
        return tuple(out)

    def objects(self, name: str, *, min_items: int = 1, max_items: int = 50) -> list[Body]:
        value = self._get(name, True)
        if not isinstance(value, list) or not min_items <= len(value) <= max_items:
            raise bad(self._name(name), f"must be a list of {min_items}-{max_items} objects")
        out = []
        for i, entry in enumerate(value):
            if not isinstance(entry, dict):
                raise bad(f"{self._name(name)}[{i}]", "must be an object")
            out.append(Body(entry, f"{self._name(name)}[{i}]."))
        return out

    def moment(self, name: str, *, required: bool = True) -> int | None:
        """A date or date-time: "2026-12-01" (end of that day, China time),
        "2026-12-01T18:00" (China time) or with an offset; or unix ms."""
        value = self._get(name, required)
        if value is None:
            return None
        return parse_moment(value, self._name(name))

    def finish(self) -> None:
        extra = sorted(set(self.value) - self.seen)
        if extra:
            raise bad(self._name(extra[0]), "is not a known field", "unknown_field")
