"""The compact form in which the decoding worker sends back what it decoded.

The worker (:mod:`node.sync.catchup.worker`) runs :func:`decode_packed`:
:func:`protocol.decoded.decode_all`, then :func:`pack`, which keeps plain tuples
of str, int, bytes and None, sent in ``marshal`` form. This process rebuilds the
objects with :func:`unpack`, without running their checks a second time, beside
the raw bytes it holds already (an envelope's body is sent as its place in them).
What this form costs against pickling the objects: docs/performance.md
("Figures behind the code").

It is a private format between one node and its own worker, never a message
between nodes: :func:`unpack` trusts its input, and the format may change with
any version of the node, so it is not part of ``protocol/``. Rebuilding gives
exactly what decoding in place gives: the same objects, the same refusals with
the same reasons (tests/test_transfer.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any, Final

from protocol import fastpath
from protocol.decoded import Decoded, decode_all
from protocol.envelope import unchecked_envelope, unchecked_proof
from protocol.errors import ProtocolError
from protocol.events import (
    EVENT_TYPES,
    Event,
    deadline_values,
    field_kinds,
    file_values,
    milestone_values,
    unchecked_deadlines,
    unchecked_file,
    unchecked_milestone,
)

Packed = tuple[Any, ...]
_TYPES: Final = tuple(sorted(EVENT_TYPES))
_TYPE_INDEX: Final = {name: i for i, name in enumerate(_TYPES)}
_CONVERTED: Final = frozenset({"deadlines", "milestones", "files"})
_NAMES: Final = {cls: tuple(n for n, _ in field_kinds(cls)) for cls in EVENT_TYPES.values()}
_NESTED: Final = {
    cls: tuple((i, kind) for i, (_, kind) in enumerate(field_kinds(cls)) if kind in _CONVERTED)
    for cls in EVENT_TYPES.values()
}
"""Where each class has a field whose value is not plain data (deadlines, milestones,
files)."""


def _error(exc: ProtocolError | None) -> tuple[str, str] | None:
    return None if exc is None else (exc.reason, exc.detail)


_VALUES: Final = {cls: attrgetter(*_NAMES[cls]) for cls in EVENT_TYPES.values()}


def _flat_event(event: Event) -> tuple[int, tuple[object, ...]]:
    cls = type(event)
    values: tuple[object, ...] = _VALUES[cls](event)
    nested = _NESTED[cls]
    if nested:
        flat = list(values)
        for i, kind in nested:
            v: Any = flat[i]
            if v is None:
                continue
            if kind == "deadlines":
                flat[i] = deadline_values(v)
            elif kind == "files":
                flat[i] = tuple(map(file_values, v))
            else:
                flat[i] = tuple(map(milestone_values, v))
        values = tuple(flat)
    return _TYPE_INDEX[cls.TYPE], values


def _body_at(raw: bytes, body: bytes) -> int:
    """Where ``body`` starts in ``raw`` (it is a slice of it): first where an envelope
    encoded with sorted keys, as every Duban node encodes, has it (after the map's
    header, the key "b" and the bin header); else wherever it is."""
    at = 5 if len(body) < 0x100 else 6 if len(body) < 0x10000 else 8
    return at if raw.startswith(body, at) else raw.find(body)


def pack(decoded: Sequence[Decoded]) -> list[Packed]:
    """What :func:`unpack` needs to rebuild ``decoded`` beside the raw bytes (which the
    receiver holds already): plain tuples of str, int, bytes and None. Send it in
    ``marshal`` version :data:`MARSHAL_VERSION`."""
    out: list[Packed] = []
    for d in decoded:
        env = d.env
        if env is None:
            out.append((_error(d.error),))
            continue
        proof = None if env.proof is None else (env.proof.index, env.proof.size, env.proof.path)
        event = d.event
        flat = None if event is None else _flat_event(event)
        message = d.message
        out.append(
            (
                env.type,
                (_body_at(d.raw, env.body), len(env.body)),
                env.key_id,
                env.signature,
                proof,
                _error(d.error),
                flat,
                d.event_id,
                _error(message) if isinstance(message, ProtocolError) else message,
            )
        )
    return out


def decode_packed(raws: Sequence[bytes], skip: frozenset[str]) -> list[Packed]:
    """:func:`decode_all` then :func:`pack`: what a worker process runs."""
    return pack(decode_all(raws, skip))


MARSHAL_VERSION: Final = 2
"""The ``marshal`` version to send the compact form in: before version 3, marshal
keeps no table of the objects it wrote, and the compact form shares none, so that
table would only cost time (docs/performance.md, "Figures behind the code")."""


_CONVERT: Final = {
    "deadlines": unchecked_deadlines,
    "milestones": lambda flat: tuple(map(unchecked_milestone, flat)),
    "files": lambda flat: tuple(map(unchecked_file, flat)),
}
_EVENTS: Final = {
    cls: fastpath.builder(cls, _NAMES[cls], {i: _CONVERT[kind] for i, kind in _NESTED[cls]})
    for cls in EVENT_TYPES.values()
}


def _event(flat: tuple[int, tuple[object, ...]]) -> Event:
    return _EVENTS[EVENT_TYPES[_TYPES[flat[0]]]](flat[1])  # type: ignore[no-any-return]


def _unerror(pair: tuple[str, str] | None) -> ProtocolError | None:
    return None if pair is None else ProtocolError(*pair)


def unpack(raws: Sequence[bytes], packed: Sequence[Packed]) -> list[Decoded]:
    """Rebuild what :func:`pack` made of ``raws`` (the same bytes, in the same order)."""
    out: list[Decoded] = []
    append = out.append
    for raw, p in zip(raws, packed, strict=True):
        if len(p) == 1:
            append(Decoded(raw, None, _unerror(p[0]), None, b"", None))
            continue
        type_, (start, size), key_id, signature, proof, error, flat, event_id, message = p
        env = unchecked_envelope(
            (
                type_,
                raw[start : start + size],
                key_id,
                signature,
                None if proof is None else unchecked_proof(proof),
                raw,
            )
        )
        append(
            Decoded(
                raw,
                env,
                None if error is None else ProtocolError(*error),
                None if flat is None else _event(flat),
                event_id,
                ProtocolError(*message) if type(message) is tuple else message,
            )
        )
    return out
