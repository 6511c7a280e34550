"""Compiled decoding for the common case: canonical bytes that pass every check.

Decoding an event body with the strict codec and checking it field by field in
Python is the largest part of a catch-up's decoding (docs/performance.md).
msgspec decodes in C and checks there the types, ranges, lengths and patterns
of a :class:`msgspec.Struct` mirroring the class.

The strict path stays the only one that refuses and says why. The fast path
answers either "here is the object" or None, "ask the strict path": so it may
be stricter than the strict path, never looser, and a refusal costs both. Each
decoder names its two paths in a public :class:`Paths`, so that this promise
is tested from outside, on what each path answers (tests/test_fastpath.py).

It takes bytes only when encoding what msgspec decoded gives back exactly the
same bytes (:meth:`Mirror.decode`). Then they are the canonical encoding of a
value of the mirrored shape: map keys sorted as Duban encodes them and each
once, no nil for an absent field, integers in their shortest form. The strict
codec decodes such bytes to that same value, so the checks that follow see
what the strict path's checks would see. The checks msgspec cannot express
(a title that is only spaces, duplicate units, checks across fields) are the
caller's, run on the object built without its own checks (:func:`builder`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, ParamSpec, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)
T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class Paths(Generic[P, T]):
    """The two paths of one decoder (``events.EVENT_PATHS``, ``envelope.ENVELOPE_PATHS``).

    The decoder answers what ``fast`` answers, or else what ``strict`` answers. The
    promise, which its tests hold on these two alone: whatever ``fast`` takes (it
    answers other than None), ``strict`` takes too and makes the same value of, so
    the decoder takes and refuses exactly what ``strict`` does; and ``fast`` takes
    what an honest node sends, or it saves nothing."""

    fast: Callable[P, T | None]
    """The compiled path: the value, or None ("ask the strict path")."""
    strict: Callable[P, T]
    """The reference: the value, or :class:`~protocol.errors.ProtocolError` with a reason."""


def struct(name: str, fields: Sequence[tuple[str, Any, bool]]) -> type[msgspec.Struct]:
    """A Struct with ``fields`` (wire name, annotation, optional), declared in sorted
    order of wire names, as :func:`protocol.codec.encode` emits keys; an optional
    field defaults to None and is omitted when None, as Duban omits it."""
    spec: list[tuple[str, Any] | tuple[str, Any, Any]] = [
        (wire, annotation | None, None) if optional else (wire, annotation)
        for wire, annotation, optional in sorted(fields, key=lambda f: f[0])
    ]
    return msgspec.defstruct(
        name, spec, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
    )


def sized_bytes(n: int) -> Any:
    """The type of a bytes field of exactly ``n`` bytes (a digest, a key id, a signature)."""
    return Annotated[bytes, msgspec.Meta(min_length=n, max_length=n)]


class Mirror(Generic[S]):
    """Decodes bytes into the Struct ``shape``, when they are its canonical encoding."""

    def __init__(self, shape: type[S]) -> None:
        self._decode = msgspec.msgpack.Decoder(shape).decode
        self._encode = msgspec.msgpack.Encoder().encode

    def decode(self, data: bytes) -> S | None:
        """The Struct ``data`` encodes, or None: it does not decode into the shape, or
        it is not the canonical encoding of what it decodes to."""
        try:
            value = self._decode(data)
        except Exception:  # any refusal: msgspec raises UnicodeDecodeError too
            return None
        return value if self._encode(value) == data else None


def builder(
    cls: type,
    names: Sequence[str],
    convert: Mapping[int, Callable[[Any], object]] | None = None,
) -> Callable[[Sequence[object]], Any]:
    """A function making an instance of the slotted dataclass ``cls`` from the values of
    ``names``, in order, without its checks (its caller has run them, or the same code
    ran them in another process); ``convert`` rebuilds the nested values at some
    positions (None stays None). Its assignments are written out, as ``dataclasses``
    writes ``__init__``: it runs for every received event, and a loop over the fields
    cost more (docs/performance.md, "Figures behind the code")."""
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = ["def build(values):", "    obj = _new(_cls)"]
    for i, name in enumerate(names):
        scope[f"_s{i}"] = getattr(cls, name).__set__
        if convert and i in convert:
            scope[f"_c{i}"] = convert[i]
            lines.append(f"    v = values[{i}]")
            lines.append(f"    _s{i}(obj, None if v is None else _c{i}(v))")
        else:
            lines.append(f"    _s{i}(obj, values[{i}])")
    lines.append("    return obj")
    exec("\n".join(lines), scope)  # the source is made here, from field names
    return scope["build"]  # type: ignore[no-any-return]
