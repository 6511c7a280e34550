"""A value nested a thousand deep is a protocol error at every gate, never a crash.

msgpack decodes nesting up to about a thousand levels before any depth check of
ours runs, and a decoder that takes ``check_tree=False`` (it checks each field's
type itself) may meet such a value in a field it then names in its refusal. A
``repr`` of it raised ``RecursionError``: a 500 at ``/sync/v1/up``, at
``/sync/v1/hello`` (the auth header) and at ``/enroll/v1/join``. Here each field of
each outer record gets such a value and the gate must answer with its own error.
"""

from __future__ import annotations

import base64

import pytest

from hierarchy.enrollment import read_join_request
from hierarchy.errors import HierarchyError
from node.sync.auth import AuthError, read_header
from protocol import envelope
from protocol.errors import ProtocolError, shown
from protocol.events import EVENT_TYPES, decode_event

DEPTH = 1000
DEEP = b"\x91" * DEPTH + b"\xc0"  # [[[ … [nil] … ]]]


def _str(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 32
    return bytes([0xA0 | len(data)]) + data


def _map(fields: dict[str, bytes]) -> bytes:
    """A msgpack map of raw, already encoded values (the codec refuses to encode DEEP)."""
    assert len(fields) < 16
    return bytes([0x80 | len(fields)]) + b"".join(_str(k) + v for k, v in fields.items())


ENVELOPE_FIELDS = {
    "v": b"\x01",
    "t": _str("item.assigned"),
    "b": b"\xc4\x01x",
    "k": b"\xc4\x08" + bytes(8),
    "s": b"\xc4\x40" + bytes(64),
}


def deep_envelopes() -> list[tuple[str, bytes]]:
    out = []
    for name in [*ENVELOPE_FIELDS, "m", "zz"]:
        out.append((name, _map({**ENVELOPE_FIELDS, name: DEEP})))
    out.append(("whole", DEEP))
    return out


@pytest.mark.parametrize(("field", "raw"), deep_envelopes())
def test_a_deep_envelope_is_a_protocol_error(field: str, raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        envelope.parse(raw)


@pytest.mark.parametrize(("field", "raw"), deep_envelopes())
def test_a_deep_auth_header_is_an_auth_refusal(field: str, raw: bytes) -> None:
    with pytest.raises(AuthError):
        read_header(base64.urlsafe_b64encode(raw).decode("ascii"))


@pytest.mark.parametrize(("field", "raw"), deep_envelopes())
def test_a_deep_join_request_is_a_hierarchy_refusal(field: str, raw: bytes) -> None:
    with pytest.raises(HierarchyError):
        read_join_request(raw)


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
@pytest.mark.parametrize("field", ["v", "item", "origin", "seq", "lamport", "title", "zz"])
def test_a_deep_event_body_is_a_protocol_error(type_: str, field: str) -> None:
    body = _map({"v": b"\x01", "item": _str("14-000001"), field: DEEP})
    with pytest.raises(ProtocolError):
        decode_event(type_, body)


def test_shown_never_recurses() -> None:
    deep: list[object] = []
    for _ in range(DEPTH * 10):
        deep = [deep]
    assert shown(deep) == "<list of 1>"
    assert shown({"a": deep}) == "<dict of 1>"
    assert shown("x" * 500) == repr("x" * 500)[:80]
    assert shown(7) == "7"
