"""The strict codec: every refusal has its reason, and garbage only ever raises ProtocolError."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec, errors
from protocol.errors import ProtocolError

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


@given(values)
def test_round_trip(value: codec.Value) -> None:
    assert codec.decode(codec.encode(value)) == value


@given(values)
def test_encoding_is_deterministic(value: codec.Value) -> None:
    assert codec.encode(value) == codec.encode(codec.decode(codec.encode(value)))


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_protocol_error(data: bytes) -> None:
    try:
        codec.decode(data)
    except ProtocolError as exc:
        assert exc.reason


@settings(max_examples=300)
@given(values, st.data())
def test_mutated_bytes_only_raise_protocol_error(value: codec.Value, data: st.DataObject) -> None:
    raw = bytearray(codec.encode(value))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, len(raw)))
        if op == "flip" and pos < len(raw):
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[pos:]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
    try:
        codec.decode(bytes(raw))
    except ProtocolError:
        pass


def reason_of(data: bytes, limits: codec.Limits = codec.DEFAULT_LIMITS) -> str:
    with pytest.raises(ProtocolError) as caught:
        codec.decode(data, limits)
    return caught.value.reason


def test_each_refusal_has_its_reason() -> None:
    small = codec.Limits(max_size=64, max_str=4, max_bin=4, max_array=3, max_map=2, max_depth=2)
    assert reason_of(b"\xc0" * 65, small) == errors.TOO_LARGE
    assert reason_of(msgpack.packb("abcde"), small) == errors.STRING_TOO_LONG
    assert reason_of(msgpack.packb(b"abcde"), small) == errors.BYTES_TOO_LONG
    assert reason_of(msgpack.packb([1, 2, 3, 4]), small) == errors.ARRAY_TOO_LONG
    assert reason_of(msgpack.packb({"a": 1, "b": 2, "c": 3}), small) == errors.MAP_TOO_LONG
    assert reason_of(msgpack.packb([[[1]]]), small) == errors.TOO_DEEP
    assert reason_of(msgpack.packb({1: 2})) == errors.NON_STRING_KEY
    assert reason_of(msgpack.packb({b"k": 2}, use_bin_type=True)) == errors.NON_STRING_KEY
    # fixmap of two entries with the same key "a"
    assert reason_of(b"\x82\xa1a\x01\xa1a\x02") == errors.DUPLICATE_KEY
    assert reason_of(msgpack.packb(msgpack.ExtType(5, b"x"))) == errors.EXTENSION_TYPE
    assert reason_of(msgpack.packb(msgpack.Timestamp(1, 0))) == errors.EXTENSION_TYPE
    assert reason_of(msgpack.packb(1.5)) == errors.FLOAT_NOT_ALLOWED
    assert reason_of(msgpack.packb(1) + b"\x01") == errors.TRAILING_BYTES
    assert reason_of(b"\xa2\xff\xfe") == errors.INVALID_UTF8
    assert reason_of(b"\xc1") == errors.MALFORMED
    assert reason_of(b"") == errors.MALFORMED
    assert reason_of(b"\x92\x01") == errors.MALFORMED


def test_depth_bomb_is_refused_without_recursion() -> None:
    bomb = b"\x91" * 100_000 + b"\xc0"
    assert reason_of(bomb) in (errors.TOO_DEEP, errors.MALFORMED)


def test_claimed_huge_lengths_are_refused_before_allocating() -> None:
    assert reason_of(b"\xdd\xff\xff\xff\xff") == errors.ARRAY_TOO_LONG
    assert reason_of(b"\xdf\xff\xff\xff\xff") == errors.MAP_TOO_LONG
    # a truncated claim is malformed; a complete one over the cap names the cap
    assert reason_of(b"\xc6\xff\xff\xff\xff") == errors.MALFORMED
    tight = codec.Limits(max_bin=4)
    assert reason_of(b"\xc6\x00\x00\x00\x05abcde", tight) == errors.BYTES_TOO_LONG


def test_encode_refuses_what_decode_would() -> None:
    with pytest.raises(ProtocolError) as caught:
        codec.encode({1: 2})  # type: ignore[dict-item]
    assert caught.value.reason == errors.NON_STRING_KEY
    with pytest.raises(ProtocolError) as caught:
        codec.encode(1.5)  # type: ignore[arg-type]
    assert caught.value.reason == errors.UNSUPPORTED_TYPE
    assert codec.encode({"b": 1, "a": 2}) == codec.encode({"a": 2, "b": 1})
