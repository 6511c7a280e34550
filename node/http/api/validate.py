"""Reading request bodies: the bytes (capped), UTF-8, JSON, then the body's Struct.

:func:`read_json` takes the body (capped), checks its media type, UTF-8 and
JSON, and gives the JSON object; :func:`decode` checks such an object against
its Struct (:mod:`node.http.api.bodies`, where every field's rule is stated
once) and :func:`read_body` does both. A refusal is the API's 400:
``missing_field``, ``unknown_field`` or ``bad_field`` (or the reason the
field's type names), with the field's path (``parts[0].assignee``,
``milestones[1].due``). Times in requests are read by
:func:`node.clock.parse_moment`; :func:`node.clock.iso` writes them in answers, both
in China time (``protocol.rules.CHINA_TZ``).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from msgspec import Struct
from msgspec import inspect as mi

from node.errors import Invalid
from node.http.api.bodies import MAX_JSON_BYTES, PATTERN_MEANINGS, Body
from node.http.errors import ApiError, bad

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


def decode(value: Any, kind: type[B]) -> B:
    """``value`` (a parsed JSON object) as a ``kind``, or the API's 400 saying why."""
    prepared = _prepare(value, _preparation(kind), "")
    try:
        body = msgspec.convert(prepared, kind)
    except msgspec.ValidationError as exc:
        raise _refusal(kind, str(exc)) from None
    body.check()
    return body


class _Preparation:
    """What :func:`_prepare` does to the fields of one Struct, worked out once."""

    def __init__(self, fields: frozenset[str]) -> None:
        self.fields = fields
        self.strip: set[str] = set()
        self.strip_items: set[str] = set()
        self.nested: dict[str, _Preparation] = {}
        self.nested_items: dict[str, _Preparation] = {}


@functools.cache
def _preparation(kind: type[Struct]) -> _Preparation:
    info = mi.type_info(kind)
    assert isinstance(info, mi.StructType)
    plan = _Preparation(frozenset(f.encode_name for f in info.fields))
    for f in info.fields:
        name = f.encode_name
        for t, strip in _members(f.type):
            if isinstance(t, mi.StrType) and strip:
                plan.strip.add(name)
            elif isinstance(t, mi.StructType):
                plan.nested[name] = _preparation(t.cls)
            elif isinstance(t, mi.VarTupleType | mi.ListType):
                for item, item_strip in _members(t.item_type):
                    if isinstance(item, mi.StrType) and item_strip:
                        plan.strip_items.add(name)
                    elif isinstance(item, mi.StructType):
                        plan.nested_items[name] = _preparation(item.cls)
    return plan


def _members(t: mi.Type, strip: bool = True) -> list[tuple[mi.Type, bool]]:
    """The types a value of ``t`` may have (unions and Meta unwrapped), each with
    whether its strings are stripped."""
    if isinstance(t, mi.Metadata):
        return _members(t.type, strip and bool((t.extra or {}).get("strip", True)))
    if isinstance(t, mi.UnionType):
        return [m for member in t.types for m in _members(member, strip)]
    return [(t, strip)]


def _prepare(value: Any, prep: _Preparation, at: str) -> Any:
    """``value`` with nulls dropped and strings stripped, or an unknown field refused
    (here, by its exact key: msgspec's message would have to be parsed for it)."""
    if not isinstance(value, dict):
        return value  # msgspec says what it should be
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in prep.fields:
            raise bad(f"{at}{key}", "is not a known field", "unknown_field")
        if item is None:
            continue
        if key in prep.strip and isinstance(item, str):
            item = item.strip()
        elif key in prep.strip_items and isinstance(item, list):
            item = [v.strip() if isinstance(v, str) else v for v in item]
        elif key in prep.nested:
            item = _prepare(item, prep.nested[key], f"{at}{key}.")
        elif key in prep.nested_items and isinstance(item, list):
            item = [
                _prepare(v, prep.nested_items[key], f"{at}{key}[{i}].")
                for i, v in enumerate(item)
            ]
        out[key] = item
    return out


# -- refusals ------------------------------------------------------------------------------

