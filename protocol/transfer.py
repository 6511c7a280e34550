"""Decoding received envelopes in bulk, and handing the result to another process.

:func:`decode_all` does, for a batch of received envelope bytes, all the work
that needs nothing but the bytes: strict parsing, decoding and checking each
event body, the event id, and the message each signature covers (for an event
signed in a Merkle batch, the batch root worked out from its path). What needs
the node's state — duplicates, trust, scope, who may sign what, the Ed25519
check itself — is the caller's.

A node may run it in a worker process, so that a catch-up's decoding runs on
another core than its database work. The decoded objects are then sent back in
a compact form (:func:`pack`, plain tuples: a twentieth of the objects pickled), and
rebuilt (:func:`unpack`) without running their checks a second time.
:func:`unpack` trusts its input: it is for this node's own worker, never for
bytes from the network.

Decoding in the worker gives exactly what decoding in place gives: the same
objects, the same refusals with the same reasons.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final

from protocol import envelope, fastpath
from protocol.envelope import Envelope, unchecked_envelope, unchecked_proof
from protocol.errors import ProtocolError
from protocol.events import (
    EVENT_TYPES,
    Event,
    deadline_values,
    decode_event,
    field_kinds,
    milestone_values,
    unchecked_deadlines,
    unchecked_milestone,
)


@dataclass(slots=True)
class Decoded:
    """One received envelope, as far as its bytes alone can take it."""

    raw: bytes
    env: Envelope | None
    """None when the bytes are not an envelope (``error`` says why)."""
    error: ProtocolError | None
    """Why the envelope does not parse, or else why its body does not decode."""
    event: Event | None
    """The decoded body; None for a type the caller skipped, or on error."""
    event_id: bytes
    """SHA-256 of ``raw`` (empty when ``env`` is None)."""
    message: bytes | ProtocolError | None
    """What the signature covers, or why the Merkle path gives no root."""


def decode_all(raws: Iterable[bytes], skip: frozenset[str] = frozenset()) -> list[Decoded]:
    """Parse and decode each of ``raws``; bodies of types in ``skip`` are left undecoded
    (trust records: the trust store checks those itself)."""
    known = envelope.node_memo()
    out: list[Decoded] = []
    for raw in raws:
        try:
            env = envelope.parse(raw)
        except ProtocolError as exc:
            out.append(Decoded(raw, None, exc, None, b"", None))
            continue
        event: Event | None = None
        error: ProtocolError | None = None
        if env.type not in skip:
            try:
                event = decode_event(env.type, env.body)
            except ProtocolError as exc:
                error = exc
        message: bytes | ProtocolError
        try:
            message = env.signed_message(known)
        except ProtocolError as exc:
            message = exc
        out.append(Decoded(env.raw, env, error, event, hashlib.sha256(raw).digest(), message))
    return out


# -- the compact form ----------------------------------------------------------------------

Packed = tuple[Any, ...]
_TYPES: Final = tuple(sorted(EVENT_TYPES))
_TYPE_INDEX: Final = {name: i for i, name in enumerate(_TYPES)}
_CONVERTED: Final = frozenset({"deadlines", "milestones"})
_NAMES: Final = {cls: tuple(n for n, _ in field_kinds(cls)) for cls in EVENT_TYPES.values()}
_NESTED: Final = {
    cls: tuple((i, kind) for i, (_, kind) in enumerate(field_kinds(cls)) if kind in _CONVERTED)
    for cls in EVENT_TYPES.values()
}
"""Where each class has a field whose value is not plain data (deadlines, milestones)."""


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
keeps no table of the objects it wrote (the compact form shares none), which makes
writing it two to three times as fast."""


_CONVERT: Final = {
    "deadlines": unchecked_deadlines,
    "milestones": lambda flat: tuple(map(unchecked_milestone, flat)),
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
