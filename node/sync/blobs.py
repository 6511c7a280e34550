"""Attachments up the tree: the upward file queue of a link, and the parent's receiving.

Promises (docs/sync.md, "Attachments"):

- **behind the events that name them.** A node queues a file for its parent
  (``blob_queue``) when it holds the bytes and a report of one of its items names
  the file: its own upload named by its own event, or a file completed from a
  child. ``pos`` is the position of the (first) event naming it here; a file goes
  only once the parent has acknowledged that event (``links.acked_pos >= pos``),
  so the parent can check it against the signed name, and only while the event
  outbox to the parent is empty: events never wait behind files.
- **in chunks, resumable.** The parent keeps each chunk (``blob_parts``) as it
  arrives and says how many bytes it holds; a cut upload resumes from there and
  never sends again what arrived.
- **checked at every hop.** The parent takes a file only if an item of the
  sending child's subtree names it with that size (``item_files``), within the size
  cap per file and its node quota, each chunk at the offset it has data up to; on
  the last chunk it checks SHA-256 before keeping the file.
- **refused for good, or retried.** ``too_large``, ``node_quota_exceeded``,
  ``not_named`` and ``hash_mismatch`` are permanent (:data:`PERMANENT`): the child
  marks its queue row refused, shown on its links page, and sends it no more;
  anything else is retried with backoff.
- **a partial file does not stay for good.** Parts of a file whose upload has not
  advanced for ``sync.blob_partial_days`` are dropped (:class:`PartialExpiry`), which
  frees their room in the node's quota; a child that comes back later asks ``held``,
  gets 0 and starts that file over.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from node.background import Watch, run_forever, sleep_unless
from node.clock import Clock, iso
from node.errors import Conflict, Forbidden, Invalid, TooLarge, Unavailable
from node.storage import schema as t
from node.storage.db import Database
from node.storage.events import PARENT, EventLog
from protocol.envelope import parse
from protocol.events import Feedback, Resolved, decode_event

logger = logging.getLogger(__name__)

PERMANENT = frozenset({"too_large", "node_quota_exceeded", "not_named", "hash_mismatch"})
"""Refusals of a file that trying again cannot change: the child stops sending it."""

NAMING_TYPES = (Feedback.TYPE, Resolved.TYPE)
NAMED_WAIT_SECONDS = 5.0
"""How long the parent waits for received events to be folded (``item_files``
written) before it answers that a file is not named yet (503, retried)."""


class WrongOffset(Conflict):
    """A chunk that does not start where the parent's data ends: ``held`` says where."""

    def __init__(self, held: int, offset: int) -> None:
        super().__init__(
            "wrong_offset", f"this node holds {held} bytes of the file; a chunk at {offset}"
            f" must start at {held}",
        )
        self.held = held


# ------------------------------------------------------------------ storage


async def node_bytes(conn: AsyncConnection) -> int:
    """All the bytes of this node's files: those held and those still arriving."""
    held = await conn.scalar(select(func.coalesce(func.sum(t.attachments.c.size), 0)))
    arriving = await conn.scalar(
        select(func.coalesce(func.sum(func.length(t.blob_parts.c.data)), 0))
    )
    return int(held or 0) + int(arriving or 0)


async def parts_held(conn: AsyncConnection, digest: bytes) -> int:
    """Bytes of ``digest`` received so far (contiguous from 0: only a chunk at the end
    is ever kept)."""
    value = await conn.scalar(
        select(func.coalesce(func.sum(func.length(t.blob_parts.c.data)), 0)).where(
            t.blob_parts.c.digest == digest
        )
    )
    return int(value or 0)


async def held_size(conn: AsyncConnection, digest: bytes) -> int | None:
    """The size of ``digest`` when its bytes are here, else None."""
    value = await conn.scalar(
        select(t.attachments.c.size).where(t.attachments.c.digest == digest)
    )
    return None if value is None else int(value)


async def naming_pos(conn: AsyncConnection, digest: bytes, items: Sequence[str]) -> int | None:
    """The position here of the first event of ``items`` naming ``digest``."""
    e = t.events.c
    rows = await conn.execute(
        select(e.pos, e.raw)
        .where(e.item_id.in_(list(items)), e.type.in_(NAMING_TYPES))
        .order_by(e.pos)
    )
    for pos, raw in rows:
        env = parse(raw)
        event = decode_event(env.type, env.body)
        if isinstance(event, Feedback | Resolved) and digest in event.attachments:
            return int(pos)
    return None


# ------------------------------------------------------------- the queue


@dataclass(frozen=True, slots=True)
class Queued:
    """A file waiting to go up a link."""

    digest: bytes
    size: int
    pos: int


