"""The node's keeper of page tallies: moves the colour watermark to the present, turns
the running quarter's ranking over when a quarter begins, and scores items written
since they were last scored (``node.queries.standings``).

Both are optional for correctness — pages add what the watermark has not caught
up with and replay unscored items from their events — but they keep pages
cheap. Each step is a short write transaction; while there is scoring to do the
keeper sleeps as long as each chunk took, so it takes at most about half of the
node's time from sync and people, and it waits while a catch-up is storing
events (``node.items.materialiser.give_way``).

With nothing to score it does not poll: it waits until rows may have been written
here (``Changes``: a commit of events, the node's own or received, or received
events folded into rows), or IDLE_SECONDS at most (the watermark needs moving only
every ADVANCE_AFTER_MS), and an idle round is one read. Once rows are written it
waits for them to settle (SETTLE_SECONDS without a change, at most
MAX_SETTLE_SECONDS), so a burst is scored in one round after it, not a round per
batch on the burst's path. Many idle nodes share a
process (a county hosting its townships): a round every 2 s each, read and write,
was most of such a process's idle CPU (docs/performance.md, "Cascade").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.engine import Connection

from node.background import Broadcast, Watch, run_forever, sleep_unless
from node.clock import Clock
from node.items import tallies
from node.items.materialiser import SyncActivity, give_way
from node.queries import standings
from node.storage import schema as t
from node.storage.db import Database

logger = logging.getLogger(__name__)

IDLE_SECONDS: Final = 60.0
"""With nothing to score and no rows written, look again after this long."""
SETTLE_SECONDS: Final = 1.0
"""Rows written: score them once none has been written for this long (a burst of
sync batches, a cascade passing through, is scored once and after it)..."""
MAX_SETTLE_SECONDS: Final = 5.0
"""...but no later than this after the first."""
ADVANCE_AFTER_MS: Final = 5 * 60_000
"""Move the watermark when it is this far from now (either way)."""
PRUNE_EVERY: Final = 3_600.0
WATCH_NAME: Final = "tallies keeper"
"""The keeper's task, as the status pages name it."""


@dataclass(frozen=True, slots=True)
class Changes:
    """What tells the keeper that rows may have been written: ``commits``, a broadcast
    notified after every commit that stored events (``Outbox.changed``: own writes and
    received batches), and ``folded_past(pos)``, which returns once received events past
    ``pos`` are folded into rows, with ``folded_pos()`` the position folded now
    (``EventLog``)."""

    commits: Broadcast
    folded_past: Callable[[int], Awaitable[int]]
    folded_pos: Callable[[], int]


class TallyKeeper:
    """Keeps one node's tallies current: the database it writes, the clock it reads,
    the sync activity it gives way to and the ``changes`` it waits on when idle
    (without them it looks every IDLE_SECONDS)."""

    def __init__(
        self, db: Database, clock: Clock, activity: SyncActivity, changes: Changes | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.activity = activity
        self.changes = changes

    async def step(self, *, prune: bool = False) -> int:
        """One round: the watermark if due, the running quarter's ranking when a quarter
        began, zero rows if asked, one chunk of scoring. Returns the number of items scored."""
        now = self.clock.now_ms()
        marks, dirty = await self.db.run_read(_look)
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
        scored = await standings.score_some(self.db) if dirty else 0
        logger.debug("keeper round: %d items scored%s", scored, " (watermark)" if behind else "")
        return scored

    async def listen(self) -> list[asyncio.Future[object]]:
        """Start waiting for rows written from now on (a commit, or received events folded
        past what is folded now); armed before a round reads, so nothing written while
        it reads is missed."""
        changes = self.changes
        if changes is None:
            return []

        async def committed() -> None:
            await changes.commits.wait()

        waits: list[asyncio.Future[object]] = [
            asyncio.ensure_future(committed()),
            asyncio.ensure_future(changes.folded_past(changes.folded_pos())),
        ]
        await asyncio.sleep(0)  # the waiters register
        return waits

    @staticmethod
    async def _changed(
        waits: list[asyncio.Future[object]], stopping: asyncio.Event, timeout: float
    ) -> bool:
        """Whether one of ``waits`` (from :meth:`listen`) ended within ``timeout``; they
        are cancelled."""
        stop: asyncio.Future[object] = asyncio.ensure_future(stopping.wait())
        try:
            done, _ = await asyncio.wait(
                [*waits, stop], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            await _cancel([*waits, stop])
        return bool(done) and stop not in done

    async def run(
        self, watch: Watch, stopping: asyncio.Event, node_stopping: asyncio.Event
    ) -> None:
        """Keep the tallies current until ``stopping`` is set (the keeper's own event, set
        too when ``node_stopping`` is); a failure is retried with the backoff of
        ``watch`` (``node.background``)."""
        pruned = time.monotonic()
        pause: float | None = None
        waits: list[asyncio.Future[object]] = []

        async def once() -> None:
            nonlocal pruned, pause, waits
            await give_way(self.activity, stopping)  # a catch-up stores its events first
            started = time.monotonic()
            await _cancel(waits)
            waits = await self.listen()
            prune = started - pruned >= PRUNE_EVERY
            scored = await self.step(prune=prune)
            if prune:
                pruned = started
            pause = time.monotonic() - started if scored else None

        async def rest() -> None:
            nonlocal waits
            if pause is not None:  # more to score: rest as long as the chunk took
                await sleep_unless(stopping, max(pause, 0.01))
                return
            # Nothing to score: until rows may have been written, or IDLE_SECONDS; then
            # until they have stopped changing for SETTLE_SECONDS (a burst is scored
            # once, after it), at most MAX_SETTLE_SECONDS.
            if not await self._changed(waits, stopping, IDLE_SECONDS):
                waits = []
                return
            waits = []
            settle_until = time.monotonic() + MAX_SETTLE_SECONDS
            while (left := settle_until - time.monotonic()) > 0 and not stopping.is_set():
                if not await self._changed(
                    await self.listen(), stopping, min(SETTLE_SECONDS, left)
                ):
                    return

        async def node_stops() -> None:
            await node_stopping.wait()
            stopping.set()

        follow = asyncio.ensure_future(node_stops())
        try:
            await run_forever(watch, once, stopping, between=rest)
        finally:
            follow.cancel()
            await _cancel(waits)


_DIRTY = select(t.score_exceptions.c.item_id).where(t.score_exceptions.c.reason == "dirty").limit(1)


def _look(conn: Connection) -> tuple[tallies.Marks, bool]:
    """A round's look, in one short read (``Database.run_read``: on SQLite on the
    loop's own thread, no hand-off to a database thread): the marks, and whether any
    item waits to be scored."""
    return tallies.marks_now(conn), conn.execute(_DIRTY).first() is not None


async def _cancel(waits: list[asyncio.Future[object]]) -> None:
    for w in waits:
        w.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
