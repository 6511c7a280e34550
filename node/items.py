"""Items materialised from the fold, inside the transaction that stored their events.

An item's row is always the fold of every stored event of that item, so any
node holding the same events holds the same rows, whatever order they came in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from node.storage import schema as t
from protocol import envelope
from protocol.errors import ProtocolError
from protocol.events import Event, decode_event
from protocol.fold import ItemState, fold

logger = logging.getLogger(__name__)

_IN_CHUNK = 500


async def item_events(
    conn: AsyncConnection, item_ids: Iterable[str]
) -> dict[str, list[tuple[str, Event]]]:
    """Every stored event of each item, decoded (they were verified on receipt)."""
    wanted = list(set(item_ids))
    out: dict[str, list[tuple[str, Event]]] = {i: [] for i in wanted}
    for i in range(0, len(wanted), _IN_CHUNK):
        rows = await conn.execute(
            select(t.events.c.item_id, t.events.c.raw).where(
                t.events.c.item_id.in_(wanted[i : i + _IN_CHUNK])
            )
        )
        for item_id, raw in rows:
            env = envelope.parse(raw)
            out[item_id].append((env.event_id, decode_event(env.type, env.body)))
    return out


def row_of(state: ItemState, now: int) -> dict[str, Any]:
    return {
        "item_id": state.item,
        "assigner": state.assigner,
        "assignee": state.assignee,
        "assignee_unit": state.assignee_unit,
        "lead_unit": state.lead_unit,
        "parent_item": state.parent_item,
        "board": state.board,
        "class": state.item_class,
        "status": str(state.status),
        "title": state.title,
        "deploy_due": state.deploy.due,
        "feedback_due": state.first_feedback.due,
        "resolve_due": state.resolve.due,
        "progress": state.progress,
        "assigned_at": state.assigned_at,
        "updated_at": max(state.last_event_at, state.assigned_at),
        "done": state.done,
        "state": json.dumps(state.to_dict(), ensure_ascii=False, sort_keys=True).encode(),
    }


async def materialise(conn: AsyncConnection, item_ids: Iterable[str], now: int) -> None:
    """Refold the given items from their stored events and rewrite their rows."""
    grouped = await item_events(conn, item_ids)
    rows = []
    for pairs in grouped.values():
        try:
            state = fold(pairs)
        except ProtocolError:
            continue  # no assignment stored yet: nothing to show
        rows.append(row_of(state, now))
    if not rows:
        return
    ids = [r["item_id"] for r in rows]
    for i in range(0, len(ids), _IN_CHUNK):
        await conn.execute(delete(t.items).where(t.items.c.item_id.in_(ids[i : i + _IN_CHUNK])))
    await conn.execute(t.items.insert(), rows)


async def load_state(conn: AsyncConnection, item_id: str) -> ItemState | None:
    """The folded state of one item, or None when no assignment is stored."""
    pairs = (await item_events(conn, [item_id]))[item_id]
    if not pairs:
        return None
    try:
        return fold(pairs)
    except ProtocolError:
        return None