_AT = re.compile(r"(?s)(.*) - at `\$(.*)`\Z")
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_WORDS = {
    "str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
    "array": "a list", "object": "an object", "null": "null",
}


def _refusal(kind: type[Body], message: str) -> Invalid:
    """msgspec's ValidationError as the API's 400, naming the field by its path."""
    match = _AT.match(message)
    what, path = (match[1], match[2]) if match else (message, "")
    steps: list[str | int] = [
        name if name else int(index) for name, index in _PATH_STEP.findall(path)
    ]
    name = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps).lstrip(".")
    missing = re.fullmatch(r"Object missing required field `(.+)`", what)
    if missing:
        return bad(f"{name}.{missing[1]}" if name else missing[1], "is required", "missing_field")
    t = _type_at(mi.type_info(kind), steps)
    extra = _extra_at(mi.type_info(kind), steps)
    return bad(name or "body", _say(what, t), str(extra.get("reason", "bad_field")))


def _say(what: str, t: mi.Type | None) -> str:
    """msgspec's words for what is wrong, in the API's."""
    if m := re.fullmatch(r"Expected `(.+)`, got `(.+)`", what):
        wanted = [_WORDS.get(w, w) for w in m[1].split(" | ") if w != "null"]
        return f"must be {' or '.join(wanted)}, not {_WORDS.get(m[2], m[2])}"
    if what.startswith("Expected `str` matching regex") and isinstance(t, mi.StrType):
        return PATTERN_MEANINGS.get(t.pattern or "", what)
    if m := re.fullmatch(r"Expected `str` of length ([<>]=) (\d+)", what):
        if m[1] == ">=" and m[2] == "1":
            return "must not be empty"
        return f"{'at most' if m[1] == '<=' else 'at least'} {m[2]} characters"
    if m := re.fullmatch(r"Expected `array` of length ([<>]=) (\d+)", what):
        if isinstance(t, mi.VarTupleType | mi.ListType):
            return f"must list {t.min_length or 0} to {t.max_length}"
        return f"must list {'at most' if m[1] == '<=' else 'at least'} {m[2]}"
    if re.fullmatch(r"Expected `int` [<>]=? -?\d+", what) and isinstance(t, mi.IntType):
        return f"must be between {t.ge} and {t.le}"
    if what.startswith("Invalid enum value") and isinstance(t, mi.LiteralType):
        return f"must be one of {', '.join(map(str, t.values))}"
    return what


def _type_at(t: mi.Type, steps: list[str | int]) -> mi.Type | None:
    """The type at ``steps`` below ``t`` (Meta and optional unwrapped), if one."""
    for step in steps:
        t = _bare(t)
        if isinstance(step, str) and isinstance(t, mi.StructType):
            found = [f.type for f in t.fields if f.encode_name == step]
            if not found:
                return None
            t = found[0]
        elif isinstance(step, int) and isinstance(t, mi.VarTupleType | mi.ListType):
            t = t.item_type
        else:
            return None
    return _bare(t)


def _bare(t: mi.Type) -> mi.Type:
    while True:
        if isinstance(t, mi.Metadata):
            t = t.type
        elif isinstance(t, mi.UnionType) and len(t.types) == 2 and t.includes_none:
            t = next(m for m in t.types if not isinstance(m, mi.NoneType))
        else:
            return t


def _extra_at(t: mi.Type, steps: list[str | int]) -> dict[str, Any]:
    """The ``Meta(extra=...)`` of the field at ``steps``."""
    leaf = _type_at(t, steps[:-1]) if steps else None
    if not isinstance(leaf, mi.StructType) or not isinstance(steps[-1], str):
        return {}
    extra: dict[str, Any] = {}
    for f in leaf.fields:
        if f.encode_name == steps[-1]:
            for member in _metadata(f.type):
                extra |= member.extra or {}
    return extra


def _metadata(t: mi.Type) -> list[mi.Metadata]:
    if isinstance(t, mi.Metadata):
        return [t, *_metadata(t.type)]
    if isinstance(t, mi.UnionType):
        return [m for member in t.types for m in _metadata(member)]
    return []
