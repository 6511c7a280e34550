"""The node's materialiser: folds received events into item rows after they commit.

Sync stores and acknowledges a batch without refolding its items
(``EventLog.materialise_pending`` says why); this task keeps the rows following the
events, in chunks, each its own short write transaction, so a user's action or
the next sync batch never waits long for the write lock.

Background work that can wait (folding here, scoring in ``node.queries.keeper``)
gives way to a catch-up, this node's or a child's: :class:`SyncActivity` is what
the sync layer tells it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from node.background import Watch, run_forever
from node.storage.events import EventLog

logger = logging.getLogger(__name__)

CHUNK_EVENTS = 2000
QUIET_SECONDS = 0.05
MAX_DEFER_SECONDS = 3.0


class SyncActivity:
    """Whether sync is busy, in the event loop's time: batches being received now and
    when the last one ended (written by ``node.sync.ingest``), and until when a child
    is expected back for the next page of its catch-up (``node.http.sync``)."""

    __slots__ = ("_last_received", "_receiving", "_sending_until")

    def __init__(self) -> None:
        self._receiving = 0
        self._last_received = 0.0
        self._sending_until = 0.0

    @contextmanager
    def receiving(self) -> Iterator[None]:
        """Around the work of one received batch (preparing or committing it)."""
        self._receiving += 1
        try:
            yield
        finally:
            self._receiving -= 1
            self._last_received = asyncio.get_running_loop().time()

    def sending(self, until: float) -> None:
        """A child is expected back for its next page before ``until`` (loop time)."""
        self._sending_until = max(self._sending_until, until)

    def quiet_until(self) -> float:
        """The loop time from which sync is quiet (QUIET_SECONDS after the last batch
        received, and no child expected back), as things stand now."""
        now = asyncio.get_running_loop().time()
        received = now if self._receiving else self._last_received
        return max(received + QUIET_SECONDS, self._sending_until)


async def run(
    log: EventLog, activity: SyncActivity, stopping: asyncio.Event, watch: Watch
) -> None:
    """Fold whatever is waiting, then sleep until a batch commits; until ``stopping``.

    While batches keep arriving (a catch-up: the next page follows within
    QUIET_SECONDS) folding waits, so the events are stored first — on two cores
    the two would only take turns — but never more than MAX_DEFER_SECONDS at a time.
    A failure (a full disk, a database error) is retried with ``watch``'s backoff."""

    async def fold() -> None:
        log.unfolded_waiting.clear()
        await give_way(activity, stopping)
        # A chunk that was not full took everything stored before it began; a batch
        # stored since set ``unfolded_waiting`` again. So no look that finds nothing
        # (one write transaction per fold, not two: many nodes share a process).
        while not stopping.is_set() and await log.materialise_pending(CHUNK_EVENTS) >= CHUNK_EVENTS:
            await asyncio.sleep(0)  # let a waiting request or sync batch in
            await give_way(activity, stopping)

    async def more() -> None:
        waiting = asyncio.ensure_future(log.unfolded_waiting.wait())
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            stop.cancel()

    await run_forever(watch, fold, stopping, between=more)


async def give_way(activity: SyncActivity, stopping: asyncio.Event) -> None:
    """Return once no sync batch has been received for QUIET_SECONDS and no child is
    expected back for the next page of its catch-up, or after MAX_DEFER_SECONDS:
    background work that can wait (folding, scoring) lets a catch-up, this node's or
    a child's, go first."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + MAX_DEFER_SECONDS
    while not stopping.is_set():
        now = loop.time()
        quiet_at = activity.quiet_until()
        if now >= quiet_at or now >= give_up:
            return
        await asyncio.sleep(min(quiet_at, give_up) - now)
