"""The node's outboxes: one durable, ordered queue per link, its cursors, its readers.

A link is the parent (``PARENT``) or a child (its id). An event is queued for a
link by a ``routes`` row (link, position) written in the transaction that stores
the event (``node/storage/events.py``; which links: :meth:`Outbox.links`, the
rules of ``node/sync/routing.py``). Each link's row in ``links`` keeps two
cursors: ``acked_pos``, how far the other side holds what we queued for it, and
``applied_pos``, how far we hold its stream (written in the transaction that
stores its batch: :meth:`Outbox.received`). Cursors only move forward, except
when one side's stream is renumbered (a restore: a new epoch).

Readers of an outbox (the parent's long-polls, the child's push loop) wait on
:attr:`Outbox.changed` for their own link's generation to move.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from node.background import Broadcast
from node.storage import schema as t
from node.storage.db import Database
from node.storage.events import PARENT, TRUST_TYPES, Accepted
from node.sync.routing import KnownTree, routes_for, trust_subject


@dataclass(frozen=True, slots=True)
class LinkStatus:
    link: str
    pending_out: int
    oldest_pending_ms: int | None
    acked_pos: int
    applied_pos: int
    last_contact: int | None
    last_error: str | None
    last_error_at: int | None
    failures: int
    refused_dropped: int = 0

    def to_dict(self, now_ms: int) -> dict[str, Any]:
        return {
            "link": self.link,
            "pending_out": self.pending_out,
            "oldest_pending_age_s": None
            if self.oldest_pending_ms is None
            else max(0, now_ms - self.oldest_pending_ms) // 1000,
            "acked_pos": self.acked_pos,
            "applied_pos": self.applied_pos,
            "last_contact": self.last_contact,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "failures": self.failures,
            "refused_dropped": self.refused_dropped,
        }


class Outbox:
    """The outboxes and link rows of one node. Built once per process by the node and
    given to its event log as the ``Router`` of what it stores."""

    def __init__(self, db: Database, tree: KnownTree, *, has_parent: bool) -> None:
        self.db = db
        self.tree = tree
        self.has_parent = has_parent
        self.changed = Broadcast()
        # Per link, bumped when events are queued for it (``_everyone``: for every link),
        # so that an outbox's reader wakes for its own link only (:meth:`generation`).
        self._queued: dict[str, int] = {}
        self._everyone = 0

    # -------------------------------------------------------------- routing

    def links(self, accepted: Sequence[Accepted], source: str) -> list[list[str]]:
        """Each event's links (the outboxes it is queued for), from the tree as this
        node knows it now. Worked out on the event loop, which alone changes the tree.
        A trust record about this node or an ancestor goes to every child known now;
        a received batch's commit adds the children enrolled since
        (``node.sync.routing.with_children_now``)."""
        # An event's links depend on its ``to`` and, for a trust record, on the node it
        # is about (a unit list has no ``to`` and is no trust record: it goes up only).
        links_to: dict[tuple[str | None, bool], list[str]] = {}
        out: list[list[str]] = []
        for a in accepted:
            trust = a.event is None and a.env.type in TRUST_TYPES
            to = trust_subject(a.env) if trust else a.event.to if a.event is not None else None
            links = links_to.get((to, trust))
            if links is None:
                links = links_to[(to, trust)] = routes_for(
                    self.tree, source=source, is_trust_record=trust,
                    to=None if trust else to, subject=to if trust else None,
                    has_parent=self.has_parent,
                )
            out.append(links)
        return out

    async def route_trust_records(self, conn: AsyncConnection, link: str) -> None:
        """Queue for ``link`` (a child just enrolled) the trust records it needs and was
        not sent yet: its ancestors' chain, and its known subtree's records if it is
        enrolled again (:meth:`KnownTree.holds_for`). Records about other nodes (its
        siblings, cousins) it never needs: it verifies only what its ancestors and its
        subtree sign. In the join's transaction: a received batch stored before it is
        queued here, one stored after it routes to the child itself."""
        wanted = [hashlib.sha256(raw).digest() for raw in self.tree.holds_for(link)]
        if not wanted:
            return
        routed = select(t.routes.c.pos).where(t.routes.c.link == link)
        rows = await conn.execute(
            select(t.events.c.pos).where(
                t.events.c.event_id.in_(wanted), t.events.c.pos.not_in(routed)
            )
        )
        missing = [{"link": link, "pos": r[0]} for r in rows]
        if missing:
            await conn.execute(t.routes.insert(), missing)

    # ------------------------------------------------------------- waking

    async def queued(self, links: Iterable[str]) -> None:
        """After a commit: events were queued for ``links`` (``Stored.links``), so that
        only their readers look again."""
        await self.notify(links)

    async def notify(self, links: Iterable[str] | None = None) -> None:
        """Wake whoever waits on :attr:`changed`. ``links``: the links events were just
        queued for; None for any change (stopping, a recovery)."""
        if links is None:
            self._everyone += 1
        else:
            for link in links:
                self._queued[link] = self._queued.get(link, 0) + 1
        self.changed.notify_all()

    def generation(self, link: str) -> tuple[int, int]:
        """Changes whenever events may have been queued for ``link``."""
        return self._everyone, self._queued.get(link, 0)

    async def wait(
        self,
        link: str,
        seen: tuple[int, int],
        stopping: asyncio.Event,
        timeout: float | None = None,
    ) -> None:
        """Until ``link``'s :meth:`generation` is no longer ``seen`` or ``stopping`` is
        set (a stop notifies), at most ``timeout`` seconds."""

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.generation(link) == seen and not stopping.is_set():
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            await self.changed.wait(remaining)

    # ------------------------------------------------------------- reading

    async def page(
        self, link: str, after: int, *, limit: int, max_bytes: int
    ) -> tuple[list[bytes], int, bool]:
        """Envelopes routed to ``link`` after ``after``: (raws, last pos, more waiting)."""
        # Through the driver: a page is a thousand rows, and SQLAlchemy's per-row
        # processing cost more than SQLite's reading them. The sync path's short reads
        # run on the loop's thread (Database.run_read): each through read() was two
        # hand-offs to a database thread, most of a busy process's CPU (issue 17).
        rows: Sequence[Any] = await self.db.run_read(
            _rows, _PAGE, {"link": link, "after": after, "limit": limit + 1}
        )
        raws: list[bytes] = []
        size = 0
        last = after
        for pos, raw in rows[:limit]:
            if raws and size + len(raw) > max_bytes:
                return raws, last, True
            raws.append(raw)
            size += len(raw)
            last = pos
        return raws, last, len(rows) > limit

    async def pending_count(self, link: str, after: int) -> int:
        """Events routed to ``link`` after ``after`` (still to send)."""
        value = await self.db.run_read(_scalar, _PENDING, {"link": link, "after": after})
        return int(value or 0)

    async def max_route_pos(self, link: str) -> int:
        """The last position ever queued for ``link``."""
        value = await self.db.run_read(_scalar, _MAX_POS, {"link": link})
        return int(value or 0)

    # ----------------------------------------------------------- link rows

    @staticmethod
    def mark_link(conn: Connection, link: str, values: dict[str, Any]) -> None:
        done = conn.execute(_set_link(tuple(values)), {"link_": link, **values})
        if done.rowcount == 0:
            base = {"link": link, "acked_pos": 0, "applied_pos": 0, "failures": 0}
            conn.execute(t.links.insert().values(**{**base, **values}))

    @staticmethod
    def advance_cursor(
        conn: Connection, link: str, column: str, pos: int, *, epoch: bytes | None = None
    ) -> int:
        """Move the link's cursor ``column`` (``applied_pos`` or ``acked_pos``) to ``pos``
        unless it is further already, in the caller's transaction; returns where it is.

        A cursor never moves backwards: a late duplicate (an upload or a page request
        delivered after a newer one) must not make the other side send hundreds of
        events again. The comparison is in the statement itself, so it holds against
        any other writer. The resets — the other side's stream was renumbered (a new
        ``epoch`` here, a new parent epoch or a recovery elsewhere) — are explicit
        (:meth:`mark_link`). ``epoch``: the sender's stream epoch, when it said."""
        row = conn.execute(_CURSORS, {"link_": link}).first()
        if row is None or (epoch is not None and row.peer_epoch != epoch):
            Outbox.mark_link(conn, link, {column: pos, "peer_epoch": epoch})
            return pos
        held = int(getattr(row, column) or 0)
        if held >= pos:
            return held
        # Another writer (a second process on PostgreSQL) may have moved it further
        # meanwhile: the statement keeps the larger, and the answer may be behind the
        # row, never ahead of what was stored.
        conn.execute(_ADVANCE[column], {"link_": link, "pos": pos})
        return pos

    @staticmethod
    def received(
        conn: Connection,
        source: str,
        *,
        now: int,
        dropped: int,
        applied_pos: int | None,
        peer_epoch: bytes | None = None,
    ) -> int:
        """The link's side of a received batch, in the transaction that stores it: its
        last contact, the refused events not kept (``dropped``), and its cursor
        ``applied_pos``, which only moves forward unless ``peer_epoch`` differs from
        the one stored (the sender's positions were renumbered: it was restored).
        Returns the cursor (0 when the batch named none)."""
        Outbox.mark_link(conn, source, {"last_contact": now})
        if dropped:
            conn.execute(
                update(t.links)
                .where(t.links.c.link == source)
                .values(refused_dropped=t.links.c.refused_dropped + dropped)
            )
        if applied_pos is None:
            return 0
        return Outbox.advance_cursor(conn, source, "applied_pos", applied_pos, epoch=peer_epoch)

    @staticmethod
    async def renumbered(conn: AsyncConnection) -> None:
        """Our positions were renumbered (``EventLog.finish_recovery``, in its
        transaction): what each link acknowledged in the old numbering is forgotten,
        the one exception to cursors only moving forward."""
        await conn.run_sync(Outbox.mark_link, PARENT, {"acked_pos": 0})
        await conn.execute(update(t.links).where(t.links.c.link != PARENT).values(acked_pos=0))

    async def advance_link(self, link: str, column: str, pos: int, **values: Any) -> int:
        """:meth:`advance_cursor` in a transaction of its own, with other ``values``
        (last contact...) set in it too."""
        def body(conn: Connection) -> int:
            if values:
                self.mark_link(conn, link, values)
            return self.advance_cursor(conn, link, column, pos)

        return await self.db.run_write(body)  # never abandoned: see update_link

    async def link_row(self, link: str) -> dict[str, Any]:
        row = await self.db.run_read(_first, _LINK_ROW, {"link": link})
        if row is None:
            return {"link": link, "acked_pos": 0, "applied_pos": 0, "failures": 0}
        return dict(row._mapping)

    async def update_link(self, link: str, **values: Any) -> None:
        """Set ``values`` on the link's row, in a transaction of its own.

        Through :meth:`Database.run_write`, which never abandons a transaction it
        began: the sync client's loops write here and are cancelled when their
        sibling fails, and a cancel that landed in a statement of :meth:`Database.write`
        left aiosqlite's connection inside its transaction, holding SQLite's write
        lock for good (every later write of the node: "database is locked")."""
        await self.db.run_write(lambda conn: self.mark_link(conn, link, values))

    async def link_statuses(self, links: Iterable[str]) -> list[LinkStatus]:
        out = []
        async with self.db.read() as conn:
            for link in links:
                row = (await conn.execute(select(t.links).where(t.links.c.link == link))).first()
                acked = row.acked_pos if row is not None else 0
                pending = await conn.scalar(
                    select(func.count()).where(t.routes.c.link == link, t.routes.c.pos > acked)
                )
                oldest = await conn.scalar(
                    select(t.events.c.received_at)
                    .join(t.routes, t.events.c.pos == t.routes.c.pos)
                    .where(t.routes.c.link == link, t.routes.c.pos > acked)
                    .order_by(t.routes.c.pos)
                    .limit(1)
                )
                out.append(
                    LinkStatus(
                        link=link,
                        pending_out=int(pending or 0),
                        oldest_pending_ms=oldest,
                        acked_pos=acked,
                        applied_pos=row.applied_pos if row is not None else 0,
                        last_contact=row.last_contact if row is not None else None,
                        last_error=row.last_error if row is not None else None,
                        last_error_at=row.last_error_at if row is not None else None,
                        failures=row.failures if row is not None else 0,
                        refused_dropped=row.refused_dropped if row is not None else 0,
                    )
                )
        return out

    def all_links(self) -> list[str]:
        """Every link of this node, for the status pages: the parent's (if it has
        one), then each child's."""
        return ([PARENT] if self.has_parent else []) + self.tree.children()


