"""Received envelopes decoded in bulk, as far as their bytes alone can take them.

:func:`decode_all` does, for a batch of received envelope bytes, all the work
that needs nothing but the bytes: strict parsing, decoding and checking each
event body, the event id, and the message each signature covers (for an event
signed in a Merkle batch, the batch root worked out from its path). What needs
the node's state — duplicates, trust, scope, who may sign what, the Ed25519
check itself — is the caller's.

Every node runs it on every batch it receives, so it lives here. A node may
run it in another process and send the result back (``node/sync/catchup/``);
that is the node's own business, not the protocol's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from protocol import envelope
from protocol.envelope import Envelope
from protocol.errors import ProtocolError
from protocol.events import Event, decode_event


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
    (trust records: the trust store checks those itself).

    The same as parsing and decoding each envelope one by one: the same objects, the
    same refusals with the same reasons."""
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
