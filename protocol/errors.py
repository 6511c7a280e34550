"""The one error root of the protocol package.

Every refusal carries a stable, machine-readable ``reason`` code (snake_case
ASCII) that the HTTP layer maps to a status and that logs and pages show, plus
an optional human ``detail``. Codes are part of the protocol: never rename one.
"""

from __future__ import annotations

DETAIL_LIMIT = 500
"""The longest detail kept (a peer chooses much of what a detail quotes)."""


def printable(text: str, limit: int = DETAIL_LIMIT) -> str:
    """``text`` safe to put in a log line or a status page: every character that is not
    printable (newlines, escapes, bidi controls, line and paragraph separators) is
    written as its Python escape, and it is cut to ``limit`` characters ("…" after).

    A peer controls much of what reaches a log (field names, node ids, types): a
    newline in a field name must not start a forged log line. Chinese text and
    other printable characters are kept as they are."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + "…"


def shown(value: object, limit: int = 80) -> str:
    """A short rendering of a value a peer sent, for an error's detail: a scalar's
    ``repr`` (cut to ``limit``), a container's type and length only. Never recurses:
    a value nested a thousand deep (msgpack decodes one before any depth check) has
    no ``repr`` short of a ``RecursionError``."""
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return repr(value)[:limit]
    try:
        size = f" of {len(value)}"  # type: ignore[arg-type]
    except TypeError:
        size = ""
    return f"<{type(value).__name__}{size}>"


class ProtocolError(Exception):
    """Any malformed, unverifiable or unauthorised protocol input.

    The detail is made :func:`printable` here, once: it often quotes what a peer
    sent, and goes to logs, to the ``refused`` table and back to the peer."""

    def __init__(self, reason: str, detail: str = "") -> None:
        detail = printable(detail)
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# Codec
TOO_LARGE = "too_large"
MALFORMED = "malformed"
TRAILING_BYTES = "trailing_bytes"
TOO_DEEP = "too_deep"
STRING_TOO_LONG = "string_too_long"
BYTES_TOO_LONG = "bytes_too_long"
ARRAY_TOO_LONG = "array_too_long"
MAP_TOO_LONG = "map_too_long"
NON_STRING_KEY = "non_string_key"
DUPLICATE_KEY = "duplicate_key"
EXTENSION_TYPE = "extension_type"
FLOAT_NOT_ALLOWED = "float_not_allowed"
INVALID_UTF8 = "invalid_utf8"
UNSUPPORTED_TYPE = "unsupported_type"

# Envelope and signatures
BAD_ENVELOPE = "bad_envelope"
UNKNOWN_VERSION = "unknown_version"
BAD_SIGNATURE = "bad_signature"
UNKNOWN_KEY = "unknown_key"
BAD_MERKLE_PROOF = "bad_merkle_proof"
BAD_TYPE = "bad_type"
NON_CANONICAL = "non_canonical"
"""Envelope bytes that are not the one canonical encoding of their value (docs/sync.md)."""

# Messages (bodies)
MISSING_FIELD = "missing_field"
UNKNOWN_FIELD = "unknown_field"
BAD_FIELD = "bad_field"
UNKNOWN_KIND = "unknown_kind"
SIGNER_MISMATCH = "signer_mismatch"

# Certificates and trust
BAD_CERTIFICATE = "bad_certificate"
CHAIN_BROKEN = "chain_broken"
UNTRUSTED_ROOT = "untrusted_root"
CERT_EXPIRED = "cert_expired"
CERT_NOT_YET_VALID = "cert_not_yet_valid"
KEY_REVOKED = "key_revoked"
VERSION_REGRESSION = "version_regression"

# Ownership and the item state
NOT_ASSIGNER = "not_assigner"
NOT_ASSIGNEE = "not_assignee"
UNKNOWN_ITEM = "unknown_item"
INVALID_TRANSITION = "invalid_transition"
ITEM_CLOSED = "item_closed"
ITEM_WITHDRAWN = "item_withdrawn"

# Calendar
CALENDAR_UNCOVERED = "calendar_uncovered"

# Item events and the fold (appended with protocol/events.py and protocol/fold.py)
WRONG_RECIPIENT = "wrong_recipient"
WRONG_ITEM = "wrong_item"
DUPLICATE_SEQUENCE = "duplicate_sequence"
NOT_SUPERVISOR = "not_supervisor"
"""An urge or instruction signed by a node that is neither the item's assigner nor
one of its ancestors."""
EXTENSION_TOO_LATE = "extension_too_late"
"""An extension requested once the resolve deadline has passed."""
GRADE_NEEDS_REASON = "grade_needs_reason"
"""A closing grade other than the rules' default, with no reason given."""

# Certificates and trust (continued)
BAD_REVOCATION = "bad_revocation"
UNKNOWN_SIGNER = "unknown_signer"
SIGNER_NOT_PARENT = "signer_not_parent"
UNKNOWN_NODE = "unknown_node"
KEY_REUSED = "key_reused"
KEY_NOT_ACTIVE = "key_not_active"
KEY_RETIRED = "key_retired"

# Sync (received values bounded by the receiver: docs/sync.md)
CLOCK_TOO_FAR_AHEAD = "clock_too_far_ahead"
CLOCK_EXHAUSTED = "clock_exhausted"
"""A node's own write would take its clock past the ceiling, which every receiver
refuses: it writes nothing (docs/sync.md, "Clocks")."""
TOO_MANY_EVENTS = "too_many_events"
