"""Items materialised from the fold, inside the transaction that stored their events.

An item's row is always the fold of every stored event of that item, so any
node holding the same events holds the same rows, whatever order they came in.
:class:`Projection` is how the event log (``node/storage/events.py``) writes them.

Beside the rows, ``item_files``: one row per file a report of the item names
(its signed name, size and type), written with the row and never removed — what a
file arriving from a child is checked against and who may open it
(docs/sync.md, "Attachments"). The files newly named are handed to the
projection's ``files_named`` (the upward file queue, ``node/sync/blobs.py``) in
the same transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from node.items import tallies
from node.storage import schema as t
from protocol import envelope, rules
from protocol.errors import ProtocolError
from protocol.events import Event, FileRef, Instructed, Urged, decode_event
from protocol.fold import ItemState, apply, fold

NOTICE_EVENTS: Final = frozenset({Urged, Instructed})
"""Events the handling unit is told of at once (Projection's ``noticed``)."""

logger = logging.getLogger(__name__)

_IN_CHUNK = 500


async def item_events(
    conn: AsyncConnection,
    item_ids: Iterable[str],
    known: Mapping[int, tuple[str, Event]] | None = None,
) -> dict[str, list[tuple[str, Event]]]:
    """Every stored event of each item, decoded (they were verified on receipt).

    ``known`` maps the ``pos`` of events the caller has just stored to their
    (event id, event): those are taken as given instead of being read back and
    decoded again. Positions come from the (item, pos) index alone; only the
    envelopes of the other events are read.
    """
    wanted = list(set(item_ids))
    known = known or {}
    out: dict[str, list[tuple[str, Event]]] = {i: [] for i in wanted}
    stored: list[int] = []
    for i in range(0, len(wanted), _IN_CHUNK):
        rows = await conn.execute(
            select(t.events.c.item_id, t.events.c.pos).where(
                t.events.c.item_id.in_(wanted[i : i + _IN_CHUNK])
            )
        )
        for item_id, pos in rows:
            pair = known.get(pos)
            if pair is None:
                stored.append(pos)
            else:
                out[item_id].append(pair)
    for i in range(0, len(stored), _IN_CHUNK):
        rows = await conn.execute(
            select(t.events.c.item_id, t.events.c.raw).where(
                t.events.c.pos.in_(stored[i : i + _IN_CHUNK])
            )
        )
        for item_id, raw in rows:
            env = envelope.parse(raw)
            out[item_id].append((env.event_id, decode_event(env.type, env.body)))
    return out


PathOf = Callable[[str], str]
"""Node id -> its path from the root, "14/1401/140101/" (a subtree is a prefix)."""

FilesNamed = Callable[[AsyncConnection, Sequence[tuple[bytes, str]]], Awaitable[None]]
"""Called in the writing transaction with the (digest, item) pairs that ``item_files``
did not hold before."""


def named_files(state: ItemState) -> list[FileRef]:
    """Every file the item's reports and resolution name (signed names only: a report
    written before files were named gives digests alone, and none here)."""
    out: list[FileRef] = []
    for report in state.feedback:
        out.extend(report.files)
    out.extend(state.resolution_files)
    return out


async def write_files(
    conn: AsyncConnection, states: Iterable[ItemState], files_named: FilesNamed | None = None
) -> list[tuple[bytes, str]]:
    """Add the ``item_files`` rows of ``states`` that are missing (insert, ignore what
    is there); returns the (digest, item) pairs added, after handing them to
    ``files_named``."""
    wanted: dict[tuple[bytes, str], FileRef] = {}
    for state in states:
        for ref in named_files(state):
            wanted.setdefault((ref.digest, state.item), ref)
    if not wanted:
        return []
    f = t.item_files.c
    items = list({item for _, item in wanted})
    have: set[tuple[bytes, str]] = set()
    for i in range(0, len(items), _IN_CHUNK):
        rows = await conn.execute(
            select(f.digest, f.item_id).where(f.item_id.in_(items[i : i + _IN_CHUNK]))
        )
        have.update((d, item) for d, item in rows)
    new = [key for key in wanted if key not in have]
    if not new:
        return []
    await conn.execute(
        t.item_files.insert(),
        [
            {
                "digest": digest,
                "item_id": item,
                "name": wanted[digest, item].name,
                "size": wanted[digest, item].size,
                "content_type": wanted[digest, item].type,
            }
            for digest, item in new
        ],
    )
    if files_named is not None:
        await files_named(conn, new)
    return new


def row_of(state: ItemState, path_of: PathOf) -> dict[str, Any]:
    yellow_from, red_from = rules.colour_thresholds(state)
    extension = state.extension_pending
    instructions = state.unanswered_instructions
    urges = state.unanswered_urges
    search = " ".join(
        part
        for part in (
            state.title,
            state.description,
            state.lead_unit or "",
            state.assignee_unit or "",
            *state.co_units,
        )
        if part
    )
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
        "assignee_path": path_of(state.assignee),
        "yellow_from": yellow_from,
        "red_from": red_from,
        "search_text": search.lower(),
        "cascade": state.cascade,
        "urges": len(state.urges),
        "last_urged_at": state.urges[-1].at if state.urges else None,
        "last_urged_by": state.urges[-1].by if state.urges else None,
        "extension_asked_at": extension.at if extension is not None else None,
        "instruction_open_at": instructions[0].at if instructions else None,
        "urge_open_at": urges[0].at if urges else None,
        "monthly_due": state.monthly_due,
        "grade": state.grade,
    }


