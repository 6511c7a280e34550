"""What our protocol layer costs over the raw libraries, measured in one run.

Prints envelopes signed, verified, encoded and decoded per second, each beside
the raw `cryptography` / `msgpack` figure for the same work, and the ratio.
Then the receiving side of a catch-up on a realistic mix (``--mix`` events as
bench/catchup.py writes them: 80 % assignments, 20 % updates of earlier items,
signed in Merkle batches of 1000): CPU seconds of ``envelope.parse``,
``codec.decode``, ``decode_event``, ``verify_all`` (Merkle paths, and one
Ed25519 signature per batch) and the ``fold`` of every item, beside plain
``msgpack.unpackb`` of the same bytes. CPU time
(``time.process_time``), best of ``--repeat`` runs: the machine is shared.
Run: python bench/protocol.py [--n 5000] [--mix 10000] [--repeat 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the package it measures: keep bench/ off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import gc
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import codec, envelope, rules
from protocol.events import Assigned, Deadlines, Event, Updated, decode_event, encode_event
from protocol.fold import fold
from protocol.keys import SigningKey

PROVINCE = "14"
TOWNSHIP = "140105001"
T0 = 1_793_000_000_000


def cpu_seconds(fn: Callable[[], object], repeat: int) -> float:
    """Best CPU time of ``repeat`` runs of ``fn`` (process time: robust to a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()  # start each run from the same heap, not one left by the run before
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def rate(n: int, fn: Callable[[], None]) -> float:
    return n / cpu_seconds(fn, 3)


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


def catchup_mix(n: int, seed: int = 1) -> list[Event]:
    """``n`` events from the province to the township, as bench/catchup.py queues them."""
    rng = random.Random(seed)
    out: list[Event] = []
    assigned: list[str] = []
    for i in range(n):
        seq, at = i + 1, T0 + 1000 * i
        header = {"origin": PROVINCE, "seq": seq, "lamport": seq, "at": at, "to": TOWNSHIP}
        if assigned and rng.random() < 0.2:
            item = rng.choice(assigned)
            if rng.random() < 0.5:
                out.append(Updated(item=item, **header, title=f"（更新）农村人居环境整治第{i}项"))
            else:
                far = 4_000_000_000_000 + i
                out.append(Updated(
                    item=item, **header,
                    deadlines=Deadlines(deploy=far, feedback=far + 1, resolve=far + 2),
                    description="按省政府专题会议要求延期，并补充整改要求。",
                ))
            continue
        item_class = rng.choice(("general", "general", "major"))
        computed = rules.compute_deadlines(assigned_at=at, item_class=item_class,
                                           calendar="natural")
        event = Assigned(
            item=f"{PROVINCE}-{seq:06d}", **header, title=f"农村人居环境整治第{i}项",
            description="按照省委常委会部署，于规定时限内研究部署并反馈办理情况。" * 2,
            board=rng.choice(("daily", "key_task", "reform", "engineering")), source="office",
            item_class=item_class, assigner=PROVINCE, assignee=TOWNSHIP, co_units=(),
            calendar="natural", deadlines=computed.deadlines,
        )
        assigned.append(event.item)
        out.append(event)
    return out


def catchup_rows(n: int, repeat: int) -> None:
    """CPU seconds of each receiving step over ``n`` events of the catch-up mix."""
    key = SigningKey.from_seed(b"\x02" * 32)
    events = catchup_mix(n)
    wire = [encode_event(ev) for ev in events]
    envs = [e for i in range(0, n, 1000) for e in envelope.sign_batch(key, wire[i : i + 1000])]
    raws = [e.raw for e in envs]
    bodies = [body for _type, body in wire]
    ids = [e.event_id for e in envs]
    by_item: dict[str, list[tuple[str, Event]]] = defaultdict(list)
    for event_id, event in zip(ids, events, strict=True):
        by_item[event.item].append((event_id, event))

    raw_unpack = msgpack.unpackb
    rows: list[tuple[str, Callable[[], object]]] = [
        ("msgpack.unpackb envelopes", lambda: [raw_unpack(r) for r in raws]),
        ("envelope.parse", lambda: [envelope.parse(r) for r in raws]),
        ("msgpack.unpackb bodies", lambda: [raw_unpack(b) for b in bodies]),
        ("codec.decode bodies", lambda: [codec.decode(b) for b in bodies]),
        ("decode_event", lambda: [decode_event(t, b) for t, b in wire]),
        ("verify_all (Merkle paths)", lambda: envelope.verify_all(envs, lambda _k: key.verify_key)),
        (f"fold ({len(by_item)} items)", lambda: [fold(p) for p in by_item.values()]),
    ]
    print(f"\ncatch-up mix: {n} events ({sum(type(e) is Updated for e in events)} updates), "
          f"{len(by_item)} items, body {sum(map(len, bodies)) // n} B, "
          f"envelope {sum(map(len, raws)) // n} B; CPU s, best of {repeat}")
    print(f"{'step':<28}{'CPU s':>9}{'µs/event':>10}{'x msgpack':>11}")
    base = {"envelope.parse": 0, "codec.decode bodies": 2, "decode_event": 2}
    figures: list[float] = []
    for name, fn in rows:
        seconds = cpu_seconds(fn, repeat)
        figures.append(seconds)
        ratio = f"{seconds / figures[base[name]]:>11.1f}" if name in base else ""
        print(f"{name:<28}{seconds:>9.3f}{seconds / n * 1e6:>10.1f}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--mix", type=int, default=10_000, help="events of the catch-up mix")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only-mix", action="store_true", help="skip the per-operation rates")
    args = parser.parse_args()
    n = args.n
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.only_mix:
        catchup_rows(args.mix, args.repeat)
        return

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
    catchup_rows(args.mix, args.repeat)


if __name__ == "__main__":
    main()
