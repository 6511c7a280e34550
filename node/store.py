"""The node's event store: named transactions over the schema, one per batch.

Every accepted event is kept as its exact envelope bytes with the header
columns used for routing and folding; ``routes`` rows make the durable
outboxes. Everything a call writes — events, routes, refusals, the link
cursor, the materialised items — commits in one transaction, so a crash leaves
either all of a batch or none of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from node.clock import Clock
from node.items import materialise
from node.storage import schema as t
from node.storage.db import Database
from node.sync.routing import PARENT, SELF, TreeView, routes_for
from protocol import codec, envelope
from protocol.certs import CERT_TYPE, REVOCATION_TYPE, TrustStore
from protocol.events import Event, encode_event
from protocol.keys import SigningKey

logger = logging.getLogger(__name__)

TRUST_TYPES = frozenset({CERT_TYPE, REVOCATION_TYPE})
_IN_CHUNK = 500

Draft = Callable[[int, int, int], Event]
"""Builds one of our own events from (seq, lamport, at) assigned by the store."""

Precheck = Callable[[AsyncConnection, list[Event]], Awaitable[None]]


@dataclass(slots=True)
class Accepted:
    """One verified, authorised event ready to store."""

    env: envelope.Envelope
    event: Event | None  # None for trust records
    origin: str | None
    origin_seq: int | None


@dataclass(slots=True)
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    refused: list[tuple[int, str, str]] = field(default_factory=list)
    applied_pos: int = 0


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
        }


def _int_bytes(value: int) -> bytes:
    return codec.encode(value)


def _bytes_int(raw: bytes | None) -> int:
    if raw is None:
        return 0
    value = codec.decode(raw)
    assert type(value) is int
    return value


class Store:
    """Named transactions of one node. Built once per process by the app."""

    def __init__(
        self,
        db: Database,
        trust: TrustStore,
        *,
        me: str,
        key: SigningKey,
        clock: Clock,
        has_parent: bool,
    ) -> None:
        self.db = db
        self.trust = trust
        self.me = me
        self.key = key
        self.clock = clock
        self.has_parent = has_parent
        self.view = TreeView(trust, me)
        self.changed = asyncio.Condition()
        self.generation = 0

    # ------------------------------------------------------------------ meta

    @staticmethod
    async def get_meta(conn: AsyncConnection, key: str) -> bytes | None:
        return await conn.scalar(select(t.meta.c.value).where(t.meta.c.key == key))

    @staticmethod
    async def set_meta(conn: AsyncConnection, key: str, value: bytes) -> None:
        done = await conn.execute(update(t.meta).where(t.meta.c.key == key).values(value=value))
        if done.rowcount == 0:
            await conn.execute(t.meta.insert().values(key=key, value=value))

    async def meta(self, key: str) -> bytes | None:
        async with self.db.read() as conn:
            return await self.get_meta(conn, key)

    async def own_seq(self) -> int:
        return _bytes_int(await self.meta("own_seq"))

    # ------------------------------------------------------------ trust load

    async def store_trust_records(self, raws: Sequence[bytes], source: str) -> None:
        """Keep trust records accepted outside a sync batch (init, join, invite)."""
        now = self.clock.now_ms()
        async with self.db.write() as conn:
            accepted = []
            for raw in raws:
                env = envelope.parse(raw)
                accepted.append(Accepted(env=env, event=None, origin=None, origin_seq=None))
            await self.insert_accepted(conn, accepted, source, now)
        await self._notify()

    async def route_trust_records(self, conn: AsyncConnection, link: str) -> None:
        """Queue every trust record held here for ``link`` (a child just enrolled), so it
        learns the whole tree, not only its own chain: records accepted before it
        existed were routed to the children of that time only."""
        routed = select(t.routes.c.pos).where(t.routes.c.link == link)
        rows = await conn.execute(
            select(t.events.c.pos).where(
                t.events.c.type.in_(TRUST_TYPES), t.events.c.pos.not_in(routed)
            )
        )
        missing = [{"link": link, "pos": r[0]} for r in rows]
        if missing:
            await conn.execute(t.routes.insert(), missing)

    # ------------------------------------------------------------- own writes

    async def append_own(
        self, drafts: Sequence[Draft], *, precheck: Precheck | None = None
    ) -> list[tuple[Event, envelope.Envelope]]:
        """Sign and store events of our own, one signature over the whole batch.

        ``precheck(conn, events)`` runs inside the write transaction before
        anything is signed; whatever it raises rolls everything back, so a check
        of the item's state cannot race another writer.
        """
        if not drafts:
            return []
        now = self.clock.now_ms()
        async with self.db.write() as conn:
            seq = _bytes_int(await self.get_meta(conn, "own_seq"))
            lamport = _bytes_int(await self.get_meta(conn, "lamport"))
            events = [d(seq + i + 1, lamport + i + 1, now) for i, d in enumerate(drafts)]
            if precheck is not None:
                await precheck(conn, events)
            envs = envelope.sign_batch(self.key, [encode_event(e) for e in events])
            accepted = [
                Accepted(env=env, event=ev, origin=ev.origin, origin_seq=ev.seq)
                for ev, env in zip(events, envs, strict=True)
            ]
            await self.insert_accepted(conn, accepted, SELF, now)
            await self.set_meta(conn, "own_seq", _int_bytes(seq + len(events)))
            await self.set_meta(conn, "lamport", _int_bytes(lamport + len(events)))
        await self._notify()
        return list(zip(events, envs, strict=True))

    # ---------------------------------------------------------------- receive

    async def known_ids(self, conn: AsyncConnection, ids: Iterable[bytes]) -> set[bytes]:
        wanted = list(ids)
        found: set[bytes] = set()
        for i in range(0, len(wanted), _IN_CHUNK):
            rows = await conn.execute(
                select(t.events.c.event_id).where(
                    t.events.c.event_id.in_(wanted[i : i + _IN_CHUNK])
                )
            )
            found.update(r[0] for r in rows)
        return found

    async def item_parties(
        self, conn: AsyncConnection, item_ids: Iterable[str]
    ) -> dict[str, tuple[str, str]]:
        """(assigner, assignee) of each known item."""
        wanted = list(set(item_ids))
        out: dict[str, tuple[str, str]] = {}
        for i in range(0, len(wanted), _IN_CHUNK):
            rows = await conn.execute(
                select(t.items.c.item_id, t.items.c.assigner, t.items.c.assignee).where(
                    t.items.c.item_id.in_(wanted[i : i + _IN_CHUNK])
                )
            )
            out.update((r[0], (r[1], r[2])) for r in rows)
        return out

    async def seq_owners(
        self, conn: AsyncConnection, pairs: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], bytes]:
        """The event id already stored for each (origin, seq), to detect forks."""
        out: dict[tuple[str, int], bytes] = {}
        by_origin: dict[str, list[int]] = {}
        for origin, seq in pairs:
            by_origin.setdefault(origin, []).append(seq)
        for origin, seqs in by_origin.items():
            for i in range(0, len(seqs), _IN_CHUNK):
                rows = await conn.execute(
                    select(t.events.c.origin_seq, t.events.c.event_id).where(
                        t.events.c.origin == origin,
                        t.events.c.origin_seq.in_(seqs[i : i + _IN_CHUNK]),
                    )
                )
                out.update(((origin, r[0]), r[1]) for r in rows)
        return out

    async def record_batch(
        self,
        conn: AsyncConnection,
        *,
        source: str,
        accepted: Sequence[Accepted],
        refused: Sequence[tuple[bytes, str | None, bytes | None, str, str]],
        applied_pos: int | None,
    ) -> None:
        """Store a received batch's outcome inside the caller's write transaction."""
        now = self.clock.now_ms()
        await self.insert_accepted(conn, accepted, source, now)
        if refused:
            await conn.execute(
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
                    for raw, type_, event_id, reason, detail in refused
                ],
            )
        lamports = [a.event.lamport for a in accepted if a.event is not None]
        if lamports:
            current = _bytes_int(await self.get_meta(conn, "lamport"))
            if max(lamports) > current:
                await self.set_meta(conn, "lamport", _int_bytes(max(lamports)))
        values: dict[str, Any] = {"last_contact": now}
        if applied_pos is not None:
            values["applied_pos"] = applied_pos
        await self.touch_link(conn, source, **values)

    async def insert_accepted(
        self, conn: AsyncConnection, accepted: Sequence[Accepted], source: str, now: int
    ) -> None:
        if not accepted:
            return
        rows = []
        for a in accepted:
            ev = a.event
            rows.append(
                {
                    "event_id": bytes.fromhex(a.env.event_id),
                    "type": a.env.type,
                    "origin": a.origin,
                    "origin_seq": a.origin_seq,
                    "lamport": ev.lamport if ev is not None else None,
                    "item_id": ev.item if ev is not None else None,
                    "to_node": ev.to if ev is not None else None,
                    "source": source,
                    "received_at": now,
                    "raw": a.env.raw,
                }
            )
        await conn.execute(t.events.insert(), rows)
        ids = [r["event_id"] for r in rows]
        pos_by_id: dict[bytes, int] = {}
        for i in range(0, len(ids), _IN_CHUNK):
            got = await conn.execute(
                select(t.events.c.event_id, t.events.c.pos).where(
                    t.events.c.event_id.in_(ids[i : i + _IN_CHUNK])
                )
            )
            pos_by_id.update((r[0], r[1]) for r in got)
        route_rows = []
        decoded: dict[int, tuple[str, Event]] = {}
        for a, row in zip(accepted, rows, strict=True):
            links = routes_for(
                self.view,
                source=source,
                is_trust_record=a.event is None,
                to=a.event.to if a.event is not None else None,
                has_parent=self.has_parent,
            )
            pos = pos_by_id[row["event_id"]]
            route_rows.extend({"link": link, "pos": pos} for link in links)
            if a.event is not None:
                decoded[pos] = (row["event_id"].hex(), a.event)
        if route_rows:
            await conn.execute(t.routes.insert(), route_rows)
        if decoded:
            await materialise(
                conn, {ev.item for _, ev in decoded.values()}, self.path_of, decoded
            )
        await self._note_seen(conn, accepted, now)

    def path_of(self, node: str) -> str:
        """The node's path from the root, "14/1401/140101/", for subtree prefix queries."""
        return "".join(f"{n}/" for n in reversed(self.view.path_up(node)))

    async def _note_seen(
        self, conn: AsyncConnection, accepted: Sequence[Accepted], now: int
    ) -> None:
        """Per origin node: the newest event we hold, and when it reached us."""
        newest: dict[str, tuple[int, int]] = {}
        for a in accepted:
            if a.event is None:
                continue
            seq, at = newest.get(a.event.origin, (0, 0))
            newest[a.event.origin] = (max(seq, a.event.seq), max(at, a.event.at))
        for origin, (seq, at) in newest.items():
            row = (
                await conn.execute(
                    select(t.node_seen.c.max_seq, t.node_seen.c.last_event_at).where(
                        t.node_seen.c.node == origin
                    )
                )
            ).first()
            if row is None:
                await conn.execute(
                    t.node_seen.insert().values(
                        node=origin, max_seq=seq, last_event_at=at, last_received_at=now
                    )
                )
            else:
                await conn.execute(
                    update(t.node_seen)
                    .where(t.node_seen.c.node == origin)
                    .values(
                        max_seq=max(seq, row.max_seq),
                        last_event_at=max(at, row.last_event_at),
                        last_received_at=now,
                    )
                )

    async def _notify(self) -> None:
        async with self.changed:
            self.generation += 1
            self.changed.notify_all()

    async def notify(self) -> None:
        await self._notify()

    # ----------------------------------------------------------------- links

    @staticmethod
    async def touch_link(conn: AsyncConnection, link: str, **values: Any) -> None:
        done = await conn.execute(update(t.links).where(t.links.c.link == link).values(**values))
        if done.rowcount == 0:
            base = {"link": link, "acked_pos": 0, "applied_pos": 0, "failures": 0}
            await conn.execute(t.links.insert().values(**{**base, **values}))

    async def link_row(self, link: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = (await conn.execute(select(t.links).where(t.links.c.link == link))).first()
        if row is None:
            return {"link": link, "acked_pos": 0, "applied_pos": 0, "failures": 0}
        return dict(row._mapping)

    async def update_link(self, link: str, **values: Any) -> None:
        async with self.db.write() as conn:
            await self.touch_link(conn, link, **values)

    async def outbox(
        self, link: str, after: int, *, limit: int, max_bytes: int
    ) -> tuple[list[bytes], int, bool]:
        """Envelopes routed to ``link`` after ``after``: (raws, last pos, more waiting)."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(t.routes.c.pos, t.events.c.raw)
                    .join(t.events, t.events.c.pos == t.routes.c.pos)
                    .where(t.routes.c.link == link, t.routes.c.pos > after)
                    .order_by(t.routes.c.pos)
                    .limit(limit + 1)
                )
            ).all()
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
        async with self.db.read() as conn:
            value = await conn.scalar(
                select(func.count()).where(t.routes.c.link == link, t.routes.c.pos > after)
            )
        return int(value or 0)

    async def max_route_pos(self, link: str) -> int:
        async with self.db.read() as conn:
            value = await conn.scalar(
                select(func.max(t.routes.c.pos)).where(t.routes.c.link == link)
            )
        return int(value or 0)

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
                    )
                )
        return out

    async def events_of_subtree(
        self, top: str, after: int, limit: int
    ) -> tuple[list[bytes], int]:
        """Events authored in ``top``'s subtree and every trust record, in our order
        (to give a restored child back its own and its descendants' events, however
        they reached us, with the certificates that verify them)."""
        nodes = [n for n in self.trust.nodes() if self.view.in_subtree(n, top)]
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

    async def finish_recovery(self) -> None:
        """After a restore: continue our sequence after the recovered events, start a
        new stream epoch (children pull again) and push everything up again (the
        parent drops what it has)."""
        async with self.db.write() as conn:
            own = await conn.scalar(
                select(func.max(t.events.c.origin_seq)).where(t.events.c.origin == self.me)
            )
            lamport = await conn.scalar(select(func.max(t.events.c.lamport)))
            await self.set_meta(conn, "own_seq", _int_bytes(int(own or 0)))
            current = _bytes_int(await self.get_meta(conn, "lamport"))
            await self.set_meta(conn, "lamport", _int_bytes(max(current, int(lamport or 0))))
            await self.set_meta(conn, "epoch", random_epoch())
            await self.touch_link(conn, PARENT, acked_pos=0)
        await self._notify()

    async def counts(self) -> dict[str, int]:
        async with self.db.read() as conn:
            events = await conn.scalar(select(func.count()).select_from(t.events))
            items = await conn.scalar(select(func.count()).select_from(t.items))
            refused = await conn.scalar(select(func.count()).select_from(t.refused))
        return {"events": int(events or 0), "items": int(items or 0), "refused": int(refused or 0)}


def random_epoch() -> bytes:
    return os.urandom(16)


__all__ = ["PARENT", "SELF", "Accepted", "BatchResult", "Draft", "LinkStatus", "Store"]
