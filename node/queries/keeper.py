"""The node's keeper of page tallies: moves the colour watermark to the present, turns
the running quarter's ranking over when a quarter begins, and scores items written
since they were last scored (``node.queries.standings``).

Both are optional for correctness — pages add what the watermark has not caught
up with and replay unscored items from their events — but they keep pages
cheap. Each step is a short write transaction; while there is scoring to do the
keeper sleeps as long as each chunk took, so it takes at most about half of the
node's time from sync and people, and it waits while a catch-up is storing
events (``node.items.materialiser.give_way``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Final

from aiohttp import web

from node.background import run_forever, sleep_unless
from node.context import NodeContext, stop_task
from node.items import tallies
from node.items.materialiser import give_way
from node.queries import standings

logger = logging.getLogger(__name__)

POLL_SECONDS: Final = 2.0
ADVANCE_AFTER_MS: Final = 5 * 60_000
"""Move the watermark when it is this far from now (either way)."""
PRUNE_EVERY: Final = 3_600.0


async def step(ctx: NodeContext, *, prune: bool = False) -> int:
    """One round: the watermark if due, the running quarter's ranking when a quarter
    began, zero rows if asked, one chunk of scoring. Returns the number of items scored."""
    now = ctx.clock.now_ms()
    async with ctx.db.read() as conn:
        marks = await tallies.marks(conn)
    behind = abs(now - marks.watermark) >= ADVANCE_AFTER_MS
    quarter = tallies.quarter_key(now)
    if behind or prune or quarter != marks.ranking:
        async with ctx.db.write() as conn:
            if behind:
                await tallies.advance(conn, now)
            if quarter != marks.ranking:
                await tallies.roll(conn, quarter)
            if prune:
                await tallies.prune(conn)
    return await standings.score_some(ctx.db)


async def run(ctx: NodeContext, stopping: asyncio.Event) -> None:
    """Keep the tallies current until ``stopping`` is set (the keeper's own event, set
    too when the node stops); a failure is retried with backoff (``node.background``)."""
    watch = ctx.watch("tallies keeper", logger)
    pruned = time.monotonic()
    pause = POLL_SECONDS

    async def once() -> None:
        nonlocal pruned, pause
        await give_way(ctx.store, stopping)  # a catch-up stores its events first
        started = time.monotonic()
        prune = started - pruned >= PRUNE_EVERY
        scored = await step(ctx, prune=prune)
        if prune:
            pruned = started
        pause = time.monotonic() - started if scored else POLL_SECONDS

    async def rest() -> None:
        await sleep_unless(stopping, max(pause, 0.01))

    async def node_stops() -> None:
        await ctx.stopping.wait()
        stopping.set()

    follow = asyncio.ensure_future(node_stops())
    try:
        await run_forever(watch, once, stopping, between=rest)
    finally:
        follow.cancel()


def keeper_ctx(
    ctx_key: web.AppKey[NodeContext],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An ``app.cleanup_ctx`` entry running :func:`run` while the app runs."""

    async def keep(app: web.Application) -> AsyncIterator[None]:
        stopping = asyncio.Event()
        ctx = app[ctx_key]
        task = asyncio.create_task(run(ctx, stopping), name=f"tally keeper {ctx.me}")
        try:
            yield
        finally:
            stopping.set()
            await stop_task(task, grace=10.0)

    return keep
