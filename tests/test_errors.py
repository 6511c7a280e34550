"""Refusal details are safe to log: a peer cannot forge a log line through them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol import errors
from protocol.errors import ProtocolError, printable


def test_printable_escapes_what_a_peer_controls() -> None:
    assert printable("县 feedback ok") == "县 feedback ok"
    assert printable("x\nWARNING forged line") == "x\\nWARNING forged line"
    assert printable("a\r\x1b[31m\u2028\u202eb") == "a\\r\\x1b[31m\\u2028\\u202eb"
    assert printable("y" * 1000, 10) == "y" * 10 + "…"
    detail = ProtocolError(errors.UNKNOWN_FIELD, "item.x\ny").detail
    assert "\n" not in detail and detail == "item.x\\ny"


@given(st.text(max_size=300))
def test_printable_never_leaves_a_control_character(text: str) -> None:
    out = printable(text)
    assert out.isprintable()
    assert len(out) <= errors.DETAIL_LIMIT + 1
