"""The catch-up pipeline (SyncClient.pull_once) when the link breaks half-way.

Pages are fetched and decoded ahead of the page being stored. When a fetch
fails, what committed stays committed, the cursor says exactly how far, nothing
of the pipeline is left running, and the next pull takes the rest, each event
once. Real servers on loopback and real SQLite files; the break is a
SyncFailure from the transport, as a dropped connection gives, or pages of a
new stream epoch, as a parent restored from a backup sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from node.app import sync_client
from node.clock import SystemClock
from node.context import NodeContext, open_node
from node.demo.localtree import Shape
from node.storage import schema as t
from node.storage.events import PARENT
from node.sync.catchup.tuning import CATCH_UP_SWITCH_SECONDS, ProcessTuning
from node.sync.client import SyncClient, SyncFailure
from node.workflow.drafts import assign
from protocol import envelope
from protocol.events import encode_event
from tests.federation import build

SHAPE: Shape = [
    ("14", None, "山西省", "province"),
    ("140105001", "14", "坞城街道", "township"),
]
PROVINCE, TOWNSHIP = "14", "140105001"
QUEUED = 2000
PAGE = 250  # the township's sync.batch_events: 8 pages, decoded in the worker once it is up


class CutOff(SyncClient):
    """A client whose link to the parent breaks after ``pages`` pages came down; or, with
    ``new_epoch``, whose parent starts a new stream epoch from that page on (as one
    restored from a backup does) while the pages after it are being fetched ahead."""

    def cut_after(self, pages: int, new_epoch: bool) -> CutOff:
        self.left = pages
        self.new_epoch = new_epoch
        self.collecting: list[bool] = []  # whether the cycle collector ran, at each fetch
        self.switching: list[float] = []  # the thread switch interval, at each fetch
        return self

    async def _fetch_down(self, after: int, ack: int, wait: int) -> dict[str, object]:
        self.collecting.append(gc.isenabled())
        self.switching.append(sys.getswitchinterval())
        if self.left == 0:
            if not self.new_epoch:
                raise SyncFailure("GET /sync/v1/down: ClientConnectionError link cut")
            page = await super()._fetch_down(after, ack, wait)
            return {**page, "epoch": f"restored-{page['epoch']}"}
        self.left -= 1
        return await super()._fetch_down(after, ack, wait)


def cut_off(
    ctx: NodeContext, session: aiohttp.ClientSession, tuning: ProcessTuning | None
) -> CutOff:
    streaming = contextlib.nullcontext if tuning is None else tuning.streaming
    client = sync_client(ctx, session, streaming, kind=CutOff)
    assert isinstance(client, CutOff)
    return client


async def received(ctx: NodeContext) -> list[bytes]:
    async with ctx.db.read() as conn:
        rows = await conn.scalars(select(t.events.c.event_id).where(t.events.c.origin == PROVINCE))
        return list(rows.all())


def pipeline_tasks() -> list[asyncio.Task[object]]:
    names = {"SyncClient._fetch_ahead", "Ingestor.decode"}
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and getattr(task.get_coro(), "__qualname__", "") in names
    ]


@pytest.mark.parametrize(
    ("new_epoch", "reason"), [(False, "link cut"), (True, "started a new stream epoch")]
)
async def test_a_break_while_fetching_ahead_loses_and_repeats_nothing(
    tmp_path: Path, new_epoch: bool, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SystemClock()
    fed = await build(tmp_path, clock, SHAPE, extra_for={TOWNSHIP: {"sync.batch_events": PAGE}})
    ctx: NodeContext | None = None
    try:
        province, township = fed[PROVINCE], fed[TOWNSHIP]
        await township.stop()
        made = await province.ctx.store.append_own(
            [assign(me=PROVINCE, assignee=TOWNSHIP, title=f"事项{i}") for i in range(QUEUED)]
        )
        queued = {bytes.fromhex(env.event_id) for _ev, env in made}

        ctx = await open_node(township.config, clock)
        async with aiohttp.ClientSession() as session:
            tuning = ProcessTuning()
            cut = cut_off(ctx, session, tuning).cut_after(pages=4, new_epoch=new_epoch)
            await cut.hello()
            assert gc.isenabled()
            switch = sys.getswitchinterval()
            with pytest.raises(SyncFailure, match=reason):
                await asyncio.wait_for(cut.pull_once(0), timeout=60)  # a hang fails
            assert pipeline_tasks() == []  # the fetching, and decoding of what it fetched, stopped
            # The cycle collector waits while pages stream in, and runs again after.
            assert cut.collecting[0] and not any(cut.collecting[1:]), cut.collecting
            assert len(cut.collecting) > 2 and gc.isenabled()
            # So does the short switch interval.
            assert cut.switching[0] == switch > CATCH_UP_SWITCH_SECONDS, cut.switching
            assert set(cut.switching[1:]) == {CATCH_UP_SWITCH_SECONDS}, cut.switching
            assert sys.getswitchinterval() == switch

            # Some pages committed before the cut (the first is stored while the
            # pages after it are fetched), and the cursor says exactly how far.
            held = await received(ctx)
            assert 0 < len(held) < QUEUED
            assert len(held) == len(set(held)) and set(held) <= queued
            applied = int((await ctx.outbox.link_row(PARENT))["applied_pos"])
            async with province.ctx.db.read() as conn:
                upto = await conn.scalars(
                    select(t.events.c.event_id)
                    .join(t.routes, t.routes.c.pos == t.events.c.pos)
                    .where(
                        t.routes.c.link == TOWNSHIP,
                        t.routes.c.pos <= applied,
                        t.events.c.origin == PROVINCE,
                    )
                )
                assert set(upto.all()) == set(held)

            # The next pull takes the rest: every event once. With -v (INFO) it logs a
            # line per page (bench/catchup.py --timeline).
            caplog.clear()
            caplog.set_level(logging.INFO, logger="node.sync.client")
            rest = await sync_client(ctx, session, tuning.streaming).pull_once(0)
            assert rest >= QUEUED - len(held) and gc.isenabled()
            assert sys.getswitchinterval() == switch
            timeline = [r.getMessage() for r in caplog.records if "catch-up page" in r.msg]
            assert len(timeline) == -(-rest // PAGE)
            assert timeline[0].startswith("catch-up page 0, ")
            assert "waited" in timeline[-1] and "for the commit before" in timeline[-1]
        after = await received(ctx)
        assert len(after) == len(set(after)) == QUEUED
        assert set(after) == queued
        assert (await ctx.store.counts())["refused"] == 0
    finally:
        if ctx is not None:
            await ctx.close()
        await fed.stop()


def test_overlapping_catch_ups_restore_the_settings_when_the_last_ends() -> None:
    """Two nodes of one process (the demo's tree) catching up at once: the first to
    end leaves the collector off and the interval short for the other."""
    tuning, switch = ProcessTuning(), sys.getswitchinterval()
    assert gc.isenabled()
    try:
        with tuning.streaming():
            with tuning.streaming():
                assert not gc.isenabled()
            assert not gc.isenabled() and sys.getswitchinterval() == CATCH_UP_SWITCH_SECONDS
        assert gc.isenabled() and sys.getswitchinterval() == switch
        with pytest.raises(RuntimeError), tuning.streaming():  # however the catch-up ends
            raise RuntimeError("link cut")
        assert gc.isenabled() and sys.getswitchinterval() == switch
    finally:
        gc.enable()
        sys.setswitchinterval(switch)


async def test_a_catch_up_without_tuning_changes_no_process_setting(tmp_path: Path) -> None:
    """The default (the test trees, an embedder running nodes in its own process): a
    catch-up leaves the collector and the switch interval as they are."""
    clock = SystemClock()
    fed = await build(tmp_path, clock, SHAPE, extra_for={TOWNSHIP: {"sync.batch_events": PAGE}})
    ctx: NodeContext | None = None
    try:
        province, township = fed[PROVINCE], fed[TOWNSHIP]
        await township.stop()
        await province.ctx.store.append_own(
            [assign(me=PROVINCE, assignee=TOWNSHIP, title=f"事项{i}") for i in range(3 * PAGE)]
        )
        ctx = await open_node(township.config, clock)
        switch = sys.getswitchinterval()
        async with aiohttp.ClientSession() as session:
            plain = cut_off(ctx, session, None).cut_after(pages=10, new_epoch=False)
            await plain.hello()
            assert await plain.pull_once(0) >= 3 * PAGE
        assert len(plain.collecting) > 2 and all(plain.collecting)
        assert set(plain.switching) == {switch} and sys.getswitchinterval() == switch
    finally:
        if ctx is not None:
            await ctx.close()
        await fed.stop()


class _Recording(ThreadPoolExecutor):
    """The verifying threads, noting each job handed to them."""

    def __init__(self) -> None:
        super().__init__(2)
        self.jobs = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


async def test_a_batch_signed_page_is_verified_in_place_a_page_of_signatures_on_threads(
    tmp_path: Path,
) -> None:
    """A page under one Merkle-batch signature is checked on the event loop (handing it
    to the threads and back costs more); one signature per event goes to the verifying
    threads. Either way each event is verified: a forged one is refused."""
    clock = SystemClock()
    fed = await build(tmp_path, clock, SHAPE)
    ctx: NodeContext | None = None
    try:
        province, township = fed[PROVINCE], fed[TOWNSHIP]
        await township.stop()
        made = await province.ctx.store.append_own(
            [assign(me=PROVINCE, assignee=TOWNSHIP, title=f"事项{i}") for i in range(100)]
        )
        seq = max(ev.seq for ev, _env in made)
        alone = [
            envelope.sign(province.ctx.key, *encode_event(draft(seq + 1 + i, seq + 1 + i, 5)))
            for i, draft in enumerate(
                assign(me=PROVINCE, assignee=TOWNSHIP, title=f"单签{i}") for i in range(100)
            )
        ]
        last = alone[-1]
        forged = envelope._wire(last.type, last.body, last.key_id, bytes(64), None)
        ctx = await open_node(township.config, clock)
        threads = _Recording()
        ctx.ingestor.executor = threads
        batch = await ctx.ingestor.receive(PARENT, [env.raw for _ev, env in made])
        assert (batch.accepted, batch.refused, threads.jobs) == (100, [], 0)
        single = await ctx.ingestor.receive(
            PARENT, [env.raw for env in alone[:-1]] + [forged]
        )
        assert single.accepted == 99 and [r[:2] for r in single.refused] == [(99, "bad_signature")]
        assert threads.jobs >= 2
        threads.shutdown()
    finally:
        if ctx is not None:
            await ctx.close()
        await fed.stop()
