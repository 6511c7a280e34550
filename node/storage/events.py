"""The node's event log: named transactions over the schema, one per batch.

Every accepted event is kept as its exact envelope bytes with the header
columns used for routing and folding, with the ``routes`` rows that queue it
for its links (which links: the :class:`Router` given to the log, the sync
layer's outbox, ``node/sync/outbox.py``, which also reads the queues and keeps
the link cursors). Everything a batch writes — events, routes, refusals, the
link cursor, our own items' rows — commits in one transaction, so a crash
leaves either all of a batch or none of it.

Item rows are derived data (the fold of the item's events, by the
:class:`Projection` given to the log, ``node/items/projection.py``). A node's
own events are applied to their items' states in the transaction that stores
them, so a user sees the effect of an action at once. Received events are
folded after their batch commits, by :meth:`EventLog.materialise_pending` (run
by the node's materialiser task), which advances the durable cursor
``materialised_pos`` in the same transaction as the rows it writes: a catch-up
stores and acknowledges events without waiting for the ledger's rows and
indexes, and a crash leaves the cursor where the rows are. Nothing that decides
whether an event is accepted reads item rows.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from typing import Any, Protocol

from sqlalchemy import Table, and_, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from node.clock import Clock
from node.storage import schema as t
from node.storage.db import Database, placeholders
from protocol import codec, envelope, errors
from protocol.certs import CERT_TYPE, REVOCATION_TYPE
from protocol.errors import ProtocolError
from protocol.events import LAMPORT_CEILING, Assigned, Event, encode_event
from protocol.fold import ItemState
from protocol.keys import SigningKey

logger = logging.getLogger(__name__)

SELF = "self"
PARENT = "parent"
RECOVERY = "recovery"
"""Where a stored event came from (its ``source``): this node (``SELF``), its parent,
a child (the child's id), or its parent handing our own subtree's events back after
a restore (``RECOVERY``). A link is named the same way: ``PARENT`` or a child's id."""

TRUST_TYPES = frozenset({CERT_TYPE, REVOCATION_TYPE})
_IN_CHUNK = 500
MATERIALISED = "materialised_pos"
# Decoded received events kept in memory for the materialiser, so it need not
# parse and decode them again; above this many it reads them back instead.
_UNFOLDED_CAP = 200_000
ROWS_WAIT_SECONDS = 1.0
"""How long a read of item rows waits, by default, for received events to be folded
(:meth:`EventLog.rows_current`); during a large catch-up it goes on with the rows so far."""

Decoded = dict[int, tuple[str, Event]]
"""Stored events by ``pos``: (event id as hex, decoded event)."""


@dataclass(slots=True)
class Stored:
    """What one write transaction stored, for :meth:`EventLog.fold_later` once it commits."""

    decoded: Decoded = field(default_factory=dict)  # received events, not folded yet
    last_pos: int = 0  # 0: nothing left to fold (nothing stored, or folded in place)
    links: frozenset[str] = frozenset()  # the links it queued events for
    first_pos: int = 0  # the first position it stored
    dropped: int = 0  # refused events of a received batch not kept (over the quota)

Draft = Callable[[int, int, int], Event]
"""Builds one of our own events from (seq, lamport, at) assigned by the log."""

States = Mapping[str, ItemState | None]
"""Items' states by item id (None: no assignment stored)."""

Precheck = Callable[[AsyncConnection, list[Event], States], Awaitable[None]]
"""Checks our own events inside their write transaction, before they are signed, given
their items' states before them (``States``, folded once by :meth:`EventLog.append_own`)."""


@dataclass(slots=True)
class Accepted:
    """One verified, authorised event ready to store."""

    env: envelope.Envelope
    event: Event | None  # None for trust records
    origin: str | None
    origin_seq: int | None
    event_id: bytes = b""
    """SHA-256 of the envelope if already worked out (hashing it again is not free)."""


class Appended(list[tuple[Event, envelope.Envelope]]):
    """Our own events just stored, as (event, envelope) in order, and ``states``: each
    of their items' state after them, as its row was written (one fold per item)."""

    def __init__(
        self, pairs: Iterable[tuple[Event, envelope.Envelope]], states: dict[str, ItemState]
    ) -> None:
        super().__init__(pairs)
        self.states = states


class Router(Protocol):
    """Where stored events are queued: ``node.sync.outbox.Outbox``, given to the log
    by the node (the storage layer knows the ``routes`` table, not the tree)."""

    def links(self, accepted: Sequence[Accepted], source: str) -> list[list[str]]:
        """Each event's links (the outboxes it is queued for)."""
        ...

    async def queued(self, links: Iterable[str]) -> None:
        """After a commit: events were queued for ``links`` (their readers look again)."""
        ...


class Projection(Protocol):
    """Item rows from the stored events: ``node.items.projection.Projection``."""

    async def states(self, conn: AsyncConnection, item_ids: Iterable[str]) -> dict[
        str, ItemState | None
    ]:
        """Each item's state folded from its stored events."""
        ...

    async def advance(
        self, conn: AsyncConnection, before: States, written: Sequence[tuple[str, Event]]
    ) -> dict[str, ItemState]:
        """Our own events just stored (by event id), applied to their items' states
        ``before`` them, rows written; the states after them."""
        ...

    async def refold(
        self, conn: AsyncConnection, item_ids: Iterable[str], known: Decoded
    ) -> None:
        """Fold the items again from their stored events and rewrite their rows."""
        ...


@dataclass(slots=True)
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    refused: list[tuple[int, str, str]] = field(default_factory=list)
    applied_pos: int = 0


def _int_bytes(value: int) -> bytes:
    return codec.encode(value)


def _bytes_int(raw: bytes | None) -> int:
    if raw is None:
        return 0
    value = codec.decode(raw)
    assert type(value) is int
    return value


class EventLog:
    """Named transactions over one node's events. Built once per process by the node,
    with where events are queued (``router``) and how items are folded (``projection``)."""

    def __init__(
        self,
        db: Database,
        *,
        me: str,
        key: SigningKey,
        clock: Clock,
        router: Router,
        projection: Projection,
        max_clock_ahead: int = 2**32,
        refused_keep_events: int = 10_000,
        refused_keep_bytes: int = 16_000_000,
    ) -> None:
        self.db = db
        self.max_clock_ahead = max_clock_ahead
        self.refused_keep_events = refused_keep_events
        self.refused_keep_bytes = refused_keep_bytes
        self.me = me
        self.key = key
        self.clock = clock
        self.router = router
        self.projection = projection
        self._epoch: bytes | None = None
        # Received events stored but not folded into item rows yet (see materialise_pending).
        self._unfolded: Decoded = {}
        self.unfolded_waiting = asyncio.Event()
        # Highest position this process stored from a received batch, and folded.
        self._stored_pos = 0
        self._folded_pos = 0
        self._folded = asyncio.Condition()
        # Received batches whose commit began, and ended (stored positions known): a
        # read waits for the commits begun before it, whose events it may already see.
        self._commits_begun = 0
        self._commits_ended = 0

    # ------------------------------------------------------------------ meta

    # The synchronous functions here take a ``Connection``: they are the bodies of
    # ``Database.run_write`` (storing a received batch on the writer's thread), and
    # their async callers run them with ``AsyncConnection.run_sync``.

    @staticmethod
    def read_meta(conn: Connection, key: str) -> bytes | None:
        value: bytes | None = conn.scalar(select(t.meta.c.value).where(t.meta.c.key == key))
        return value

    @staticmethod
    def write_meta(conn: Connection, key: str, value: bytes) -> None:
        done = conn.execute(update(t.meta).where(t.meta.c.key == key).values(value=value))
        if done.rowcount == 0:
            conn.execute(t.meta.insert().values(key=key, value=value))

    @staticmethod
    async def get_meta(conn: AsyncConnection, key: str) -> bytes | None:
        return await conn.run_sync(EventLog.read_meta, key)

    @staticmethod
    async def set_meta(conn: AsyncConnection, key: str, value: bytes) -> None:
        await conn.run_sync(EventLog.write_meta, key, value)

    async def meta(self, key: str) -> bytes | None:
        async with self.db.read() as conn:
            return await self.get_meta(conn, key)

    async def own_seq(self) -> int:
        return _bytes_int(await self.meta("own_seq"))

    # ----------------------------------------------------------------- clock

    @staticmethod
    def read_clock(conn: Connection) -> int:
        """This node's Lamport clock, inside a write transaction.

        A clock above :data:`LAMPORT_CEILING` was raised by a received event
        before received clocks were bounded (issue 16): it is taken back to the
        highest clock of the stored events at or below the ceiling, and written
        so. The events above it stay stored (signed history) but are never
        adopted, and a parent refuses them (``clock_too_far_ahead``)."""
        clock = _bytes_int(EventLog.read_meta(conn, "lamport"))
        if clock <= LAMPORT_CEILING:
            return clock
        honest = int(
            conn.scalar(
                select(func.max(t.events.c.lamport)).where(t.events.c.lamport <= LAMPORT_CEILING)
            )
            or 0
        )
        logger.warning(
            "Lamport clock %d was past the ceiling %d (adopted from a hostile event):"
            " taken back to %d, the highest stored clock below it",
            clock, LAMPORT_CEILING, honest,
        )
        EventLog.write_meta(conn, "lamport", _int_bytes(honest))
        return honest

    async def repair_clock(self) -> None:
        """At start: a clock raised past the ceiling by a hostile event before clocks
        were bounded is taken back (:meth:`read_clock`), before anything is written."""
        if _bytes_int(await self.meta("lamport")) > LAMPORT_CEILING:
            async with self.db.write() as conn:
                await conn.run_sync(self.read_clock)

    def clock_refusal(self, lamport: int, clock: int, source: str) -> str | None:
        """Why a received event's ``lamport`` may not be adopted by a node at ``clock``
        (None: it may). From a child — the side a hostile key sits on — a clock more
        than ``sync.max_clock_ahead`` ahead is refused; from anywhere, a clock above
        :data:`LAMPORT_CEILING`. Events from the parent (or handed back by it after a
        restore) are bounded at every hop above already: a new node catching up
        from its parent may be any distance behind (docs/sync.md, "Clocks")."""
        if lamport > LAMPORT_CEILING:
            return f"clock {lamport} is above the ceiling {LAMPORT_CEILING}"
        if source not in (PARENT, RECOVERY) and lamport - clock > self.max_clock_ahead:
            return f"clock {lamport} is more than {self.max_clock_ahead} ahead of {clock}"
        return None

    # ------------------------------------------------------------ trust load

    async def store_trust_records(self, raws: Sequence[bytes], source: str) -> None:
        """Keep trust records accepted outside a sync batch (init, join, invite)."""
        now = self.clock.now_ms()
        async with self.db.write() as conn:
            accepted = []
            for raw in raws:
                env = envelope.parse(raw)
                accepted.append(Accepted(env=env, event=None, origin=None, origin_seq=None))
            stored = await self.insert_accepted(conn, accepted, source, now)
        self.fold_later(stored)
        await self.router.queued(stored.links)

    # ------------------------------------------------------------- own writes

    async def append_own(
        self, drafts: Sequence[Draft], *, precheck: Precheck | None = None
    ) -> Appended:
        """Sign and store events of our own, one signature over the whole batch, and
        write their items' rows: each item's stored events are folded once, inside
        the write transaction, and our events applied to that state (they come last
        in fold order: our clock is above every stored event's).

        ``precheck(conn, events, states)`` runs inside the write transaction before
        anything is signed, given those states; whatever it raises rolls everything
        back, so a check of the item's state cannot race another writer.
        """
        if not drafts:
            return Appended((), {})
        now = self.clock.now_ms()
        async with self.db.write() as conn:
            seq = _bytes_int(await self.get_meta(conn, "own_seq"))
            lamport = await conn.run_sync(self.read_clock)
            if lamport + len(drafts) > LAMPORT_CEILING:
                # Every receiver refuses a clock above the ceiling: an event written
                # past it would never leave this node (docs/sync.md, "Clocks").
                logger.error(
                    "Lamport clock %d is at the ceiling %d: own writes are refused", lamport,
                    LAMPORT_CEILING,
                )
                raise ProtocolError(
                    errors.CLOCK_EXHAUSTED,
                    f"clock {lamport} + {len(drafts)} events would pass the ceiling"
                    f" {LAMPORT_CEILING}",
                )
            events = [d(seq + i + 1, lamport + i + 1, now) for i, d in enumerate(drafts)]
            before = await self.projection.states(conn, {e.item for e in events})
            if precheck is not None:
                await precheck(conn, events, before)
            envs = envelope.sign_batch(self.key, [encode_event(e) for e in events])
            accepted = [
                Accepted(env=env, event=ev, origin=ev.origin, origin_seq=ev.seq)
                for ev, env in zip(events, envs, strict=True)
            ]
            links = self.router.links(accepted, SELF)
            stored = await conn.run_sync(self.insert_routed, accepted, links, SELF, now)
            states = await self.projection.advance(
                conn, before, [(env.event_id, ev) for ev, env in zip(events, envs, strict=True)]
            )
            stored = await self._folded_in_place(conn, stored)
            await self.set_meta(conn, "own_seq", _int_bytes(seq + len(events)))
            await self.set_meta(conn, "lamport", _int_bytes(lamport + len(events)))
        self.fold_later(stored)
        await self.router.queued(stored.links)
        return Appended(zip(events, envs, strict=True), states)

    # ---------------------------------------------------------------- receive

    @staticmethod
    def known_ids(conn: Connection, ids: Iterable[bytes]) -> set[bytes]:
        found: set[bytes] = set()
        for rows in select_in(conn, "SELECT event_id FROM events WHERE event_id", list(ids)):
            found.update(bytes(r[0]) for r in rows)
        return found

    @staticmethod
    def item_parties(conn: Connection, item_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """(assigner, assignee) of each item whose assignment is stored.

        Read from the stored assignment events (origin and recipient), not the item
        rows, which may not be folded yet. Should an item have two assignments, the
        first in fold order wins, as in the fold.
        """
        wanted = list(set(item_ids))
        best: dict[str, tuple[tuple[int, str, int, bytes], tuple[str, str]]] = {}
        chunks = select_in(
            conn,
            "SELECT item_id, origin, to_node, lamport, origin_seq, event_id FROM events"
            " WHERE type = {0} AND item_id",
            wanted,
            first=(Assigned.TYPE,),
        )
        for rows in chunks:
            for item_id, origin, to, lamport, seq, event_id in rows:
                key = (lamport, origin, seq, bytes(event_id))
                held = best.get(item_id)
                if held is None or key < held[0]:
                    best[item_id] = (key, (origin, to))
        return {item: parties for item, (_key, parties) in best.items()}

    @staticmethod
    def seq_owners(
        conn: Connection, pairs: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], bytes]:
        """The event id already stored for each (origin, seq), to detect forks."""
        out: dict[tuple[str, int], bytes] = {}
        by_origin: dict[str, list[int]] = {}
        for origin, seq in pairs:
            by_origin.setdefault(origin, []).append(seq)
        for origin, seqs in by_origin.items():
            chunks = select_in(
                conn,
                "SELECT origin_seq, event_id FROM events WHERE origin = {0} AND origin_seq",
                seqs,
                first=(origin,),
            )
            for rows in chunks:
                out.update(((origin, r[0]), bytes(r[1])) for r in rows)
        return out

    def record_batch(
        self,
        conn: Connection,
        *,
        source: str,
        accepted: Sequence[Accepted],
        links: Sequence[Sequence[str]],
        refused: Sequence[tuple[bytes, str | None, bytes | None, str, str]],
        now: int,
        clock: int | None = None,
    ) -> Stored:
        """Store a received batch's events and refusals inside the caller's write
        transaction (``links``: each accepted event's, from the router), with the
        link's cursor the caller writes (``Outbox.received``); once it has committed,
        hand the result to :meth:`fold_later`.

        ``clock``: this node's clock when the batch's checks began (read by
        :meth:`read_clock` in this transaction; the checks were
        :meth:`clock_refusal`)."""
        stored = self.insert_routed(conn, accepted, links, source, now)
        stored.dropped = self._keep_refused(conn, source, refused, now) if refused else 0
        lamports = [a.event.lamport for a in accepted if a.event is not None]
        if lamports:
            current = self.read_clock(conn) if clock is None else clock
            if max(lamports) > current:
                self.write_meta(conn, "lamport", _int_bytes(max(lamports)))
        return stored

    def _keep_refused(
        self,
        conn: Connection,
        source: str,
        refused: Sequence[tuple[bytes, str | None, bytes | None, str, str]],
        now: int,
    ) -> int:
        """Keep a batch's refused events for audit within the link's quota
        (``sync.refused_keep_events`` and ``sync.refused_keep_bytes``): the oldest
        are pruned. Returns how many were dropped, this batch's included."""
        max_events, max_bytes = self.refused_keep_events, self.refused_keep_bytes
        keep: list[tuple[bytes, str | None, bytes | None, str, str]] = []
        size = 0
        for row in reversed(refused):  # the newest first
            if len(keep) >= max_events or size + len(row[0]) > max_bytes:
                break
            keep.append(row)
            size += len(row[0])
        keep.reverse()
        dropped = len(refused) - len(keep)
        if keep:
            conn.execute(
                t.refused.insert(),
                [
                    {
                        "event_id": event_id,
                        "type": type_,
                        "source": source,
                        "reason": reason,
                        "detail": detail[:500],
                        "received_at": now,
                        "raw": raw,
                    }
                    for raw, type_, event_id, reason, detail in keep
                ],
            )
        count, total = conn.execute(
            select(func.count(), func.coalesce(func.sum(func.length(t.refused.c.raw)), 0)).where(
                t.refused.c.source == source
            )
        ).one()
        if count <= max_events and total <= max_bytes:
            return dropped
        # Over the quota: walk the link's rows newest first to the first one to drop.
        rows = conn.execute(
            select(t.refused.c.id, func.length(t.refused.c.raw))
            .where(t.refused.c.source == source)
            .order_by(t.refused.c.id.desc())
        )
        size, cut = 0, None
        for kept, (row_id, length) in enumerate(rows):
            if kept >= max_events or size + int(length) > max_bytes:
                cut = row_id
                break
            size += int(length)
        if cut is not None:
            gone = conn.execute(
                t.refused.delete().where(t.refused.c.source == source, t.refused.c.id <= cut)
            ).rowcount
            dropped += int(gone or 0)
        return dropped

    async def insert_accepted(
        self, conn: AsyncConnection, accepted: Sequence[Accepted], source: str, now: int
    ) -> Stored:
        """Store events and their routes (from the router); our own events' items are
        refolded here and now (:meth:`append_own` applies them to the states it
        folded instead), received ones later (see :meth:`fold_later`)."""
        if not accepted:
            return Stored()
        links = self.router.links(accepted, source)
        stored = await conn.run_sync(self.insert_routed, accepted, links, source, now)
        if source != SELF:
            return stored
        decoded = stored.decoded
        if decoded:
            await self.projection.refold(conn, {ev.item for _, ev in decoded.values()}, decoded)
        return await self._folded_in_place(conn, stored)

    async def _folded_in_place(self, conn: AsyncConnection, stored: Stored) -> Stored:
        """Our own events were folded in their transaction: the cursor of folded
        positions moves past them unless received events wait before them."""
        done = _bytes_int(await self.get_meta(conn, MATERIALISED))
        if done == stored.first_pos - 1:  # nothing received is waiting before ours
            await self.set_meta(conn, MATERIALISED, _int_bytes(stored.last_pos))
            return Stored(links=stored.links)
        return Stored(last_pos=stored.last_pos, links=stored.links)  # folded; the cursor waits

    def insert_routed(
        self,
        conn: Connection,
        accepted: Sequence[Accepted],
        links: Sequence[Sequence[str]],
        source: str,
        now: int,
    ) -> Stored:
        """Store events with their routes (``links``: each event's, from the router)
        and note their origins' progress; what it returns says what to fold."""
        if not accepted:
            return Stored()
        ids = [a.event_id or bytes.fromhex(a.env.event_id) for a in accepted]
        before = int(conn.scalar(select(func.max(t.events.c.pos))) or 0)
        rows = []
        for a, event_id in zip(accepted, ids, strict=True):
            ev = a.event
            rows.append(
                (
                    event_id,
                    a.env.type,
                    a.origin,
                    a.origin_seq,
                    ev.lamport if ev is not None else None,
                    ev.item if ev is not None else None,
                    ev.to if ev is not None else None,
                    source,
                    now,
                    a.env.raw,
                )
            )
        insert_many(conn, t.events, _EVENT_COLUMNS, rows)
        pos_by_id = _new_positions(conn, ids, before)
        route_rows: list[tuple[str, int]] = []
        decoded: Decoded = {}
        for a, event_id, event_links in zip(accepted, ids, links, strict=True):
            pos = pos_by_id[event_id]
            for link in event_links:
                route_rows.append((link, pos))
            if a.event is not None:
                decoded[pos] = (event_id.hex(), a.event)
        if route_rows:
            insert_many(conn, t.routes, ("link", "pos"), route_rows)
        self._note_seen(conn, accepted, now)
        positions = pos_by_id.values()
        return Stored(
            decoded,
            max(positions),
            frozenset(link for link, _pos in route_rows),
            first_pos=min(positions),
        )

    # ------------------------------------------------------- item rows, later

    def commit_begins(self) -> None:
        """A received batch's transaction starts: reads from now on wait for it
        (:meth:`rows_current`); :meth:`commit_ended` must follow, whatever happens."""
        self._commits_begun += 1

    async def commit_ended(self, stored: Stored | None) -> None:
        """The transaction of :meth:`commit_begins` is over (``stored``: what it
        stored, None if it failed): the materialiser takes it from here."""
        if stored is not None:
            self.fold_later(stored)
        async with self._folded:
            self._commits_ended += 1
            self._folded.notify_all()

    def fold_later(self, stored: Stored) -> None:
        """After a commit: wake the materialiser for what it stored (the decoded events
        are kept for it if there is room, else it reads them back)."""
        if not stored.last_pos:
            return
        self._stored_pos = max(self._stored_pos, stored.last_pos)
        if len(self._unfolded) + len(stored.decoded) <= _UNFOLDED_CAP:
            self._unfolded.update(stored.decoded)
        self.unfolded_waiting.set()

    async def start_materialised_cursor(self) -> None:
        """Before anything is received: a database from before the cursor existed had
        every item folded as its events were stored."""
        async with self.db.write() as conn:
            top = int(await conn.scalar(select(func.max(t.events.c.pos))) or 0)
            done = await self.get_meta(conn, MATERIALISED)
            if done is None:
                await self.set_meta(conn, MATERIALISED, _int_bytes(top))
        # Left behind by a stop before folding: reads wait for it like for a new batch.
        self._stored_pos = top
        self._folded_pos = top if done is None else _bytes_int(done)

    async def materialise_pending(self, max_events: int = 2000) -> int:
        """Fold the items of up to ``max_events`` received events not folded yet, in
        one transaction with the cursor. Returns how many events it covered."""
        async with self.db.write() as conn:
            done = _bytes_int(await self.get_meta(conn, MATERIALISED))
            rows = (
                await conn.execute(
                    select(t.events.c.pos, t.events.c.item_id)
                    .where(t.events.c.pos > done)
                    .order_by(t.events.c.pos)
                    .limit(max_events)
                )
            ).all()
            if not rows:
                return 0
            items = {item for _pos, item in rows if item is not None}
            if items:
                await self.projection.refold(conn, items, self._unfolded)
            await self.set_meta(conn, MATERIALISED, _int_bytes(rows[-1][0]))
        for pos, _item in rows:
            self._unfolded.pop(pos, None)
        async with self._folded:
            self._folded_pos = max(self._folded_pos, rows[-1][0])
            self._folded.notify_all()
        return len(rows)

    def rows_are_current(self) -> bool:
        """Whether every event received so far is folded into item rows now."""
        return (
            self._commits_ended >= self._commits_begun and self._folded_pos >= self._stored_pos
        )

    async def rows_current(self, timeout: float = ROWS_WAIT_SECONDS) -> bool:
        """Wait until every event received so far is folded into item rows, at most
        ``timeout`` seconds (a large catch-up takes longer: then False, rows lag)."""
        begun = self._commits_begun
        if self.rows_are_current():
            return True
        async with self._folded:
            try:
                await asyncio.wait_for(self._wait_folded(begun), timeout)
            except TimeoutError:
                return False
        return True

    @property
    def folded_pos(self) -> int:
        """The position up to which received events are folded into item rows."""
        return self._folded_pos

    async def folded_past(self, pos: int) -> int:
        """Wait until received events past position ``pos`` are folded into item rows
        (a background service that reads the rows of what arrives: the cascade);
        returns the position folded up to."""
        async with self._folded:
            await self._folded.wait_for(lambda: self._folded_pos > pos)
            return self._folded_pos

    async def _wait_folded(self, begun: int) -> None:
        # A batch that committed may be visible to readers an instant before its
        # commit's task learns its positions: wait for that first.
        await self._folded.wait_for(lambda: self._commits_ended >= begun)
        target = self._stored_pos
        await self._folded.wait_for(lambda: self._folded_pos >= target)

    async def materialise_all(self) -> int:
        """Fold everything waiting (commands that read item rows of a stopped node)."""
        total = 0
        while n := await self.materialise_pending():
            total += n
        return total

    async def unfolded_count(self) -> int:
        """Received events whose items are not folded into rows yet."""
        async with self.db.read() as conn:
            done = _bytes_int(await self.get_meta(conn, MATERIALISED))
            value = await conn.scalar(select(func.count()).where(t.events.c.pos > done))
        return int(value or 0)

    @staticmethod
    def _note_seen(conn: Connection, accepted: Sequence[Accepted], now: int) -> None:
        """Per origin node: the newest event we hold, and when it reached us."""
        newest: dict[str, tuple[int, int]] = {}
        for a in accepted:
            if a.event is None:
                continue
            seq, at = newest.get(a.event.origin, (0, 0))
            newest[a.event.origin] = (max(seq, a.event.seq), max(at, a.event.at))
        for origin, (seq, at) in newest.items():
            row = conn.execute(
                select(t.node_seen.c.max_seq, t.node_seen.c.last_event_at).where(
                    t.node_seen.c.node == origin
                )
            ).first()
            if row is None:
                conn.execute(
                    t.node_seen.insert().values(
                        node=origin, max_seq=seq, last_event_at=at, last_received_at=now
                    )
                )
            else:
                conn.execute(
                    update(t.node_seen)
                    .where(t.node_seen.c.node == origin)
                    .values(
                        max_seq=max(seq, row.max_seq),
                        last_event_at=max(at, row.last_event_at),
                        last_received_at=now,
                    )
                )

    async def events_of(
        self, origins: Sequence[str], after: int, limit: int
    ) -> tuple[list[bytes], int]:
        """Events authored by ``origins`` and every trust record, in our order (to give
        a restored child back its own and its subtree's events, however they reached
        us, with the certificates that verify them)."""
        nodes = list(origins)
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(t.events.c.pos, t.events.c.raw)
                    .where(
                        t.events.c.pos > after,
                        or_(
                            and_(t.events.c.origin.in_(nodes),
                                 t.events.c.origin_seq.is_not(None)),
                            # Certificates too: keys enrolled after the backup was taken.
                            t.events.c.type.in_(TRUST_TYPES),
                        ),
                    )
                    .order_by(t.events.c.pos)
                    .limit(limit)
                )
            ).all()
        return [r[1] for r in rows], (rows[-1][0] if rows else after)

    async def max_seq_of(self, origin: str) -> int:
        async with self.db.read() as conn:
            value = await conn.scalar(
                select(func.max(t.events.c.origin_seq)).where(t.events.c.origin == origin)
            )
        return int(value or 0)

    async def finish_recovery(
        self, renumbered: Callable[[AsyncConnection], Awaitable[None]]
    ) -> None:
        """After a restore: continue our sequence after the recovered events and start
        a new stream epoch (children pull again). ``renumbered`` runs in the same
        transaction: our positions are renumbered, so the cursors kept in the old
        numbering are reset there (``Outbox.renumbered``: everything is pushed up
        again, and the parent drops what it has)."""
        async with self.db.write() as conn:
            own = await conn.scalar(
                select(func.max(t.events.c.origin_seq)).where(t.events.c.origin == self.me)
            )
            # Never a clock past the ceiling (one stored before clocks were bounded).
            lamport = await conn.scalar(
                select(func.max(t.events.c.lamport)).where(t.events.c.lamport <= LAMPORT_CEILING)
            )
            await self.set_meta(conn, "own_seq", _int_bytes(int(own or 0)))
            current = await conn.run_sync(self.read_clock)
            await self.set_meta(conn, "lamport", _int_bytes(max(current, int(lamport or 0))))
            epoch = random_epoch()
            await self.set_meta(conn, "epoch", epoch)
            await renumbered(conn)
        self._epoch = epoch

    async def epoch(self) -> bytes:
        """This node's stream epoch: a new one after it recovered from a backup (its
        positions were renumbered). Read once; every sync request answers with it."""
        if self._epoch is None:
            value = await self.meta("epoch")
            if value is None:
                async with self.db.write() as conn:
                    value = await self.get_meta(conn, "epoch")
                    if value is None:
                        value = random_epoch()
                        await self.set_meta(conn, "epoch", value)
            self._epoch = value
        return self._epoch

    async def counts(self) -> dict[str, int]:
        async with self.db.read() as conn:
            events = await conn.scalar(select(func.count()).select_from(t.events))
            items = await conn.scalar(select(func.count()).select_from(t.items))
            refused = await conn.scalar(select(func.count()).select_from(t.refused))
        return {"events": int(events or 0), "items": int(items or 0), "refused": int(refused or 0)}


