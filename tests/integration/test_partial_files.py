"""Partial files whose sender never comes back: dropped after ``sync.blob_partial_days``.

Real nodes over loopback on one injected clock (a county and two townships): each
township's upload is cut half-way; days later the county's expiry drops the parts
of the file that stopped advancing longest ago, frees their room in its quota and
keeps the fresher one; the township that comes back starts its file over and the
county's copy hashes right, the other resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path

import aiohttp
import pytest

from node.app import CLIENT
from node.clock import ManualClock
from node.demo.localtree import LocalTree, RunningNode
from node.storage.events import PARENT
from node.sync import blobs
from tests.api_client import Api, deployed_item, person
from tests.federation import build, eventually, folded

COUNTY, TOWN1, TOWN2 = "140101", "140101001", "140101002"
SHAPE = [
    (COUNTY, None, "小店区", "county"),
    (TOWN1, COUNTY, "坞城街道", "township"),
    (TOWN2, COUNTY, "营盘街道", "township"),
]
CHUNK = 2048
DAY_MS = 86_400_000
START_MS = 1_790_000_000_000


async def _report(town: Api, item: str, name: str, data: bytes) -> None:
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("text", "整改情况见附件")
    form.add_field("progress", "50")
    form.add_field("attachments", data, filename=name, content_type="application/octet-stream")
    await town.call("POST", f"/api/v1/items/{item}/feedback", data=form)


async def _parts(node: RunningNode, digest: bytes) -> int:
    async with node.ctx.db.read() as conn:
        return await blobs.parts_held(conn, digest)


async def _used(node: RunningNode) -> int:
    async with node.ctx.db.read() as conn:
        return await blobs.node_bytes(conn)


async def _held(node: RunningNode, digest: bytes) -> bool:
    async with node.ctx.db.read() as conn:
        return await blobs.held_size(conn, digest) is not None


async def _queue_empty(node: RunningNode) -> bool:
    files = await blobs.link_files(node.ctx.db, PARENT)
    return files["files_waiting"] == 0 and files["files_refused"] == []


async def _cut_upload(
    session: aiohttp.ClientSession, county: Api, fed: LocalTree, town_id: str, name: str,
    data: bytes,
) -> tuple[str, int]:
    """An item to ``town_id`` with ``data`` attached to its feedback; the township is
    stopped once part of the file is at the county. Returns (item, bytes held there)."""
    town_node = fed[town_id]
    town = Api(session, town_node, await person(town_node, f"op{town_id[-1]}", "supervisor"))
    item = await deployed_item(county, town, town_id, f"燃气安全排查 {town_id}")
    await _report(town, item, name, data)
    digest = hashlib.sha256(data).digest()

    async def partly() -> bool:
        return await _parts(fed[COUNTY], digest) >= 10 * CHUNK

    await eventually(partly, timeout=30, what=f"part of {name} at the county")
    await town_node.stop()
    held = await _parts(fed[COUNTY], digest)
    assert 0 < held < len(data)
    return item, held


async def test_stale_partial_dropped_fresh_kept_and_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(START_MS)
    fed = await build(tmp_path, clock, SHAPE, extra={"sync.blob_chunk_bytes": CHUNK})
    old, fresh = os.urandom(300_000), os.urandom(250_000)
    old_digest, fresh_digest = hashlib.sha256(old).digest(), hashlib.sha256(fresh).digest()
    try:
        county_node = fed[COUNTY]
        # The node runs the expiry under its watch (default 7 days).
        assert blobs.EXPIRY_WATCH in county_node.ctx.background.watches
        async with aiohttp.ClientSession() as session:
            county = Api(session, county_node, await person(county_node, "gov", "leader"))
            old_item, old_held = await _cut_upload(
                session, county, fed, TOWN1, "录像1.bin", old)
            clock.advance(days=4)
            _, fresh_held = await _cut_upload(session, county, fed, TOWN2, "录像2.bin", fresh)
            await folded(county_node)
            used = await _used(county_node)
            assert used == old_held + fresh_held

            expiry = blobs.PartialExpiry(county_node.ctx.db, clock, 7 * DAY_MS)
            clock.advance(days=2.9)  # 6.9 days after the first cut: nothing due
            assert await expiry.step() == []
            assert await _parts(county_node, old_digest) == old_held
            assert expiry.next_due is not None and expiry.next_due > clock.now_ms()

            clock.advance(days=0.2)  # 7.1 days and 3.1 days
            with caplog.at_level(logging.INFO, logger="node.sync.blobs"):
                dropped = await expiry.step()
            assert [(d.digest, d.size, d.source) for d in dropped] == [
                (old_digest, old_held, TOWN1)]
            assert any("dropped" in r.getMessage() and old_digest.hex()[:12] in r.getMessage()
                       for r in caplog.records)
            # The room is freed; the fresher partial stays, and is next due.
            assert await _parts(county_node, old_digest) == 0
            assert await _parts(county_node, fresh_digest) == fresh_held
            assert await _used(county_node) == fresh_held
            assert expiry.next_due == START_MS + (4 + 7) * DAY_MS  # the fresher's last chunk
            assert await expiry.step() == []  # not due: nothing read, nothing dropped
            # The county's page no longer claims progress for the dropped file: it waits.
            data = await county.get(f"/api/v1/items/{old_item}")
            [entry] = data["files"]
            assert entry["status"] == "waiting"

            # The township comes back: it asks what is held, gets 0, starts over.
            await fed[TOWN1].start()
            await eventually(lambda: _held(county_node, old_digest), timeout=60,
                             what="the dropped file complete at the county")
            await eventually(lambda: _queue_empty(fed[TOWN1]), what="the file off the queue")
            assert fed[TOWN1].app[CLIENT].blob_bytes_sent == len(old)
            async with session.get(county_node.url + f"/api/v1/attachments/{old_digest.hex()}",
                                   headers=county.headers) as resp:
                body = await resp.read()
            assert resp.status == 200 and hashlib.sha256(body).digest() == old_digest

            # The other resumes from what the county kept: the rest only.
            await fed[TOWN2].start()
            await eventually(lambda: _held(county_node, fresh_digest), timeout=60,
                             what="the kept file complete at the county")
            await eventually(lambda: _queue_empty(fed[TOWN2]), what="the file off the queue")
            assert fed[TOWN2].app[CLIENT].blob_bytes_sent == len(fresh) - fresh_held
            assert await _used(county_node) == len(old) + len(fresh)
    finally:
        await fed.stop()


async def test_expiry_loop_follows_the_clock(tmp_path: Path) -> None:
    """The loop under its watch: asleep while nothing is due, drops once the clock
    passes the due time (looked at every ``look_seconds``)."""
    clock = ManualClock(START_MS)
    fed = await build(tmp_path, clock, SHAPE[:1])
    try:
        node = fed[COUNTY]
        digest = hashlib.sha256(b"x").digest()
        async with node.ctx.db.write() as conn:
            await conn.execute(blobs.t.blob_parts.insert().values(
                digest=digest, offset=0, data=b"\0" * 1000, source=TOWN1,
                received_at=clock.now_ms()))
        expiry = blobs.PartialExpiry(node.ctx.db, clock, DAY_MS, look_seconds=0.01)
        watch = node.ctx.watch("expiry under test", blobs.logger)
        stopping = asyncio.Event()
        task = asyncio.create_task(expiry.run(watch, stopping))
        try:
            await eventually(lambda: _due(expiry), what="the first look")
            assert expiry.next_due == START_MS + DAY_MS
            await asyncio.sleep(0.05)
            assert await _parts(node, digest) == 1000
            clock.advance(days=1)
            await eventually(lambda: _gone(node, digest), what="the part dropped")
            assert watch.health.failures == 0 and watch.health.last_ok_at is not None
        finally:
            stopping.set()
            await asyncio.wait_for(task, 5)
    finally:
        await fed.stop()


async def _due(expiry: blobs.PartialExpiry) -> bool:
    return expiry.next_due is not None


async def _gone(node: RunningNode, digest: bytes) -> bool:
    return await _parts(node, digest) == 0