class BlobQueue:
    """The upward file queue of a node that has a parent: given to the projection as
    its ``files_named`` (node/items/projection.py), and used by the parent's side when
    a file from a child is complete."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def named(self, conn: AsyncConnection, pairs: Sequence[tuple[bytes, str]]) -> None:
        """Files newly named by reports here: those whose bytes are here go up."""
        items_of: dict[bytes, list[str]] = {}
        for digest, item in pairs:
            items_of.setdefault(digest, []).append(item)
        a = t.attachments.c
        rows = await conn.execute(
            select(a.digest, a.size).where(a.digest.in_(list(items_of)))
        )
        for digest, size in rows.all():
            await self.queue(conn, digest, int(size), items_of[digest])

    async def queue(
        self, conn: AsyncConnection, digest: bytes, size: int, items: Sequence[str]
    ) -> bool:
        """Queue ``digest`` for the parent behind the event of ``items`` naming it;
        False if it is queued already (or no event here names it)."""
        q = t.blob_queue.c
        if await conn.scalar(
            select(q.digest).where(q.link == PARENT, q.digest == digest)
        ) is not None:
            return False
        pos = await naming_pos(conn, digest, items)
        if pos is None:
            return False
        await conn.execute(
            t.blob_queue.insert().values(
                link=PARENT, digest=digest, size=size, pos=pos, queued_at=self.clock.now_ms()
            )
        )
        return True


async def next_ready(db: Database, link: str, acked: int) -> Queued | None:
    """The first file of ``link``'s queue whose naming event the other side holds
    (a short read on the loop's thread: the file loop asks after every push)."""
    row = await db.run_read(_first_ready, link, acked)
    return None if row is None else Queued(row.digest, int(row.size), int(row.pos))


_QUEUE = t.blob_queue.c
_NEXT_READY = (
    select(_QUEUE.digest, _QUEUE.size, _QUEUE.pos)
    .where(
        _QUEUE.link == bindparam("link"),
        _QUEUE.refused.is_(None),
        _QUEUE.pos <= bindparam("acked"),
    )
    .order_by(_QUEUE.pos, _QUEUE.digest)
    .limit(1)
)


def _first_ready(conn: Connection, link: str, acked: int) -> Any:
    return conn.execute(_NEXT_READY, {"link": link, "acked": acked}).first()


async def file_data(db: Database, digest: bytes) -> bytes | None:
    async with db.read() as conn:
        data = await conn.scalar(
            select(t.attachments.c.data).where(t.attachments.c.digest == digest)
        )
    return None if data is None else bytes(data)


async def sent(db: Database, link: str, digest: bytes) -> None:
    """The other side holds the file: off the queue. (Written with ``run_write``: the
    sync client's loops may be cancelled.)"""

    def body(conn: Connection) -> None:
        q = t.blob_queue.c
        conn.execute(delete(t.blob_queue).where(q.link == link, q.digest == digest))

    await db.run_write(body)


async def mark_refused(
    db: Database, link: str, digest: bytes, reason: str, detail: str, now: int
) -> None:
    """The other side refused the file for good: kept, marked, never sent again."""

    def body(conn: Connection) -> None:
        q = t.blob_queue.c
        conn.execute(
            update(t.blob_queue)
            .where(q.link == link, q.digest == digest)
            .values(refused=reason[:64], refused_detail=detail[:500], refused_at=now)
        )

    await db.run_write(body)


async def link_files(db: Database, link: str) -> dict[str, Any]:
    """What waits to go up ``link`` (files, bytes) and what was refused, for the
    links page and ``GET /api/v1/links``."""
    q = t.blob_queue.c
    async with db.read() as conn:
        waiting = (
            await conn.execute(
                select(func.count(), func.coalesce(func.sum(q.size), 0)).where(
                    q.link == link, q.refused.is_(None)
                )
            )
        ).one()
        refused = (
            await conn.execute(
                select(q.digest, q.size, q.refused, q.refused_detail, q.refused_at)
                .where(q.link == link, q.refused.is_not(None))
                .order_by(q.refused_at)
                .limit(100)
            )
        ).all()
    return {
        "files_waiting": int(waiting[0]),
        "bytes_waiting": int(waiting[1]),
        "files_refused": [
            {
                "digest": r.digest.hex(),
                "size": int(r.size),
                "reason": r.refused,
                "detail": r.refused_detail,
                "at": r.refused_at,
            }
            for r in refused
        ],
    }


# ------------------------------------------------------- the parent's side


@dataclass(frozen=True, slots=True)
class Limits:
    """``api.max_attachment_bytes`` and ``api.attachment_quota_node_bytes``."""

    max_file: int
    node_quota: int


class Receiver:
    """A parent receiving its children's files, chunk by chunk.

    ``path_of``: a node's path from the root (a subtree is a prefix); ``queue``: the
    node's own upward queue (None at the root)."""

    def __init__(
        self,
        db: Database,
        events: EventLog,
        path_of: Callable[[str], str],
        limits: Limits,
        clock: Clock,
        queue: BlobQueue | None,
    ) -> None:
        self.db = db
        self.events = events
        self.path_of = path_of
        self.limits = limits
        self.clock = clock
        self.queue = queue

    async def _named(
        self, conn: AsyncConnection, child: str, digest: bytes
    ) -> list[tuple[str, int, str, str]]:
        """(item, size, name, type) of each item of ``child``'s subtree naming ``digest``."""
        f, i = t.item_files.c, t.items.c
        prefix = self.path_of(child)
        rows = await conn.execute(
            select(f.item_id, f.size, f.name, f.content_type)
            .join(t.items, i.item_id == f.item_id)
            .where(f.digest == digest, i.assignee_path.startswith(prefix, autoescape=True))
        )
        return [(r[0], int(r[1]), r[2], r[3]) for r in rows]

    async def _check_named(self, child: str, digest: bytes) -> int:
        """The signed size of ``digest`` in ``child``'s subtree (waiting for received
        events to be folded first), or a refusal."""
        current = await self.events.rows_current(NAMED_WAIT_SECONDS)
        async with self.db.read() as conn:
            named = await self._named(conn, child, digest)
        if not named:
            if not current:
                raise Unavailable(
                    "not_named_yet", "the events naming the file are not folded here yet",
                    retry_after=1.0,
                )
            raise Forbidden(
                "not_named",
                f"no report of an item of {child}'s subtree held here names {digest.hex()}",
            )
        size = named[0][1]
        if size > self.limits.max_file:
            raise TooLarge(
                "too_large",
                f"the file is {size} bytes; this node keeps files of at most "
                f"{self.limits.max_file} bytes (api.max_attachment_bytes)",
            )
        return size

    async def status(self, child: str, digest: bytes) -> dict[str, Any]:
        """How much of ``digest`` is here for ``child`` to resume from."""
        size = await self._check_named(child, digest)
        async with self.db.read() as conn:
            whole = await held_size(conn, digest)
            held = whole if whole is not None else await parts_held(conn, digest)
        return {"held": held, "size": size, "complete": whole is not None}

    async def put(
        self, child: str, digest: bytes, offset: int, size: int, chunk: bytes
    ) -> dict[str, Any]:
        """Keep one chunk of ``digest`` (``size`` bytes in all) sent by ``child``; on the
        last, check the hash, keep the file and queue it for our parent."""
        signed = await self._check_named(child, digest)
        if size != signed:
            raise Forbidden(
                "not_named", f"the reports name {digest.hex()} with {signed} bytes, not {size}"
            )
        if not chunk or offset + len(chunk) > size:
            raise Invalid(
                "bad_chunk", f"a chunk at {offset} of {len(chunk)} bytes does not fit {size}"
            )
        now = self.clock.now_ms()
        async with self.db.write() as conn:
            if await held_size(conn, digest) is not None:
                return {"held": size, "complete": True}
            held = await parts_held(conn, digest)
            if offset != held:
                raise WrongOffset(held, offset)
            used = await node_bytes(conn)
            if used + (size - held) > self.limits.node_quota:
                raise TooLarge(
                    "node_quota_exceeded",
                    f"this node's files would take {used + size - held} bytes; its quota is "
                    f"{self.limits.node_quota} bytes (api.attachment_quota_node_bytes)",
                )
            if offset + len(chunk) < size:
                await conn.execute(
                    t.blob_parts.insert().values(
                        digest=digest, offset=offset, data=chunk, source=child, received_at=now
                    )
                )
                return {"held": offset + len(chunk), "complete": False}
            rows = await conn.execute(
                select(t.blob_parts.c.data)
                .where(t.blob_parts.c.digest == digest)
                .order_by(t.blob_parts.c.offset)
            )
            data = b"".join(bytes(r[0]) for r in rows) + chunk
            await conn.execute(delete(t.blob_parts).where(t.blob_parts.c.digest == digest))
            matches = len(data) == size and hashlib.sha256(data).digest() == digest
            if matches:
                named = await self._named(conn, child, digest)
                _, _, name, content_type = named[0]
                await conn.execute(
                    t.attachments.insert().values(
                        digest=digest, size=size, content_type=content_type, filename=name,
                        created_at=now, data=data, uploaded_by=None, source=child,
                    )
                )
                if self.queue is not None:
                    await self.queue.queue(conn, digest, size, [n[0] for n in named])
        if not matches:  # the parts are dropped: a new upload starts from 0
            raise Invalid(
                "hash_mismatch", f"the {len(data)} bytes received do not hash to {digest.hex()}"
            )
        logger.info("file %s (%d bytes) complete from %s", digest.hex()[:12], size, child)
        return {"held": size, "complete": True}


# ------------------------------------------------- partial files that stopped


EXPIRY_WATCH: Final = "file parts expiry"
"""The expiry's task, as the status pages name it."""
LOOK_SECONDS: Final = 3600.0
"""The longest the expiry sleeps between looks at the clock. A look that finds
nothing due reads nothing: the database is read only when a partial is due (and
once at start)."""


@dataclass(frozen=True, slots=True)
class Dropped:
    """The parts of one file dropped by the expiry."""

    digest: bytes
    size: int
    """Bytes of parts dropped."""
    source: str
    last_ms: int
    """When its last chunk arrived."""


class PartialExpiry:
    """Drops the parts of files (``blob_parts``) whose upload has not advanced for
    ``max_age_ms`` (``sync.blob_partial_days``): a child that never comes back must not
    hold its parent's quota for good.

    A file's age is that of its newest chunk, so an upload that advances is never
    touched. The expiry remembers when the next partial falls due (the oldest
    newest-chunk plus ``max_age_ms``; with none left, now plus ``max_age_ms``: a part
    that arrives later falls due later still) and reads the database only then; in
    between it wakes every ``look_seconds`` at most to compare the clock (an injected
    clock may jump). The drop runs in the single write transaction, so a chunk being
    stored at the same moment is either seen (the file is kept) or comes after (it
    starts the file over, as a ``wrong_offset`` tells its sender)."""

    def __init__(
        self, db: Database, clock: Clock, max_age_ms: int, *, look_seconds: float = LOOK_SECONDS
    ) -> None:
        if max_age_ms <= 0:
            raise ValueError("max_age_ms must be positive")
        self.db = db
        self.clock = clock
        self.max_age_ms = max_age_ms
        self.look_seconds = look_seconds
        self.next_due: int | None = None
        """When the next partial falls due (clock ms); None until the first look."""

    async def step(self) -> list[Dropped]:
        """Drop what is due now (nothing read when nothing can be due)."""
        now = self.clock.now_ms()
        if self.next_due is not None and now < self.next_due:
            return []
        cutoff = now - self.max_age_ms
        dropped, oldest = await self.db.run_write(lambda conn: self._drop(conn, cutoff))
        self.next_due = now + self.max_age_ms if oldest is None else oldest + self.max_age_ms
        days = self.max_age_ms / 86_400_000
        for d in dropped:
            logger.info(
                "dropped %d bytes of file %s from %s: no chunk since %s "
                "(sync.blob_partial_days = %g); a later upload starts it over",
                d.size, d.digest.hex()[:12], d.source, iso(d.last_ms), days,
            )
        return dropped

    @staticmethod
    def _drop(conn: Connection, cutoff: int) -> tuple[list[Dropped], int | None]:
        """Delete the parts of every file whose newest chunk is at or before ``cutoff``;
        returns them and the newest-chunk time of the oldest file kept."""
        p = t.blob_parts.c
        rows = conn.execute(
            select(
                p.digest, func.max(p.received_at), func.sum(func.length(p.data)),
                func.max(p.source),
            ).group_by(p.digest)
        ).all()
        dropped = [
            Dropped(bytes(r[0]), int(r[2] or 0), str(r[3]), int(r[1]))
            for r in rows
            if int(r[1]) <= cutoff
        ]
        kept = [int(r[1]) for r in rows if int(r[1]) > cutoff]
        if dropped:
            conn.execute(
                delete(t.blob_parts).where(p.digest.in_([d.digest for d in dropped]))
            )
        return dropped, min(kept, default=None)

    def wait_seconds(self) -> float:
        """How long to sleep before the next look."""
        if self.next_due is None:
            return 0.0
        due_in = (self.next_due - self.clock.now_ms()) / 1000
        return min(self.look_seconds, max(due_in, 0.0))

    async def run(self, watch: Watch, stopping: asyncio.Event) -> None:
        """Look until ``stopping`` is set, under ``watch`` (failures logged, backed off)."""

        async def step() -> None:
            await self.step()

        async def between() -> None:
            await sleep_unless(stopping, self.wait_seconds())

        await run_forever(watch, step, stopping, between=between)
