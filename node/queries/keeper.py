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
from typing import Final

from node.background import Watch, run_forever, sleep_unless
from node.clock import Clock
from node.items import tallies
from node.items.materialiser import SyncActivity, give_way
from node.queries import standings
from node.storage.db import Database

logger = logging.getLogger(__name__)

POLL_SECONDS: Final = 2.0
ADVANCE_AFTER_MS: Final = 5 * 60_000
"""Move the watermark when it is this far from now (either way)."""
PRUNE_EVERY: Final = 3_600.0
WATCH_NAME: Final = "tallies keeper"
"""The keeper's task, as the status pages name it."""


class TallyKeeper:
    """Keeps one node's tallies current: the database it writes, the clock it reads and
    the sync activity it gives way to."""

    def __init__(self, db: Database, clock: Clock, activity: SyncActivity) -> None:
        self.db = db
        self.clock = clock
        self.activity = activity

    async def step(self, *, prune: bool = False) -> int:
        """One round: the watermark if due, the running quarter's ranking when a quarter
        began, zero rows if asked, one chunk of scoring. Returns the number of items scored."""
        now = self.clock.now_ms()
        async with self.db.read() as conn:
            marks = await tallies.marks(conn)
        behind = abs(now - marks.watermark) >= ADVANCE_AFTER_MS
        quarter = tallies.quarter_key(now)
        if behind or prune or quarter != marks.ranking:
            async with self.db.write() as conn:
                if behind:
                    await tallies.advance(conn, now)
                if quarter != marks.ranking:
                    await tallies.roll(conn, quarter)
                if prune:
                    await tallies.prune(conn)
        return await standings.score_some(self.db)

    async def run(
        self, watch: Watch, stopping: asyncio.Event, node_stopping: asyncio.Event
    ) -> None:
        """Keep the tallies current until ``stopping`` is set (the keeper's own event, set
        too when ``node_stopping`` is); a failure is retried with the backoff of
        ``watch`` (``node.background``)."""
        pruned = time.monotonic()
        pause = POLL_SECONDS

        async def once() -> None:
            nonlocal pruned, pause
            await give_way(self.activity, stopping)  # a catch-up stores its events first
            started = time.monotonic()
            prune = started - pruned >= PRUNE_EVERY
            scored = await self.step(prune=prune)
            if prune:
                pruned = started
            pause = time.monotonic() - started if scored else POLL_SECONDS

        async def rest() -> None:
            await sleep_unless(stopping, max(pause, 0.01))

        async def node_stops() -> None:
            await node_stopping.wait()
            stopping.set()

        follow = asyncio.ensure_future(node_stops())
        try:
            await run_forever(watch, once, stopping, between=rest)
        finally:
            follow.cancel()