_PAGE = text(
    "SELECT routes.pos, events.raw FROM routes JOIN events ON events.pos = routes.pos"
    " WHERE routes.link = :link AND routes.pos > :after ORDER BY routes.pos LIMIT :limit"
)
"""A link's outbox after a position: plain SQL, whose rows SQLAlchemy hands over as
the driver gives them (no per-row processing by column type)."""
_PENDING = select(func.count()).where(
    t.routes.c.link == bindparam("link"), t.routes.c.pos > bindparam("after")
)
_MAX_POS = select(func.max(t.routes.c.pos)).where(t.routes.c.link == bindparam("link"))
_LINK_ROW = select(t.links).where(t.links.c.link == bindparam("link"))


def _rows(conn: Connection, statement: Executable, params: dict[str, Any]) -> Sequence[Any]:
    return conn.execute(statement, params).all()


def _scalar(conn: Connection, statement: Executable, params: dict[str, Any]) -> Any:
    return conn.execute(statement, params).scalar()


def _first(conn: Connection, statement: Executable, params: dict[str, Any]) -> Any:
    return conn.execute(statement, params).first()
_LINK = t.links.c
_CURSORS = select(_LINK.acked_pos, _LINK.applied_pos, _LINK.peer_epoch).where(
    _LINK.link == bindparam("link_")
)
_ADVANCE = {
    column: update(t.links)
    .where(_LINK.link == bindparam("link_"), _LINK[column] < bindparam("pos"))
    .values({column: bindparam("pos")})
    for column in ("acked_pos", "applied_pos")
}
_SET_LINK: dict[tuple[str, ...], Executable] = {}


def _set_link(columns: tuple[str, ...]) -> Executable:
    """``UPDATE links SET <columns> WHERE link = :link_``, one statement object per set
    of columns (SQLAlchemy's cache key of a statement built anew for each call was a
    good part of a sync round's CPU)."""
    statement = _SET_LINK.get(columns)
    if statement is None:
        statement = _SET_LINK[columns] = (
            update(t.links)
            .where(_LINK.link == bindparam("link_"))
            .values({c: bindparam(c) for c in columns})
        )
    return statement
