"""What our protocol layer costs over the raw libraries, measured in one run.

Prints envelopes signed, verified, encoded and decoded per second, each beside
the raw `cryptography` / `msgpack` figure for the same work, and the ratio.
Run: python bench/protocol.py [--n 5000]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the package it measures: keep bench/ off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import time
from collections.abc import Callable

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import codec, envelope
from protocol.keys import SigningKey


def rate(n: int, fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def sample_body(i: int) -> dict[str, codec.Value]:
    return {
        "item": f"14-{i:06d}",
        "origin": "140105001",
        "seq": i + 1,
        "lamport": i + 10,
        "at": 1_790_000_000_000 + i,
        "to": "14",
        "text": "已召开专题会议研究部署，明确责任人和时间节点。" * 2,
        "progress": 40,
        "attachments": [bytes(32)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    n = parser.parse_args().n

    key = SigningKey.from_seed(b"\x01" * 32)
    raw_key = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
    raw_pub = raw_key.public_key()
    values = [sample_body(i) for i in range(n)]
    bodies = [codec.encode(v) for v in values]
    envs = [envelope.sign(key, "item.feedback", b) for b in bodies]
    raws = [e.raw for e in envs]
    batched = envelope.sign_batch(key, [("item.feedback", b) for b in bodies])
    sigs = [raw_key.sign(b) for b in bodies]

    rows = [
        ("sign", lambda: [envelope.sign(key, "item.feedback", b) for b in bodies],
         lambda: [raw_key.sign(b) for b in bodies]),
        ("verify", lambda: [envelope.parse(r).verify(key.verify_key) for r in raws],
         lambda: [raw_pub.verify(s, b) for s, b in zip(sigs, bodies, strict=True)]),
        ("encode", lambda: [codec.encode(v) for v in values],
         lambda: [msgpack.packb(v, use_bin_type=True) for v in values]),
        ("decode", lambda: [codec.decode(b) for b in bodies],
         lambda: [msgpack.unpackb(b, raw=False) for b in bodies]),
        ("sign batch", lambda: envelope.sign_batch(key, [("item.feedback", b) for b in bodies]),
         lambda: [raw_key.sign(b) for b in bodies]),
        ("verify batch", lambda: envelope.verify_all(
            [envelope.parse(e.raw) for e in batched], lambda _k: key.verify_key),
         lambda: [raw_pub.verify(s, b) for s, b in zip(sigs, bodies, strict=True)]),
    ]
    print(f"protocol bench: n={n} body={len(bodies[0])} B envelope={len(raws[0])} B")
    print(f"{'operation':<14}{'duban/s':>12}{'raw/s':>12}{'ratio':>8}")
    for name, ours, raw in rows:
        a, b = rate(n, ours), rate(n, raw)
        print(f"{name:<14}{a:>12,.0f}{b:>12,.0f}{a / b:>8.2f}")


if __name__ == "__main__":
    main()
