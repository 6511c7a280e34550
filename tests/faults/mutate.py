"""Seeded mutations of valid wire bytes for the sync fuzz (tests/faults/test_fuzz_sync.py).

Each mutator takes a random generator and valid msgpack bytes and returns other
bytes: bit flips, truncations, extensions, garbage, re-encodings of the same
value in non-canonical forms (wider headers, other key order), huge integers,
deep nesting, wrong types, duplicate keys and extension types.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from typing import Any

import msgpack

Mutator = Callable[[random.Random, bytes], bytes]


def wide(value: Any, rng: random.Random) -> bytes:
    """``value`` in msgpack with the widest headers (map32, str32, uint64...) and keys in
    a random order: the same value, other bytes."""
    if isinstance(value, bool) or value is None:
        return msgpack.packb(value)
    if isinstance(value, int):
        if value >= 0:
            return b"\xcf" + struct.pack(">Q", value) if value < 2**64 else msgpack.packb(0)
        return b"\xd3" + struct.pack(">q", value)
    if isinstance(value, str):
        data = value.encode()
        return b"\xdb" + struct.pack(">I", len(data)) + data
    if isinstance(value, bytes):
        return b"\xc6" + struct.pack(">I", len(value)) + value
    if isinstance(value, list | tuple):
        return b"\xdd" + struct.pack(">I", len(value)) + b"".join(wide(v, rng) for v in value)
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return b"\xdf" + struct.pack(">I", len(items)) + b"".join(
            wide(k, rng) + wide(v, rng) for k, v in items)
    return msgpack.packb(value)


def loads(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


def bit_flip(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def truncate(rng: random.Random, raw: bytes) -> bytes:
    return raw[: rng.randrange(len(raw))] if raw else raw


def extend(rng: random.Random, raw: bytes) -> bytes:
    return raw + rng.randbytes(rng.randint(1, 16))


def garbage(rng: random.Random, raw: bytes) -> bytes:
    return rng.randbytes(rng.choice((0, 1, 2, 7, 64, 1000)))


def reencode(rng: random.Random, raw: bytes) -> bytes:
    """The same value with other headers and key order (an honest relay could not
    tell them apart; only the signed bytes may count)."""
    try:
        return wide(loads(raw), rng)
    except Exception:
        return bit_flip(rng, raw)


def reshuffle(rng: random.Random, raw: bytes) -> bytes:
    """The same map with its keys in another order, otherwise canonical."""
    try:
        value = loads(raw)
    except Exception:
        return truncate(rng, raw)
    if isinstance(value, dict) and len(value) > 1:
        items = list(value.items())
        turn = rng.randint(1, len(items) - 1)  # another order for sure
        return msgpack.packb(dict(items[turn:] + items[:turn]))
    return wide(value, rng)


HUGE = (2**63, 2**63 + 1, 2**64 - 1, -(2**63), -1, 2**62 + 1, 2**31, -(2**31) - 1)


def huge_ints(rng: random.Random, raw: bytes) -> bytes:
    """Replace an integer of the value (or the value itself) with an edge of int64/uint64."""
    try:
        value = loads(raw)
    except Exception:
        return msgpack.packb(rng.choice(HUGE))
    big = rng.choice(HUGE)
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        value[key] = big
        return msgpack.packb(value)
    return msgpack.packb(big)


def nest(rng: random.Random, raw: bytes) -> bytes:
    depth = rng.choice((4, 20, 100, 1000, 5000))
    inner: Any = rng.choice(([], {}, 0, "x"))
    for _ in range(depth):
        inner = [inner] if rng.random() < 0.5 else {"a": inner}
    try:
        value = loads(raw)
        if isinstance(value, dict) and value:
            value[rng.choice(list(value))] = inner
            return msgpack.packb(value)
    except Exception:
        pass
    try:
        return msgpack.packb(inner)
    except (ValueError, RecursionError):
        return b"\x91" * depth + b"\xc0"  # the same, written by hand


WRONG = (None, True, 1.5, "0", b"\x00", [], {}, [b"x"], {"a": 1}, -1, [1, 2, 3])


def wrong_type(rng: random.Random, raw: bytes) -> bytes:
    try:
        value = loads(raw)
    except Exception:
        return msgpack.packb(rng.choice(WRONG))
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        value[key] = rng.choice(WRONG)
        return msgpack.packb(value)
    return msgpack.packb(rng.choice(WRONG))


def dup_key(rng: random.Random, raw: bytes) -> bytes:
    """A map with one key twice (msgpack allows the bytes; our codec must not)."""
    try:
        value = loads(raw)
    except Exception:
        return b"\x82\xa1a\x01\xa1a\x02"
    if isinstance(value, dict) and value:
        items = list(value.items())
        k, v = rng.choice(items)
        head = b"\xde" + struct.pack(">H", len(items) + 1)
        return head + b"".join(msgpack.packb(a) + msgpack.packb(b) for a, b in items) + (
            msgpack.packb(k) + msgpack.packb(v))
    return b"\x82\xa1a\x01\xa1a\x02"


def ext_type(rng: random.Random, raw: bytes) -> bytes:
    ext = msgpack.ExtType(rng.randint(0, 127), rng.randbytes(rng.choice((1, 2, 4, 8, 16))))
    try:
        value = loads(raw)
        if isinstance(value, dict) and value:
            value[rng.choice(list(value))] = ext
            return msgpack.packb(value)
    except Exception:
        pass
    return msgpack.packb(ext)


MUTATORS: tuple[Mutator, ...] = (
    bit_flip, bit_flip, truncate, extend, garbage, reencode, reshuffle, huge_ints, nest,
    wrong_type, dup_key, ext_type,
)


def mutate(rng: random.Random, raw: bytes) -> tuple[str, bytes]:
    """One random mutation: (its name, the bytes)."""
    mutator = rng.choice(MUTATORS)
    return mutator.__name__, mutator(rng, raw)
