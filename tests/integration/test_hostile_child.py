"""What a hostile child with a valid key can do to its parent over the sync endpoints.

The tree of test_sync_refusals (a province, two cities, a county under the first
city), each node a real aiohttp server on loopback with its own SQLite file. The
county is stopped; its requests are made by hand with its own key, as a hostile
county would, and the city (and through it the province) must stay able to work:

- a Lamport clock far ahead is refused (``clock_too_far_ahead``), never adopted,
  and a node poisoned before the fix recovers when it starts;
- batches are bounded, refused events are kept within a quota per link, one log
  line per batch, nothing a peer sent reaches the log unescaped;
- a late duplicate upload never moves a cursor back;
- every integer a peer sends is bounded (400, not 500), and a re-encoded envelope
  is not a second event.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest
from sqlalchemy import func, select

from node.app import status_payload
from node.context import open_node
from node.demo.localtree import LocalTree
from node.storage import schema as t
from node.storage.events import PARENT, Accepted, EventLog
from protocol import codec, envelope, errors
from protocol.events import LAMPORT_CEILING, MAX_COUNTER, decode_event, encode_event
from protocol.keys import SigningKey
from tests.federation import eventually, folded
from tests.integration.test_sync_refusals import (
    BATCH_BYTES,
    CITY,
    COUNTY,
    As,
    assert_sync_still_works,
    county_stopped,
    offline_county,
    refused_rows,
    self_assignments,
    seqs_of,
)

AHEAD = 1_000_000  # sync.max_clock_ahead here (the default is far larger)
MAX_IN = 40  # sync.receive_max_events
KEEP_EVENTS = 5  # sync.refused_keep_events
KEEP_BYTES = 3_000  # sync.refused_keep_bytes
SETTINGS = {
    "sync.batch_bytes": BATCH_BYTES,
    "sync.batch_events": MAX_IN,
    "sync.max_clock_ahead": AHEAD,
    "sync.receive_max_events": MAX_IN,
    "sync.refused_keep_events": KEEP_EVENTS,
    "sync.refused_keep_bytes": KEEP_BYTES,
}


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[LocalTree]:
    async with county_stopped(tmp_path, SETTINGS) as tree:
        yield tree


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def county_key(fed: LocalTree) -> SigningKey:
    county = await offline_county(fed)
    try:
        return county.key
    finally:
        await county.close()


def hostile(key: SigningKey, seq: int, lamport: int, now: int, title: str = "毒") -> bytes:
    """A correctly signed county event with the clock the county chooses."""
    event = self_assignments(COUNTY, 1, title)[0](seq, lamport, now)
    return envelope.sign(key, *encode_event(event)).raw


async def clock_of(store: EventLog) -> int:
    value = await store.meta("lamport")
    return 0 if value is None else int(codec.decode(value))  # type: ignore[arg-type]


async def can_still_write(store: EventLog) -> int:
    [(event, _)] = await store.append_own(self_assignments(store.me, 1, "照常"))
    return event.lamport


# ------------------------------------------------------------------------ clocks


async def test_a_far_ahead_clock_is_refused_and_never_adopted(
    fed: LocalTree, session: aiohttp.ClientSession
) -> None:
    city, province = fed[CITY], fed["14"]
    key = await county_key(fed)
    me = As(session, city, COUNTY, key)
    now = fed.clock.now_ms()
    start = await clock_of(city.ctx.store)

    # The poison of issue 16: one valid event at the protocol's largest clock.
    poison = hostile(key, 1001, MAX_COUNTER, now)
    reply = await me.push([poison], 0)
    assert reply.status == 200
    assert [r[1] for r in reply.value["refused"]] == [errors.CLOCK_TOO_FAR_AHEAD]
    assert (errors.CLOCK_TOO_FAR_AHEAD, envelope.parse(poison).event_id) in [
        (r, e.hex() if e else None) for r, e in await refused_rows(city)
    ]
    assert await clock_of(city.ctx.store) == start
    assert await can_still_write(city.ctx.store) == start + 1

    # One past the bound is refused; exactly at it is accepted (an honest gap).
    base = await clock_of(city.ctx.store)
    reply = await me.push([hostile(key, 1002, base + AHEAD + 1, now)], 0)
    assert [r[1] for r in reply.value["refused"]] == [errors.CLOCK_TOO_FAR_AHEAD]
    reply = await me.push([hostile(key, 1003, base + AHEAD, now)], 0)
    assert (reply.value["accepted"], reply.value["refused"]) == (1, [])
    assert await clock_of(city.ctx.store) == base + AHEAD
    assert await can_still_write(city.ctx.store) == base + AHEAD + 1

    # The province took the accepted one (within its own bound) and still writes.
    async def mirrored() -> bool:
        return 1003 in await seqs_of(province, COUNTY)

    await eventually(mirrored, what="the accepted event at the province")
    assert await can_still_write(province.ctx.store) < LAMPORT_CEILING
    assert 1001 not in await seqs_of(province, COUNTY)
    await assert_sync_still_works(fed)


async def test_a_clock_is_never_pushed_past_its_ceiling(
    fed: LocalTree, session: aiohttp.ClientSession
) -> None:
    """Even within the distance allowed, no received clock above the ceiling is
    adopted: a node keeps the room it needs to write (2**62 events)."""
    city = fed[CITY]
    await city.stop()
    offline = await open_node(city.config, fed.clock)
    try:
        async with offline.db.write() as conn:
            await EventLog.set_meta(conn, "lamport", codec.encode(LAMPORT_CEILING - 10))
    finally:
        await offline.close()
    await city.start()
    key = await county_key(fed)
    me = As(session, city, COUNTY, key)
    reply = await me.push([hostile(key, 1001, LAMPORT_CEILING + 5, fed.clock.now_ms())], 0)
    assert [r[1] for r in reply.value["refused"]] == [errors.CLOCK_TOO_FAR_AHEAD]
    assert await clock_of(city.ctx.store) == LAMPORT_CEILING - 10
    assert await can_still_write(city.ctx.store) == LAMPORT_CEILING - 9


async def test_a_node_poisoned_before_the_fix_recovers_when_it_starts(fed: LocalTree) -> None:
    """A city that adopted 2**63-1 under the old code (the event stored, the clock
    raised) starts again, takes its clock back from the events below the ceiling, and
    writes; its parent refuses the stored poison with the reason."""
    city, province = fed[CITY], fed["14"]
    key = await county_key(fed)
    poison = hostile(key, 1001, MAX_COUNTER, fed.clock.now_ms())
    await city.stop()
    offline = await open_node(city.config, fed.clock)
    try:
        env = envelope.parse(poison)
        [d] = await offline.ingestor.decode([poison])
        assert d.event is not None
        accepted = Accepted(env=env, event=d.event, origin=COUNTY, origin_seq=1001)
        async with offline.db.write() as conn:  # what the old record_batch did
            await offline.store.insert_accepted(conn, [accepted], COUNTY, fed.clock.now_ms())
            await EventLog.set_meta(conn, "lamport", codec.encode(MAX_COUNTER))
            honest = await conn.scalar(
                select(func.max(t.events.c.lamport)).where(t.events.c.lamport <= LAMPORT_CEILING)
            )
    finally:
        await offline.close()
    await city.start()
    assert await clock_of(city.ctx.store) <= LAMPORT_CEILING
    assert await can_still_write(city.ctx.store) == int(honest or 0) + 1

    async def refused_above() -> bool:
        return (errors.CLOCK_TOO_FAR_AHEAD, env.event_id) in [
            (r, e.hex() if e else None) for r, e in await refused_rows(province)
        ]

    await eventually(refused_above, what="the province to refuse the stored poison")
    assert await can_still_write(province.ctx.store) < 2**32


# ----------------------------------------------------------------- disk and log


async def test_a_batch_over_the_limit_is_refused_before_any_work(
    fed: LocalTree, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    city = fed[CITY]
    me = As(session, city, COUNTY, await county_key(fed))
    before = await city.ctx.store.counts()
    reply = await me.push([b"\x01"] * (MAX_IN + 1), 0)
    assert (reply.status, reply.error) == (413, errors.TOO_MANY_EVENTS)
    assert await city.ctx.store.counts() == before
    assert await refused_rows(city) == []
    assert sum(errors.TOO_MANY_EVENTS in r.getMessage() for r in caplog.records) == 1
    reply = await me.push([b"\x01"] * MAX_IN, 0)
    assert reply.status == 200 and len(reply.value["refused"]) == MAX_IN


async def test_refused_events_are_kept_within_a_quota_and_logged_once_per_batch(
    fed: LocalTree, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    city = fed[CITY]
    me = As(session, city, COUNTY, await county_key(fed))
    sent: list[bytes] = []
    for batch in range(3):
        caplog.clear()
        raws = [bytes([0xC1]) + os.urandom(300) for _ in range(20)]
        sent += raws
        reply = await me.push(raws, 0)
        assert reply.status == 200 and len(reply.value["refused"]) == 20, batch
        ingest_lines = [r for r in caplog.records if r.name == "node.sync.ingest"]
        assert len(ingest_lines) == 1, [r.getMessage() for r in ingest_lines]
        assert "20 refused" in ingest_lines[0].getMessage()
    async with city.ctx.db.read() as conn:
        kept = [
            r[0]
            for r in await conn.execute(
                select(t.refused.c.raw).where(t.refused.c.source == COUNTY).order_by(t.refused.c.id)
            )
        ]
    assert len(kept) <= KEEP_EVENTS and sum(map(len, kept)) <= KEEP_BYTES
    assert kept == sent[-len(kept):]  # the newest are kept
    [status] = await city.ctx.outbox.link_statuses([COUNTY])
    assert status.refused_dropped == len(sent) - len(kept)
    payload = await status_payload(city.ctx)
    [link] = [x for x in payload["links"] if x["link"] == COUNTY]  # type: ignore[attr-defined]
    assert link["refused_dropped"] == len(sent) - len(kept)
    await assert_sync_still_works(fed)


async def test_what_a_peer_sends_never_forges_a_log_line(
    fed: LocalTree, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    city = fed[CITY]
    key = await county_key(fed)
    me = As(session, city, COUNTY, key)
    event = self_assignments(COUNTY, 1, "x")[0](1001, 5, fed.clock.now_ms())
    type_, body = encode_event(event)
    value = codec.decode(body)
    assert isinstance(value, dict)
    value["zz\nWARNING forged: everything is fine"] = 1
    forged_field = envelope.sign(key, type_, codec.encode(value)).raw
    reply = await me.push([forged_field], 0)
    assert reply.status == 200 and len(reply.value["refused"]) == 1
    await me.call("GET", "/sync/v1/down?after=1%0AWARNING%20forged")
    for record in caplog.records:
        assert "\n" not in record.getMessage(), record.getMessage()
    assert any("forged" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------- cursors


async def test_a_late_duplicate_upload_never_moves_the_cursor_back(
    fed: LocalTree, session: aiohttp.ClientSession
) -> None:
    city = fed[CITY]
    county = await offline_county(fed)
    try:
        made = await county.store.append_own(self_assignments(COUNTY, 6, "县事项"))
        raws, through_a, _ = await county.outbox.page(PARENT, 0, limit=3, max_bytes=10**6)
        rest, through_b, _ = await county.outbox.page(PARENT, through_a, limit=3, max_bytes=10**6)
        epoch = await county.store.epoch()
        key = county.key
    finally:
        await county.close()
    assert len(made) == 6 and through_b > through_a
    me = As(session, city, COUNTY, key)

    async def push(events: list[bytes], through: int, **extra: Any) -> Any:
        body = codec.encode({"through": through, "events": events, "epoch": epoch, **extra})
        return await me.call("POST", "/sync/v1/up", body)

    assert (await push(raws, through_a)).status == 200
    assert (await push(rest, through_b)).status == 200
    late = await push(raws, through_a)  # the first upload, delivered late
    assert late.status == 200 and late.value["applied_pos"] == through_b
    hello = await me.call("GET", "/sync/v1/hello")
    assert hello.value["applied_pos"] == through_b
    assert (await city.ctx.outbox.link_row(COUNTY))["applied_pos"] == through_b

    # The same for what the county acknowledged of the city's stream.
    await me.call("GET", f"/sync/v1/down?after={through_b}&ack={through_b}&wait=1")
    await me.call("GET", "/sync/v1/down?after=1&ack=1&wait=1")
    assert (await city.ctx.outbox.link_row(COUNTY))["acked_pos"] == through_b

    # A restored county starts a new stream epoch: its positions were renumbered.
    renumbered = await me.call(
        "POST", "/sync/v1/up",
        codec.encode({"through": 2, "events": [], "epoch": os.urandom(16)}),
    )
    assert renumbered.value["applied_pos"] == 2
    assert (await me.call("GET", "/sync/v1/hello")).value["applied_pos"] == 2


# ------------------------------------------------------------- integers, bytes


async def test_every_integer_a_peer_sends_is_bounded(
    fed: LocalTree, session: aiohttp.ClientSession
) -> None:
    city = fed[CITY]
    me = As(session, city, COUNTY, await county_key(fed))
    before = await city.ctx.store.counts()
    bodies = [
        {"through": 2**63, "events": []},
        {"through": 2**64 - 1, "events": []},
        {"through": 0, "events": [], "pending": 2**63},
        {"through": 0, "events": [], "epoch": b"short"},
    ]
    for body in bodies:
        reply = await me.call("POST", "/sync/v1/up", codec.encode(body))  # type: ignore[arg-type]
        assert (reply.status, reply.error) == (400, errors.MALFORMED), body
    for query in ("after=99999999999999999999", "after=-1", "ack=18446744073709551616",
                  "limit=1e9", "wait=%EF%BC%91", "after=1_0"):
        reply = await me.call("GET", f"/sync/v1/down?{query}")
        assert (reply.status, reply.error) == (400, "bad_param"), query
    reply = await me.call("GET", "/sync/v1/recover?after=9223372036854775808")
    assert (reply.status, reply.error) == (400, "bad_param")
    assert await city.ctx.store.counts() == before


async def test_a_re_encoded_envelope_is_not_a_second_event(
    fed: LocalTree, session: aiohttp.ClientSession
) -> None:
    city = fed[CITY]
    county = await offline_county(fed)
    try:
        [(_, env)] = await county.store.append_own(self_assignments(COUNTY, 1, "一次"))
        key = county.key
    finally:
        await county.close()
    wire = codec.decode(env.raw, envelope.ENVELOPE_LIMITS)
    assert isinstance(wire, dict)
    reordered = msgpack.packb(dict(reversed(list(wire.items()))), use_bin_type=True)
    assert reordered != env.raw
    me = As(session, city, COUNTY, key)
    reply = await me.push([reordered, env.raw, reordered], 0)
    assert reply.value["accepted"] == 1
    assert [r[1] for r in reply.value["refused"]] == [errors.NON_CANONICAL] * 2
    await folded(city)
    assert await seqs_of(city, COUNTY) == [env_seq(env)]


def env_seq(env: envelope.Envelope) -> int:
    return decode_event(env.type, env.body).seq


# ------------------------------------------------------------------ connections


async def test_a_child_holds_a_bounded_number_of_page_requests(
    fed: LocalTree, session: aiohttp.ClientSession
) -> None:
    """Thousands of long-polls from one child would each hold a socket and wake at
    every change; past MAX_DOWN_PER_CHILD the parent answers 429 at once."""
    from node.http.sync import MAX_DOWN_PER_CHILD

    city = fed[CITY]
    me = As(session, city, COUNTY, await county_key(fed))
    after = await city.ctx.outbox.max_route_pos(COUNTY)
    polls = [
        asyncio.ensure_future(me.call("GET", f"/sync/v1/down?after={after}&wait=20"))
        for _ in range(MAX_DOWN_PER_CHILD)
    ]
    try:
        await eventually(
            lambda: _true(city.ctx.presence.open_requests(COUNTY) == MAX_DOWN_PER_CHILD),
            what="the long-polls to be held",
        )
        began = asyncio.get_running_loop().time()
        reply = await me.call("GET", f"/sync/v1/down?after={after}&wait=20")
        assert (reply.status, reply.error) == (429, "too_many_requests")
        assert asyncio.get_running_loop().time() - began < 5
    finally:
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)


async def _true(value: bool) -> bool:
    return value


async def test_a_node_whose_clock_reached_the_ceiling_refuses_its_own_writes_clearly(
    fed: LocalTree, caplog: pytest.LogCaptureFixture
) -> None:
    """Its parent refuses any clock above the ceiling, so a node never writes one:
    at the ceiling its own writes are refused ``clock_exhausted`` (no event its parent
    would refuse, no two of its events at one clock, no false "poisoned" repair)."""
    city = fed[CITY]
    await city.stop()
    offline = await open_node(city.config, fed.clock)
    try:
        async with offline.db.write() as conn:
            await EventLog.set_meta(conn, "lamport", codec.encode(LAMPORT_CEILING - 2))
    finally:
        await offline.close()
    await city.start()
    store = city.ctx.store
    assert await can_still_write(store) == LAMPORT_CEILING - 1
    with pytest.raises(errors.ProtocolError) as caught:  # two would pass it
        await store.append_own(self_assignments(CITY, 2, "过界"))
    assert caught.value.reason == errors.CLOCK_EXHAUSTED
    assert await can_still_write(store) == LAMPORT_CEILING
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        with pytest.raises(errors.ProtocolError) as caught:
            await store.append_own(self_assignments(CITY, 1, "过界"))
        assert caught.value.reason == errors.CLOCK_EXHAUSTED
    assert await clock_of(store) == LAMPORT_CEILING
    async with city.ctx.db.read() as conn:
        own = [
            r[0]
            for r in await conn.execute(
                select(t.events.c.lamport).where(t.events.c.origin == CITY)
            )
        ]
    assert max(own) == LAMPORT_CEILING and len(own) == len(set(own))
    assert not any("taken back" in r.getMessage() for r in caplog.records)
