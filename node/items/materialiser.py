"""The node's materialiser: folds received events into item rows after they commit.

Sync stores and acknowledges a batch without refolding its items
(``Store.materialise_pending`` says why); this task keeps the rows following the
events, in chunks, each its own short write transaction, so a user's action or
the next sync batch never waits long for the write lock.
"""

from __future__ import annotations

import asyncio
import logging

from node.background import Watch, run_forever
from node.storage.events import Store

logger = logging.getLogger(__name__)

CHUNK_EVENTS = 2000
QUIET_SECONDS = 0.05
MAX_DEFER_SECONDS = 3.0


async def run(store: Store, stopping: asyncio.Event, watch: Watch) -> None:
    """Fold whatever is waiting, then sleep until a batch commits; until ``stopping``.

    While batches keep arriving (a catch-up: the next page follows within
    QUIET_SECONDS) folding waits, so the events are stored first — on two cores
    the two would only take turns — but never more than MAX_DEFER_SECONDS at a time.
    A failure (a full disk, a database error) is retried with ``watch``'s backoff."""

    async def fold() -> None:
        store.unfolded_waiting.clear()
        await give_way(store, stopping)
        while not stopping.is_set() and await store.materialise_pending(CHUNK_EVENTS):
            await asyncio.sleep(0)  # let a waiting request or sync batch in
            await give_way(store, stopping)

    async def more() -> None:
        waiting = asyncio.ensure_future(store.unfolded_waiting.wait())
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            stop.cancel()

    await run_forever(watch, fold, stopping, between=more)


async def give_way(store: Store, stopping: asyncio.Event) -> None:
    """Return once no sync batch has been received for QUIET_SECONDS and no child is
    expected back for the next page of its catch-up, or after MAX_DEFER_SECONDS:
    background work that can wait (folding, scoring) lets a catch-up, this node's or
    a child's, go first."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + MAX_DEFER_SECONDS
    while not stopping.is_set():
        now = loop.time()
        quiet_at = max(
            (now if store.receiving else store.last_received) + QUIET_SECONDS,
            store.sending_until,
        )
        if now >= quiet_at or now >= give_up:
            return
        await asyncio.sleep(min(quiet_at, give_up) - now)