_EVENT_COLUMNS = (
    "event_id", "type", "origin", "origin_seq", "lamport", "item_id", "to_node", "source",
    "received_at", "raw",
)


def insert_many(
    conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """``INSERT`` plain values (str, int, bytes, None) straight through the driver, many
    rows per statement. On the sync path this is most of the rows a node writes.

    Not SQLAlchemy's per-row parameter processing, which costs more than SQLite's
    insert; and not the driver's executemany: ``sqlite3`` steps each row with the
    GIL released, and while the event loop's thread runs Python each step waits
    for the GIL to come back (up to the 5 ms switch interval), many times the CPU
    it costs in wall time (``bench/sqlite_gil.py``; docs/performance.md, "Figures
    behind the code")."""
    style = conn.dialect.paramstyle
    width = len(columns)
    if placeholders(style, width) is None:  # another driver: the portable way
        conn.execute(table.insert(), [dict(zip(columns, r, strict=True)) for r in rows])
        return
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    per = max(1, _max_params(conn) // width)
    for i in range(0, len(rows), per):
        part = rows[i : i + per]
        values = tuple(chain.from_iterable(part))
        conn.exec_driver_sql(head + _values_marks(style, width, len(part)), values)


@lru_cache(maxsize=64)
def _values_marks(style: str, width: int, count: int) -> str:
    """``(?, ?), (?, ?), ...``: ``count`` rows of ``width`` markers in ``style``."""
    return ", ".join(f"({placeholders(style, width, 1 + k * width)})" for k in range(count))


def _new_positions(conn: Connection, ids: Sequence[bytes], before: int) -> dict[bytes, int]:
    """Where the events just inserted (``ids``, in order) went. One writer at a time,
    so the rows after ``before`` are exactly these. On SQLite, AUTOINCREMENT gives
    rows ascending positions in the order they are inserted: a contiguous run of the
    right length is read as one row (reading 1,000 rows is 1,000 waits for the GIL,
    see :func:`insert_many`). Otherwise every row's position is read."""
    pos = t.events.c.pos
    if conn.dialect.name == "sqlite":
        low, high, count = conn.execute(
            select(func.min(pos), func.max(pos), func.count()).where(pos > before)
        ).one()
        if count == len(ids) and high - low + 1 == count:
            return {event_id: low + i for i, event_id in enumerate(ids)}
    got = conn.execute(select(t.events.c.event_id, pos).where(pos > before))
    return {r[0]: r[1] for r in got}


def _max_params(conn: Connection) -> int:
    """Parameters one statement may take: SQLite before 3.32 allows 999, later ones
    32,766 (or what it was built with); PostgreSQL's protocol 32,767."""
    version = getattr(conn.dialect.dbapi, "sqlite_version_info", None)
    if version is not None and version < (3, 32, 0):
        return 999
    return 32_000


def select_in(
    conn: Connection,
    head: str,
    values: Sequence[Any],
    chunk: int = _IN_CHUNK,
    *,
    first: Sequence[Any] = (),
) -> list[Sequence[Any]]:
    """``head IN (values)`` through the driver, in chunks: one result list per chunk.
    ``head`` is trusted SQL ending with the column, e.g. ``SELECT x FROM t WHERE y``;
    it may hold parameters of its own, written ``{0}``, ``{1}``..., whose values are
    ``first``."""
    style = conn.dialect.paramstyle
    own = [placeholders(style, 1, i + 1) for i in range(len(first))]
    sql_head = head.format(*own) if first else head
    out: list[Sequence[Any]] = []
    for i in range(0, len(values), chunk):
        part = tuple(values[i : i + chunk])
        marks = placeholders(style, len(part), len(first) + 1)
        if marks is None or None in own:
            raise NotImplementedError(f"paramstyle {style}")
        result = conn.exec_driver_sql(f"{sql_head} IN ({marks})", (*first, *part))
        out.append(result.all())
    return out


def random_epoch() -> bytes:
    return os.urandom(16)


__all__ = [
    "PARENT", "RECOVERY", "SELF", "Accepted", "Appended", "BatchResult", "Draft", "EventLog",
    "Precheck", "Projection", "Router", "States", "Stored",
]