async def materialise(
    conn: AsyncConnection,
    item_ids: Iterable[str],
    path_of: PathOf,
    known: Mapping[int, tuple[str, Event]] | None = None,
    files_named: FilesNamed | None = None,
) -> dict[str, ItemState]:
    """Refold the given items from their stored events and rewrite their rows (and
    their ``item_files``, see :func:`write_files`); returns their states (an item with
    no assignment stored has none, and no row).

    ``known``: events just stored, by ``pos``, already decoded (see :func:`item_events`).
    """
    grouped = await item_events(conn, item_ids, known)
    states: dict[str, ItemState] = {}
    for item_id, pairs in grouped.items():
        try:
            states[item_id] = fold(pairs)
        except ProtocolError:
            continue  # no assignment stored yet: nothing to show
    await write_rows(conn, [row_of(state, path_of) for state in states.values()])
    await write_files(conn, states.values(), files_named)
    return states


async def write_rows(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Replace the item rows with these (each a :func:`row_of`): the one place item rows
    are written, so anything kept alongside them (aggregates) is kept here.

    The page tallies (``node.items.tallies``) follow in the same transaction, as a
    delta from the old rows to the new ones; the items' cached points are dropped and
    the items listed to be scored again.
    """
    if not rows:
        return
    ids = [r["item_id"] for r in rows]
    old = await tallies.forget(conn, ids)
    for i in range(0, len(ids), _IN_CHUNK):
        await conn.execute(delete(t.items).where(t.items.c.item_id.in_(ids[i : i + _IN_CHUNK])))
    await conn.execute(t.items.insert(), rows)
    await tallies.record(conn, rows, old)


async def load_state(conn: AsyncConnection, item_id: str) -> ItemState | None:
    """The folded state of one item, or None when no assignment is stored."""
    pairs = (await item_events(conn, [item_id]))[item_id]
    if not pairs:
        return None
    try:
        return fold(pairs)
    except ProtocolError:
        return None


class Projection:
    """The node's item rows from its events, for the event log: received events are
    folded again from everything stored (:meth:`refold`); the node's own are applied
    to the states folded once before them (:meth:`states`, :meth:`advance`).

    ``path_of``: a node's path from the root (``node.sync.routing.KnownTree.path_of``),
    kept in each row for subtree queries; ``files_named``: told of files newly named by
    a report (:func:`write_files`), in the writing transaction."""

    def __init__(
        self,
        path_of: PathOf,
        files_named: FilesNamed | None = None,
        noticed: Callable[[], None] | None = None,
    ) -> None:
        self.path_of = path_of
        self.files_named = files_named
        self.noticed = noticed
        """Called when a received urge or instruction is folded (the reminder scheduler
        sends its notice at once: node/reminders/scheduler.py). Called inside the
        folding transaction: a reader waits for the rows (``EventLog.rows_current``)."""

    async def refold(
        self,
        conn: AsyncConnection,
        item_ids: Iterable[str],
        known: Mapping[int, tuple[str, Event]] | None = None,
    ) -> None:
        ids = item_ids if isinstance(item_ids, set | frozenset) else set(item_ids)
        await materialise(conn, ids, self.path_of, known, self.files_named)
        if self.noticed is not None and known and any(
            type(ev) in NOTICE_EVENTS and ev.item in ids for _, ev in known.values()
        ):
            self.noticed()

    async def states(
        self, conn: AsyncConnection, item_ids: Iterable[str]
    ) -> dict[str, ItemState | None]:
        """Each item's state folded from its stored events (one fold per item): None
        when events of it but no assignment are stored, absent when none are."""
        out: dict[str, ItemState | None] = {}
        for item_id, pairs in (await item_events(conn, item_ids)).items():
            if not pairs:
                continue
            try:
                out[item_id] = fold(pairs)
            except ProtocolError:
                out[item_id] = None
        return out

    async def advance(
        self,
        conn: AsyncConnection,
        before: Mapping[str, ItemState | None],
        written: Sequence[tuple[str, Event]],
    ) -> dict[str, ItemState]:
        """The node's own events just stored, as (event id, event), applied to their
        items' states ``before`` them (:meth:`states`) and the rows written: equal to
        folding everything again, as our own new events come last in fold order (our
        Lamport clock is above every stored event's). A new item (nothing stored
        before) is the fold of our events alone; one with events but no assignment
        stored before is folded from everything now stored. Returns the states after
        (none for an item still without an assignment)."""
        after: dict[str, ItemState] = {}
        new: dict[str, list[tuple[str, Event]]] = {}
        again: set[str] = set()
        for event_id, event in written:
            item = event.item
            if item not in before:
                new.setdefault(item, []).append((event_id, event))
            elif before[item] is None:
                again.add(item)
            else:
                after[item] = apply(after.get(item) or before[item], event_id, event)
        for item, pairs in new.items():
            try:
                after[item] = fold(pairs)
            except ProtocolError:
                continue  # no assignment among them: nothing to show
        await write_rows(conn, [row_of(s, self.path_of) for s in after.values()])
        await write_files(conn, after.values(), self.files_named)
        if again:
            after.update(await materialise(conn, again, self.path_of, None, self.files_named))
        return after
