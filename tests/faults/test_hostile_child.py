"""The hostile-child run: a township with a valid key attacks its county while the
whole chain keeps working, and afterwards nothing acknowledged is lost or doubled.

A chain province → city → county → township of real nodes in this process, each
child behind its own (quiet) proxy. Honest API writers keep writing at the
province, the city and the county throughout. The township is stopped and its key
is used by hand, as a hostile township would, for every attack of issue 16 on the
sync endpoints, one after another:

- a Lamport clock at the protocol's largest value and one far ahead of the
  county's (``clock_too_far_ahead``, never adopted by the county or above it);
- an upload of 100,000 one-byte events (``too_many_events``, before any work);
- batches of refused events beyond the per-link quota (kept within it, the rest
  counted as dropped), one summary log line per batch;
- field names, types and query strings with newlines (no forged log line);
- re-encoded copies of the township's real events (``non_canonical``, never a
  second event), then the real ones, then a late replay of the first upload (the
  county's cursor never moves back);
- integers beyond 2**63 and a value nested 1,000 deep (400, never 500);
- connections that send half a request head and wait (closed by the head timeout
  while the county goes on serving).

Then the township is started again and catches up. The checks are the suite's
(tests/faults/checker.py): every acknowledged write, the township's own included,
exactly once at every node that must hold it; mirrors equal their owners'
replays; and every node, the township included, can still write.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import msgpack
import pytest

from node.clock import SystemClock
from node.context import open_node
from node.storage.events import EventLog
from protocol import codec, envelope, errors
from protocol.events import MAX_COUNTER, encode_event
from protocol.keys import SigningKey
from tests.faults import checker
from tests.faults.checker import Write
from tests.faults.tree import (
    CHAIN,
    FAULT_SYNC,
    Outcome,
    ProxiedTree,
    fresh_writes,
    keep_writing,
    proxied,
)
from tests.federation import eventually
from tests.integration.test_sync_refusals import As, self_assignments

SEED = 16_016
PROVINCE, CITY, COUNTY, TOWN = (node for node, _, _, _ in CHAIN)
AHEAD = 1_000_000
KEEP_EVENTS = 20
SETTINGS = {
    **FAULT_SYNC,
    "sync.max_clock_ahead": AHEAD,
    "sync.receive_max_events": 200,
    "sync.refused_keep_events": KEEP_EVENTS,
    "sync.refused_keep_bytes": 200_000,
    "server.head_timeout_seconds": 1.0,
}
HONEST_WRITERS = (PROVINCE, CITY, COUNTY)


def signed(key: SigningKey, seq: int, lamport: int, now: int, title: str) -> bytes:
    event = self_assignments(TOWN, 1, title)[0](seq, lamport, now)
    return envelope.sign(key, *encode_event(event)).raw


def re_encoded(raw: bytes) -> bytes:
    """The same envelope with its outer map's keys in another order: other bytes,
    and a signature that still verifies (it covers only the type and body)."""
    wire = codec.decode(raw, envelope.ENVELOPE_LIMITS)
    assert isinstance(wire, dict)
    out: bytes = msgpack.packb(dict(reversed(list(wire.items()))), use_bin_type=True)
    assert out != raw
    return out


async def clock_of(store: EventLog) -> int:
    value = await store.meta("lamport")
    return 0 if value is None else int(codec.decode(value))  # type: ignore[arg-type]


def converged(fed: ProxiedTree, writes: list[Write]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return checker.converged(fed.parents, fed.dbs, writes)

    return check


async def half_heads(port: int, n: int) -> list[asyncio.StreamReader]:
    """``n`` connections that send the start of a request head and nothing more."""
    readers = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        readers.append(reader)
    return readers


async def test_a_hostile_township_cannot_stop_its_ancestors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with proxied(tmp_path, SystemClock(), CHAIN, seed=SEED, extra=SETTINGS) as fed:
        county = fed[COUNTY]
        async with aiohttp.ClientSession() as session:
            urls = {n: fed[n].url for n in fed.parents}
            first = await fresh_writes(session, fed.parents, urls, fed.tokens)
            await eventually(converged(fed, first),
                             timeout=30, what="the chain to settle")
            clocks = {n: await clock_of(fed[n].ctx.store) for n in fed.parents}

            # The township goes quiet; what it writes offline is its own, acknowledged
            # locally, and must reach every ancestor once it syncs again.
            await fed[TOWN].stop()
            town = await open_node(fed[TOWN].config, fed.tree.clock)
            try:
                own = await town.store.append_own(self_assignments(TOWN, 6, "镇离线事项"))
                key = town.key
            finally:
                await town.close()
            offline = [Write(TOWN, event.item, TOWN) for event, _ in own]
            raws = [env.raw for _, env in own]
            next_seq = max(event.seq for event, _ in own) + 1

            outcome = Outcome()
            stop = asyncio.Event()
            rng = random.Random(SEED)
            writers = [
                asyncio.create_task(keep_writing(
                    session, fed.parents, n, urls[n], fed.tokens[n], outcome, stop, rng,
                    pause=0.1))
                for n in HONEST_WRITERS
            ]
            me = As(session, county, TOWN, key)
            now = fed.tree.clock.now_ms()
            try:
                # 1. Clocks: the largest one, and one far ahead of the county's.
                reply = await me.push([signed(key, next_seq, MAX_COUNTER, now, "毒"),
                                       signed(key, next_seq, clocks[COUNTY] + 10 * AHEAD,
                                              now, "毒")], 0)
                assert reply.status == 200, reply
                assert [r[1] for r in reply.value["refused"]] == [
                    errors.CLOCK_TOO_FAR_AHEAD] * 2

                # 2. One upload of 100,000 one-byte events.
                flood = codec.encode({"through": 0, "events": [b"x"] * 100_000})
                reply = await me.call("POST", "/sync/v1/up", flood)
                assert (reply.status, reply.error) == (413, errors.TOO_MANY_EVENTS)

                # 3. Refused events well beyond the quota, in three batches.
                for batch in range(3):
                    poison = [signed(key, next_seq + i, MAX_COUNTER, now, f"毒{batch}")
                              for i in range(150)]
                    reply = await me.push(poison, 0)
                    assert reply.status == 200 and len(reply.value["refused"]) == 150

                # 4. What a peer controls, with newlines, towards the county's log.
                event = self_assignments(TOWN, 1, "x")[0](next_seq, 5, now)
                type_, body = encode_event(event)
                value = codec.decode(body)
                assert isinstance(value, dict)
                value["zz\nWARNING forged: all is well"] = 1
                wire = codec.decode(envelope.sign(key, type_, body).raw)
                assert isinstance(wire, dict)
                wire["t"] = "bad\nWARNING forged"  # refused before its signature is read
                reply = await me.push([envelope.sign(key, type_, codec.encode(value)).raw,
                                       codec.encode(wire)], 0)
                assert reply.status == 200 and len(reply.value["refused"]) == 2
                reply = await me.call("GET", "/sync/v1/down?after=1%0AWARNING%20forged")
                assert reply.status == 400

                # 5. Re-encoded copies, the real events in two uploads, then the first
                #    upload again, late.
                # The cursor as the township left it (its stream holds its trust records
                # and its unit list before these events).
                start = (await me.call("GET", "/sync/v1/hello")).value["applied_pos"]
                reply = await me.push([re_encoded(r) for r in raws], 0)
                assert [r[1] for r in reply.value["refused"]] == [errors.NON_CANONICAL] * 6
                assert (await me.push(raws[:3], 3)).value["accepted"] == 3
                assert (await me.push(raws[3:], 6)).value["accepted"] == 3
                late = await me.push(raws[:3], 3)
                assert late.status == 200 and late.value["accepted"] == 0
                hello = await me.call("GET", "/sync/v1/hello")
                assert hello.value["applied_pos"] == max(start, 6), hello

                # 6. Integers past 2**63, a value nested 1,000 deep.
                huge = codec.encode({"through": 0, "events": []}).replace(
                    b"\xa7through\x00", b"\xa7through\xcf" + (2**64 - 1).to_bytes(8, "big"))
                assert (await me.call("POST", "/sync/v1/up", huge)).status == 400
                reply = await me.call("GET", f"/sync/v1/down?after={2**70}")
                assert reply.status == 400
                deep = b"\x81\xa1v" + b"\x91" * 1000 + b"\xc0"
                reply = await me.push([deep], 0)
                assert reply.status == 200 and len(reply.value["refused"]) == 1

                # 7. Half request heads, held open: the county must go on serving.
                held = await half_heads(county.port, 20)
                await asyncio.sleep(0.5)
                assert (await me.call("GET", "/sync/v1/hello")).status == 200
                closed = await asyncio.wait_for(
                    asyncio.gather(*(r.read() for r in held)), timeout=10)
                assert all(b"408" in answer or answer == b"" for answer in closed)
            finally:
                stop.set()
                await asyncio.gather(*writers)

            # The township is back: it catches up and goes on.
            await fed[TOWN].start()
            writes = first + outcome.acked + offline
            assert len(outcome.acked) > 10, outcome
            await eventually(converged(fed, writes),
                             timeout=60, what="the chain to converge after the attacks")
            checker.check(fed.parents, fed.dbs, writes).assert_ok()
            after = await fresh_writes(session, fed.parents, urls, fed.tokens)
            await eventually(
                converged(fed, writes + after),
                timeout=30, what="writes after the attacks to sync")
            checker.check(fed.parents, fed.dbs, writes + after).assert_ok()

        # No clock was pushed anywhere near the poison; the county kept its quota.
        for node in fed.parents:
            assert await clock_of(fed[node].ctx.store) < clocks[node] + AHEAD, node
        [status] = await county.ctx.outbox.link_statuses([TOWN])
        assert status.refused_dropped >= 450 + 10 - KEEP_EVENTS
        assert (await county.ctx.store.counts())["refused"] <= KEEP_EVENTS
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "\n" in m]
    refusal_lines = [m for m in messages if "refused" in m and TOWN in m]
    assert len(refusal_lines) < 60, refusal_lines[:5]
