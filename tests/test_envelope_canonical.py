"""An event's identity does not depend on how a relay encodes its envelope.

The event id is the SHA-256 of the envelope bytes, and the signature covers only
(type, body) — or a Merkle root — so any other msgpack encoding of the same outer
map (keys in another order, a wider integer, string, bin, array or map header)
would verify too and get another id. ``envelope.parse`` accepts only the one
canonical encoding (``docs/sync.md``, "Event identity"): every other encoding of
the same value is refused with ``non_canonical``, so no relay can store or
forward the same event under two ids.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec, envelope, errors
from protocol.errors import ProtocolError
from protocol.keys import SigningKey

KEY = SigningKey.from_seed(b"\x17" * 32)

Wire = dict[str, object]


# A small msgpack writer of its own, with a choice of header at every value: the
# encodings a relay could produce of the same value.


def _uint(n: int, width: int) -> bytes:
    """``n`` as a msgpack unsigned integer: width 0 is the shortest form."""
    forms = [
        (0, lambda: bytes([n]) if n < 0x80 else None),
        (1, lambda: b"\xcc" + bytes([n]) if n < 0x100 else None),
        (2, lambda: b"\xcd" + struct.pack(">H", n) if n < 0x10000 else None),
        (3, lambda: b"\xce" + struct.pack(">I", n) if n < 2**32 else None),
        (4, lambda: b"\xcf" + struct.pack(">Q", n)),
        (5, lambda: b"\xd0" + struct.pack(">b", n) if n < 0x80 else None),
        (6, lambda: b"\xd1" + struct.pack(">h", n) if n < 0x8000 else None),
        (7, lambda: b"\xd2" + struct.pack(">i", n) if n < 2**31 else None),
        (8, lambda: b"\xd3" + struct.pack(">q", n)),
    ]
    if width == 0:
        return codec.encode(n)
    for _w, make in forms[width:] + forms[1:width]:
        out = make()
        if out is not None:
            return out
    raise AssertionError(n)


def _header(kind: str, n: int, width: int) -> bytes:
    """A str/bin/array/map header for length ``n``; width 0 is the shortest."""
    fix = {"str": (0xA0, 32), "array": (0x90, 16), "map": (0x80, 16)}
    wide = {
        "str": [(b"\xd9", ">B", 0x100), (b"\xda", ">H", 0x10000), (b"\xdb", ">I", 2**32)],
        "bin": [(b"\xc4", ">B", 0x100), (b"\xc5", ">H", 0x10000), (b"\xc6", ">I", 2**32)],
        "array": [(b"\xdc", ">H", 0x10000), (b"\xdd", ">I", 2**32)],
        "map": [(b"\xde", ">H", 0x10000), (b"\xdf", ">I", 2**32)],
    }[kind]
    options: list[bytes] = []
    if kind in fix and n < fix[kind][1]:
        options.append(bytes([fix[kind][0] | n]))
    options += [tag + struct.pack(fmt, n) for tag, fmt, cap in wide if n < cap]
    return options[min(width, len(options) - 1)]


Choice = Callable[[], int]


def _write(value: object, choose: Choice, order: Callable[[list[str]], list[str]]) -> bytes:
    if type(value) is int:
        return _uint(value, choose())
    if type(value) is str:
        data = value.encode()
        return _header("str", len(data), choose()) + data
    if type(value) is bytes:
        return _header("bin", len(value), choose()) + value
    if type(value) in (list, tuple):
        items = list(value)  # type: ignore[call-overload]
        return _header("array", len(items), choose()) + b"".join(
            _write(v, choose, order) for v in items
        )
    assert type(value) is dict
    keys = order(sorted(value))
    return _header("map", len(keys), choose()) + b"".join(
        _write(k, choose, order) + _write(value[k], choose, order) for k in keys
    )


def _wire(env: envelope.Envelope) -> Wire:
    value = codec.decode(env.raw, envelope.ENVELOPE_LIMITS)
    assert isinstance(value, dict)
    return value


def _signed() -> list[envelope.Envelope]:
    single = envelope.sign(KEY, "item.feedback", b"\x81\xa1x\x01" * 70)  # a bin8 body
    batch = envelope.sign_batch(KEY, [("item.updated", bytes([n]) * 300) for n in range(5)])
    return [single, *batch]  # bin16 bodies, Merkle proofs


ENVELOPES = _signed()


def test_own_encoder_writes_the_canonical_form() -> None:
    """Every envelope this node signs, single or batched, is the canonical encoding
    (the shortest headers, keys sorted) and goes the compiled fast path."""
    for env in ENVELOPES:
        never = _write(_wire(env), lambda: 0, lambda keys: keys)
        assert never == env.raw
        assert envelope._parse_fast(env.raw) == env
        assert envelope.parse(env.raw) == env


@pytest.mark.parametrize("index", range(len(ENVELOPES)))
def test_known_re_encodings_are_refused(index: int) -> None:
    env = ENVELOPES[index]
    wire = _wire(env)
    variants = {
        "keys reversed": _write(wire, lambda: 0, lambda keys: keys[::-1]),
        "version as uint8": env.raw[:-1] + b"\xcc\x01",  # "v" is the last key
        "every header widest": _write(wire, lambda: 8, lambda keys: keys),
        "map16 outside": b"\xde" + struct.pack(">H", len(wire)) + env.raw[1:],
    }
    for name, raw in variants.items():
        assert raw != env.raw, name
        with pytest.raises(ProtocolError) as caught:
            envelope.parse(raw)
        assert caught.value.reason == errors.NON_CANONICAL, name
        # The same value, the same signature: it would have verified.
        assert codec.decode(raw, envelope.ENVELOPE_LIMITS) == wire, name


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_every_re_encoding_is_refused_or_is_the_same_bytes(data: st.DataObject) -> None:
    env = data.draw(st.sampled_from(ENVELOPES))
    wire = _wire(env)
    widths = st.integers(0, 8)
    raw = _write(
        wire,
        lambda: data.draw(widths),
        lambda keys: data.draw(st.permutations(keys)),
    )
    try:
        parsed = envelope.parse(raw)
    except ProtocolError as exc:
        assert exc.reason == errors.NON_CANONICAL
        assert raw != env.raw
        return
    # Accepted: only the canonical bytes, hence the same event id.
    assert raw == env.raw
    assert parsed.event_id == env.event_id


def test_the_fast_and_strict_paths_agree_on_canonical_form() -> None:
    """The strict path refuses what the fast path declines for its encoding alone."""
    env = ENVELOPES[1]
    widened = _write(_wire(env), lambda: 1, lambda keys: keys)
    assert envelope._parse_fast(widened) is None
    with pytest.raises(ProtocolError) as caught:
        envelope._parse_strict(widened)
    assert caught.value.reason == errors.NON_CANONICAL
