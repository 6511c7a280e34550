"""The message centre (消息中心): what reached a person, read and unread; and, for an
item's page, every reminder sent about it.

A reminder goes to a person once per channel (an SMS and a mail of the same text,
``node/reminders/scheduler.py``): the centre shows it once, as one *message* — the
rows of ``reminder_messages`` of that person with the same reminder and text —
with the state of each channel. A message's id is its newest row's id; marking it
read sets ``read_at`` on all its rows. Cancelled deliveries (the step was done
before they went) are not shown: they never reached anyone. Read from the index
``(person, id)``; a person's rows are a few per reminder, so grouping them is cheap.

Urges and instructions (issue 18) join here when they are queued as
``reminder_messages`` for a person; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from node.clock import Clock, iso
from node.errors import bad
from node.storage import schema as t
from node.storage.db import Database

MAX_LIMIT: Final = 100
NO_MILESTONE: Final = -1
"""``reminders.milestone`` of a deadline that is no plan milestone (the schema's rule)."""
MAX_IDS: Final = 500
"""As ``node.http.api.bodies.MAX_MESSAGE_IDS`` (the API's bound; this one guards callers)."""
_m = t.reminder_messages
_SHOWN = _m.c.status != "cancelled"


def _mine(person: str) -> list[ColumnElement[bool]]:
    return [_m.c.person == person, _SHOWN]


def unread_statement(person: str) -> ColumnElement[int]:
    """How many messages ``person`` has not read, as one scalar (the navigation's)."""
    inner = (
        select(_m.c.reminder_id, _m.c.text)
        .where(*_mine(person), _m.c.read_at.is_(None))
        .group_by(_m.c.reminder_id, _m.c.text)
        .subquery()
    )
    return select(func.count()).select_from(inner).scalar_subquery()


def _groups(person: str, unread_only: bool) -> Select[Any]:
    where = _mine(person)
    if unread_only:
        where.append(_m.c.read_at.is_(None))
    return (
        select(
            func.max(_m.c.id).label("id"),
            _m.c.reminder_id,
            _m.c.text,
            func.min(_m.c.created_at).label("created_at"),
            # Read when every row is: a message read on one channel's row only is unread.
            func.min(func.coalesce(_m.c.read_at, 0)).label("read_at"),
        )
        .where(*where)
        .group_by(_m.c.reminder_id, _m.c.text)
    )


class Messages:
    """The message centre of one node's people."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def unread(self, person: str) -> int:
        async with self.db.read() as conn:
            return int(await conn.scalar(select(unread_statement(person))) or 0)

    async def page(
        self, person: str, *, limit: int = 20, offset: int = 0, unread_only: bool = False
    ) -> dict[str, Any]:
        """The messages of ``person``, newest first: ``{"messages", "total", "unread"}``."""
        if not 1 <= limit <= MAX_LIMIT:
            raise bad("limit", f"must be between 1 and {MAX_LIMIT}")
        if offset < 0:
            raise bad("offset", "must be 0 or more")
        groups = _groups(person, unread_only).subquery()
        async with self.db.read() as conn:
            total = int(await conn.scalar(select(func.count()).select_from(groups)) or 0)
            unread = int(await conn.scalar(select(unread_statement(person))) or 0)
            heads = (
                await conn.execute(
                    select(groups).order_by(groups.c.id.desc()).limit(limit).offset(offset)
                )
            ).all()
            messages = await self._details(conn, person, heads)
        return {
            "messages": messages,
            "total": total,
            "unread": unread,
            "limit": limit,
            "offset": offset,
        }

    async def _details(
        self, conn: AsyncConnection, person: str, heads: Sequence[Any]
    ) -> list[dict[str, Any]]:
        if not heads:
            return []
        keys = [(h.reminder_id, h.text) for h in heads]
        rows = (
            await conn.execute(
                select(_m)
                .where(*_mine(person))
                .where(tuple_(_m.c.reminder_id, _m.c.text).in_(keys))
                .order_by(_m.c.id)
            )
        ).all()
        r = t.reminders
        reminder_rows = {
            row.id: row
            for row in await conn.execute(
                select(r).where(r.c.id.in_({h.reminder_id for h in heads}))
            )
        }
        titles = {
            row.item_id: row.title
            for row in await conn.execute(
                select(t.items.c.item_id, t.items.c.title).where(
                    t.items.c.item_id.in_({row.item_id for row in rows})
                )
            )
        }
        by_key: dict[tuple[int, str], list[Any]] = {}
        for row in rows:
            by_key.setdefault((row.reminder_id, row.text), []).append(row)
        out = []
        for head in heads:
            parts = by_key.get((head.reminder_id, head.text), [])
            if not parts:
                continue
            first = parts[0]
            reminder = reminder_rows.get(head.reminder_id)
            read_at = head.read_at or None
            out.append({
                "id": int(head.id),
                "item": first.item_id,
                "title": titles.get(first.item_id),
                "subject": first.subject,
                "text": first.text,
                "kind": reminder.kind if reminder is not None else None,
                "deadline": reminder.deadline if reminder is not None else None,
                "milestone": None if reminder is None or reminder.milestone == NO_MILESTONE
                else reminder.milestone,
                "due": iso(reminder.due) if reminder is not None else None,
                "late": any(bool(p.late) for p in parts),
                "created_at": iso(min(p.created_at for p in parts)),
                "read": read_at is not None,
                "read_at": iso(read_at),
                "channels": [
                    {
                        "channel": p.channel,
                        "recipient": p.recipient,
                        "status": p.status,
                        "sent_at": iso(p.sent_at),
                    }
                    for p in parts
                ],
            })
        return out

    async def mark_read(self, person: str, ids: Sequence[int] | None) -> int:
        """Mark the messages ``ids`` of ``person`` read (all of them when None); returns
        how many rows changed. Ids of other people's messages change nothing."""
        if ids is not None and len(ids) > MAX_IDS:
            raise bad("ids", f"at most {MAX_IDS} at once")
        now = self.clock.now_ms()
        async with self.db.write() as conn:
            where = [*_mine(person), _m.c.read_at.is_(None)]
            if ids is not None:
                if not ids:
                    return 0
                keys = (
                    select(_m.c.reminder_id, _m.c.text)
                    .where(_m.c.person == person, _m.c.id.in_(list(ids)))
                )
                where.append(tuple_(_m.c.reminder_id, _m.c.text).in_(keys))
            result = await conn.execute(update(_m).where(and_(*where)).values(read_at=now))
            return int(result.rowcount or 0)


async def sent_for_item(conn: AsyncConnection, item: str) -> list[dict[str, Any]]:
    """Every reminder recorded for ``item`` here, newest first, with each delivery: when,
    to whom, by which channel, and whether it was delivered (``sent``), is still being
    tried (``pending``), failed for good or was cancelled; a reminder that reached
    nobody says why (``outcome`` ``no_recipient``, ``detail``)."""
    r, m = t.reminders, t.reminder_messages
    reminders = (
        await conn.execute(select(r).where(r.c.item_id == item).order_by(r.c.id.desc()))
    ).all()
    if not reminders:
        return []
    deliveries: dict[int, list[dict[str, Any]]] = {}
    for row in await conn.execute(select(m).where(m.c.item_id == item).order_by(m.c.id)):
        deliveries.setdefault(row.reminder_id, []).append({
            "channel": row.channel,
            "person": row.person,
            "recipient": row.recipient,
            "status": row.status,
            "attempts": row.attempts,
            "created_at": row.created_at,
            "sent_at": row.sent_at,
            "last_error": row.last_error,
        })
    return [
        {
            "deadline": row.deadline,
            "milestone": None if row.milestone == NO_MILESTONE else row.milestone,
            "kind": row.kind,
            "due": row.due,
            "at": row.seen_at,
            "late": bool(row.late),
            "outcome": row.outcome,
            "detail": row.detail,
            "deliveries": deliveries.get(row.id, []),
        }
        for row in reminders
    ]


async def sent_reminders(db: Database, item: str) -> list[dict[str, Any]]:
    """:func:`sent_for_item` in a read transaction of its own (the item page's)."""
    async with db.read() as conn:
        return await sent_for_item(conn, item)
