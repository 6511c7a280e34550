"""Counts kept beside the item rows, so the tree page and the command board read a few
thousand small rows instead of a province's million items.

Every item row is written through ``node.items.projection.write_rows``, which calls
:func:`forget` (before the old rows go) and :func:`record` (after the new ones
are in), inside the writer's transaction: each change is applied as a delta
from the old rows to the new ones, so the counts always equal a count over the
``items`` table in the same snapshot. What is kept (docs/pages.md, "Scale"):

- ``item_facts``: per item, the few columns the counts are made of, narrow
  (about 100 bytes against the row's 3.7 KB), including two read once from the
  folded state: ``resolve_met`` (the resolution met its deadline) and
  ``finished_at`` (accepted, or withdrawn). The old values come back from its
  ``DELETE … RETURNING``.
- ``tally_nodes`` per (node path, unit): open, done (accepted or closed), and
  open items red / yellow-or-red as of the watermark;
- ``tally_quarters`` per (quarter of the resolve deadline, node path, board):
  the board's rates (items, done, resolved, resolved on time, unresolved and
  due by the watermark);
- ``tally_weeks`` per (ISO week, node path): assigned, done, done late;
- ``tally_open`` / ``tally_finished``: who took part in a past quarter, for the
  ranking (:mod:`node.queries.standings`);
- ``tally_ranking`` per (node path, unit): the running quarter's standings whole
  (point lines, items taking part, unfinished as of the watermark), for the
  quarter ``tally_marks`` names; :func:`roll` turns it over when a quarter begins.

Colours move with time while rows stand still, so the time-dependent counts are
kept "as of the watermark" ``W`` (table ``tally_marks``): an item counts as red
when its ``red_from <= W``. A page at instant ``now`` adds the items whose
threshold lies in ``(W, now]`` (or takes away those in ``(now, W]``), read from
a partial index on ``item_facts`` (deadlines: the ledger's ``ix_items_due``);
the node's keeper moves ``W`` to the present every few minutes
(:func:`advance`), so that window stays small. The counts are right for any
``now``; the watermark only decides how much is read to get there.

Incentive points need the items' events, which the rows do not carry: the
cached point lines (``score_rows``, ``score_tallies``) are dropped for every
item written here and the item is listed in ``score_exceptions`` until the
keeper has scored it again (:mod:`node.queries.standings`).

On PostgreSQL, several processes may write: writers share the marks (``FOR
SHARE``) and the keeper holds them to move them, and deltas are applied table by
table in key order, so concurrent deltas add up and take row locks in one order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import Table, and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from node.storage import schema as t
from node.storage.db import placeholders
from protocol.rules import CHINA_TZ

logger = logging.getLogger(__name__)

DAY_MS: Final = 86_400_000
WEEK_MS: Final = 7 * DAY_MS
CHINA_OFFSET_MS: Final = 8 * 3_600_000
NEVER: Final = 2**62
"""The period key of "no such instant" (a threshold that is never reached)."""
WATERMARK: Final = "colours"
RANKING_MARK: Final = "ranking"
DONE: Final = frozenset({"accepted", "closed"})
RESOLVED: Final = frozenset({"resolved", "accepted", "closed"})
_CHUNK: Final = 500
_LAST_DATETIME_MS: Final = 221_845_392_000_000  # 9000-01-01 UTC: beyond, no calendar


# -- periods as integers --------------------------------------------------------------------


def week_key(ms: int) -> int:
    """The start (unix ms) of the ISO week, Monday 00:00 China time, holding ``ms``."""
    local_day = (ms + CHINA_OFFSET_MS) // DAY_MS
    monday = local_day - (local_day + 3) % 7  # 1970-01-01 was a Thursday
    return monday * DAY_MS - CHINA_OFFSET_MS


@lru_cache(maxsize=65_536)
def _quarter_of_day(local_day: int) -> int:
    moment = datetime.fromtimestamp(local_day * 86_400 - 8 * 3_600, CHINA_TZ)
    first = datetime(moment.year, 3 * ((moment.month - 1) // 3) + 1, 1, tzinfo=CHINA_TZ)
    return int(first.timestamp()) * 1000


def quarter_key(ms: int | None) -> int:
    """The start (unix ms) of the quarter, China time, holding ``ms``; :data:`NEVER`
    for None. Instants from year 9000 on are their own key (still in order)."""
    if ms is None:
        return NEVER
    if not 0 <= ms <= _LAST_DATETIME_MS:
        return ms
    return _quarter_of_day((ms + CHINA_OFFSET_MS) // DAY_MS)


def node_of(path: str) -> str:
    """The node a path ends with: "14/1401/" -> "1401"."""
    return path[:-1].rsplit("/", 1)[-1]


def path_range(path: str) -> tuple[str, str]:
    """[low, high) of the paths in ``path``'s subtree ("0" follows "/" in byte order)."""
    return path, path[:-1] + "0"


# -- one item's facts -----------------------------------------------------------------------

FACT_COLUMNS: Final = (
    "item_id", "path", "unit", "board", "status", "done", "assigned_at", "updated_at",
    "resolve_due", "resolve_met", "finished_at", "warn_from", "red_from",
)


def facts_of_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``item_facts`` row of an item row (as ``node.items.projection.row_of`` makes it)."""
    try:
        state = json.loads(row["state"])
    except ValueError:
        state = {}
    resolve = (state.get("deadlines") or {}).get("resolve") or {}
    met = resolve.get("met")
    status = row["status"]
    if status == "withdrawn":
        finished = state.get("withdrawn_at")
    elif status in DONE:
        finished = state.get("reviewed_at")
    else:
        finished = None
    yellow, red = row["yellow_from"], row["red_from"]
    warn = red if yellow is None else yellow if red is None else min(yellow, red)
    return {
        "item_id": row["item_id"],
        "path": row["assignee_path"],
        "unit": row["assignee_unit"] or row["lead_unit"] or "",
        "board": row["board"],
        "status": status,
        "done": bool(row["done"]),
        "assigned_at": row["assigned_at"],
        "updated_at": row["updated_at"],
        "resolve_due": row["resolve_due"],
        "resolve_met": met if isinstance(met, bool) else None,
        "finished_at": finished if isinstance(finished, int) else None,
        "warn_from": warn,
        "red_from": red,
    }


# -- the tallies ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tally:
    """A table of counters: its key columns and its counter columns."""

    table: Table
    keys: tuple[str, ...]
    counters: tuple[str, ...]

    def zero(self) -> list[int]:
        return [0] * len(self.counters)


NODES: Final = Tally(t.tally_nodes, ("path", "unit"), ("open", "done", "red", "warn"))
QUARTERS: Final = Tally(
    t.tally_quarters, ("quarter", "path", "board"), ("total", "done", "resolved", "met", "due")
)
WEEKS: Final = Tally(t.tally_weeks, ("week", "path"), ("assigned", "done", "late"))
OPEN: Final = Tally(t.tally_open, ("path", "unit", "quarter", "red_quarter"), ("n",))
FINISHED: Final = Tally(t.tally_finished, ("quarter", "path", "unit"), ("n",))
ROW_TALLIES: Final = (NODES, QUARTERS, WEEKS, OPEN, FINISHED)
SCORE_COUNTERS: Final = (
    "deploy_on_time", "late_deploy", "feedback_on_time", "late_feedback",
    "resolved_excellent", "resolved_qualified", "returned", "unfinished", "urged",
    "monthly_missed", "node_items", "unit_items",
)
SCORES: Final = Tally(t.score_tallies, ("quarter", "path", "unit"), SCORE_COUNTERS)
RANKING: Final = Tally(t.tally_ranking, ("path", "unit"), SCORE_COUNTERS)
NODE_ITEMS: Final = SCORE_COUNTERS.index("node_items")
UNIT_ITEMS: Final = SCORE_COUNTERS.index("unit_items")
UNFINISHED: Final = SCORE_COUNTERS.index("unfinished")

Deltas = dict[Tally, dict[tuple[Any, ...], list[int]]]


@dataclass(frozen=True, slots=True)
class Marks:
    """``watermark``: the instant the time-dependent counts are kept for; ``ranking``:
    the start of the quarter ``tally_ranking`` holds."""

    watermark: int
    ranking: int


def presence(
    f: Mapping[str, Any], quarter: int, instant: int | None
) -> tuple[int, int, int] | None:
    """(node items, unit items, unfinished) that an item's row adds to a quarter's
    standings when it has no event dated after the quarter's instant: open items take
    part (unfinished when red by ``instant``; None: by the quarter's end, past quarters),
    finished ones when they finished in it and nothing came after."""
    unit_n = int(f["unit"] != "")
    last = quarter_key(f["updated_at"])
    if not f["done"]:
        if instant is not None:
            red = f["red_from"] is not None and f["red_from"] <= instant
        elif last > quarter:
            return None
        else:
            red = quarter_key(f["red_from"]) <= quarter
        return 1, unit_n, int(red)
    if f["finished_at"] is not None and quarter_key(f["finished_at"]) == last == quarter:
        return 1, unit_n, 0
    return None


def contributions(f: Mapping[str, Any], marks: Marks) -> Iterator[tuple[Tally, tuple[Any, ...],
                                                                        tuple[int, ...]]]:
    """What one item (its facts) adds to each tally, with these marks."""
    watermark = marks.watermark
    path, unit, status = f["path"], f["unit"], f["status"]
    is_open = not f["done"]
    red, warn = f["red_from"], f["warn_from"]
    done = status in DONE
    yield NODES, (path, unit), (
        int(is_open),
        int(done),
        int(is_open and red is not None and red <= watermark),
        int(is_open and warn is not None and warn <= watermark),
    )
    due = f["resolve_due"]
    if due is not None and status != "withdrawn":
        resolved = status in RESOLVED
        yield QUARTERS, (quarter_key(due), path, f["board"]), (
            1,
            int(done),
            int(resolved),
            int(resolved and f["resolve_met"] is True),
            int(not resolved and due <= watermark),
        )
    yield WEEKS, (week_key(f["assigned_at"]), path), (1, 0, 0)
    if done:
        yield WEEKS, (week_key(f["updated_at"]), path), (0, 1, int(f["resolve_met"] is False))
    last = quarter_key(f["updated_at"])
    if is_open:
        yield OPEN, (path, unit, last, quarter_key(red)), (1,)
    elif f["finished_at"] is not None and quarter_key(f["finished_at"]) == last:
        yield FINISHED, (last, path, unit), (1,)
    part = presence(f, marks.ranking, watermark)
    if part is not None:
        values = [0] * len(SCORE_COUNTERS)
        values[NODE_ITEMS], values[UNIT_ITEMS], values[UNFINISHED] = part
        yield RANKING, (path, unit), tuple(values)


def add_to(deltas: Deltas, facts: Iterable[Mapping[str, Any]], marks: Marks, sign: int) -> None:
    """Add (``sign`` +1) or take away (-1) what these items contribute."""
    for f in facts:
        for tally, key, values in contributions(f, marks):
            slot = deltas.setdefault(tally, {}).setdefault(key, tally.zero())
            for i, v in enumerate(values):
                slot[i] += sign * v


async def executemany(conn: AsyncConnection, head: str, n: int, tail: str,
                      rows: Sequence[tuple[Any, ...]]) -> None:
    """``head VALUES (n markers) tail`` for every row, through the driver's executemany:
    SQLAlchemy's per-row parameter processing costs more than the statement here."""
    if not rows:
        return
    marks = placeholders(conn.dialect.paramstyle, n)
    if marks is None:
        raise NotImplementedError(f"paramstyle {conn.dialect.paramstyle}")
    sql = f"{head} VALUES ({marks}) {tail}"
    for i in range(0, len(rows), _CHUNK):
        await conn.exec_driver_sql(sql, list(rows[i : i + _CHUNK]))


def _delta_rows(tally: Tally, changes: Mapping[tuple[Any, ...], list[int]]
                ) -> list[tuple[Any, ...]]:
    # One order everywhere: concurrent writers on PostgreSQL take row locks alike.
    return [(*key, *changes[key]) for key in sorted(changes) if any(changes[key])]


async def apply(conn: AsyncConnection, deltas: Deltas) -> None:
    """Add ``deltas`` to their tallies (rows created at zero when missing), tables and
    keys in one order for every writer."""
    for tally in sorted(deltas, key=lambda tally: tally.table.name):
        changes = deltas[tally]
        name = tally.table.name
        columns = (*tally.keys, *tally.counters)
        sets = ", ".join(f"{c} = {name}.{c} + excluded.{c}" for c in tally.counters)
        await executemany(
            conn, f"INSERT INTO {name} ({', '.join(columns)})", len(columns),
            f"ON CONFLICT ({', '.join(tally.keys)}) DO UPDATE SET {sets}",
            _delta_rows(tally, changes),
        )


# -- the watermark --------------------------------------------------------------------------


async def marks(conn: AsyncConnection, lock: str | None = None) -> Marks:
    """The marks. In a write transaction on PostgreSQL, ``lock`` "share" keeps them from
    moving until commit (writers of tallies), "update" holds them to move them."""
    c = t.tally_marks.c
    stmt = select(c.name, c.at)
    if lock is not None and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(read=lock == "share")
    return _marks_of(await conn.execute(stmt))


def marks_now(conn: Connection) -> Marks:
    """The marks, on a synchronous connection (a short read: ``Database.run_read``)."""
    return _marks_of(conn.execute(select(t.tally_marks.c.name, t.tally_marks.c.at)))


def _marks_of(rows: Iterable[Any]) -> Marks:
    values = {name: int(at) for name, at in rows}
    if WATERMARK not in values or RANKING_MARK not in values:
        raise RuntimeError("tally_marks is incomplete: the page tallies were never built")
    return Marks(values[WATERMARK], values[RANKING_MARK])


async def watermark(conn: AsyncConnection) -> int:
    return (await marks(conn)).watermark



def window(facts_c: Any, column: str, since: int, until: int) -> tuple[Any, int]:
    """(where clause, sign): the open items whose ``column`` crossed between two instants
    (the range implies ``column IS NOT NULL``: the partial index applies)."""
    lo, hi, sign = (since, until, 1) if until >= since else (until, since, -1)
    col = facts_c[column]
    return and_(col > lo, col <= hi, facts_c["done"].is_(False)), sign


async def crossed(
    conn: AsyncConnection, column: str, since: int, until: int
) -> list[tuple[str, str, int]]:
    """(path, unit, signed count) of open items whose ``column`` (red_from or warn_from)
    lies between ``since`` and ``until``: what moving the instant from one to the other
    adds (or, going back, takes away)."""
    if since == until:
        return []
    c = t.item_facts.c
    where, sign = window(c, column, since, until)
    rows = await conn.execute(
        select(c.path, c.unit, func.count()).where(where).group_by(c.path, c.unit)
    )
    return [(p, u, sign * int(n)) for p, u, n in rows]


async def due_crossed(
    conn: AsyncConnection, since: int, until: int, start: int | None = None,
    end: int | None = None,
) -> list[tuple[int, str, str, int]]:
    """(quarter, path, board, signed count) of unresolved, not withdrawn items whose
    resolve deadline lies between ``since`` and ``until`` (within [start, end) if given).

    Read from the ledger's deadline index on ``items`` (``ix_items_due`` carries path,
    status and board): no scope term, so no other index is a candidate.
    """
    if since == until:
        return []
    c = t.items.c
    lo, hi, sign = (since, until, 1) if until >= since else (until, since, -1)
    where = [c.resolve_due > lo, c.resolve_due <= hi,
             c.status.not_in(("withdrawn", *sorted(RESOLVED)))]
    if start is not None:
        where.append(c.resolve_due >= start)
    if end is not None:
        where.append(c.resolve_due < end)
    rows = await conn.execute(select(c.resolve_due, c.assignee_path, c.board).where(*where))
    out: dict[tuple[int, str, str], int] = {}
    for due, path, board in rows:
        key = (quarter_key(due), path, board)
        out[key] = out.get(key, 0) + sign
    return [(*k, v) for k, v in out.items()]


async def advance(conn: AsyncConnection, now: int) -> int:
    """Move the watermark to ``now`` (in the caller's write transaction); returns the
    number of tally rows changed."""
    old = (await marks(conn, "update")).watermark
    if old == now:
        return 0
    deltas: Deltas = {NODES: {}, QUARTERS: {}, RANKING: {}}
    for column, index in (("red_from", 2), ("warn_from", 3)):
        for path, unit, n in await crossed(conn, column, old, now):
            deltas[NODES].setdefault((path, unit), NODES.zero())[index] += n
            if column == "red_from":
                deltas[RANKING].setdefault((path, unit), RANKING.zero())[UNFINISHED] += n
    for quarter, path, board, n in await due_crossed(conn, old, now):
        deltas[QUARTERS].setdefault((quarter, path, board), QUARTERS.zero())[4] += n
    await apply(conn, deltas)
    await conn.execute(
        update(t.tally_marks).where(t.tally_marks.c.name == WATERMARK).values(at=now)
    )
    return sum(len(v) for v in deltas.values())


async def roll(conn: AsyncConnection, quarter: int) -> None:
    """Make ``tally_ranking`` hold ``quarter`` (its start), built from the other tallies
    (in the caller's write transaction): the keeper's step when a quarter begins."""
    m = await marks(conn, "update")
    if m.ranking == quarter:
        return
    deltas: Deltas = {RANKING: {}}
    changes = deltas[RANKING]
    s = t.score_tallies.c
    for path, unit, *values in await conn.execute(
        select(s.path, s.unit, *(s[n] for n in SCORE_COUNTERS)).where(s.quarter == quarter)
    ):
        slot = changes.setdefault((path, unit), RANKING.zero())
        for k, v in enumerate(values):
            slot[k] += int(v)
    n = t.tally_nodes.c
    for path, unit, open_, red in await conn.execute(select(n.path, n.unit, n.open, n.red)):
        slot = changes.setdefault((path, unit), RANKING.zero())
        slot[NODE_ITEMS] += int(open_)
        slot[UNIT_ITEMS] += int(open_) if unit else 0
        slot[UNFINISHED] += int(red)
    f = t.tally_finished.c
    for path, unit, count in await conn.execute(
        select(f.path, f.unit, f.n).where(f.quarter == quarter)
    ):
        slot = changes.setdefault((path, unit), RANKING.zero())
        slot[NODE_ITEMS] += int(count)
        slot[UNIT_ITEMS] += int(count) if unit else 0
    await conn.execute(delete(t.tally_ranking))
    await apply(conn, deltas)
    await conn.execute(
        update(t.tally_marks).where(t.tally_marks.c.name == RANKING_MARK).values(at=quarter)
    )


async def prune(conn: AsyncConnection) -> None:
    """Drop tally rows whose counters are all zero (left behind by deltas)."""
    for tally in (*ROW_TALLIES, SCORES, RANKING):
        c = tally.table.c
        await conn.execute(delete(tally.table).where(*(c[n] == 0 for n in tally.counters)))


# -- kept by write_rows ---------------------------------------------------------------------


async def forget(conn: AsyncConnection, item_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Take the facts of items about to be rewritten out of ``item_facts``; returns them.

    Also lists the items for scoring again (``score_exceptions``, first, so a keeper
    scoring them in another process finishes before we go on) and takes their cached
    point lines out of ``score_tallies``.
    """
    old: list[dict[str, Any]] = []
    c = t.item_facts.c
    for i in range(0, len(item_ids), _CHUNK):
        chunk = item_ids[i : i + _CHUNK]
        rows = await conn.execute(
            delete(t.item_facts).where(c.item_id.in_(chunk)).returning(
                *(c[n] for n in FACT_COLUMNS)
            )
        )
        old.extend(dict(r._mapping) for r in rows)
    return old


async def record(
    conn: AsyncConnection, rows: Sequence[Mapping[str, Any]], old: Sequence[Mapping[str, Any]]
) -> None:
    """Store the new rows' facts and apply the change from ``old`` to them everywhere."""
    new = [facts_of_row(r) for r in rows]
    m = await marks(conn, "share")
    await mark_unscored(conn, [(f["item_id"], f["path"]) for f in new])
    deltas: Deltas = {}
    add_to(deltas, old, m, -1)
    add_to(deltas, new, m, +1)
    await drop_scores(conn, [f["item_id"] for f in new], deltas, m.ranking)
    await executemany(
        conn, f"INSERT INTO item_facts ({', '.join(FACT_COLUMNS)})", len(FACT_COLUMNS), "",
        [tuple(f[c] for c in FACT_COLUMNS) for f in new],
    )
    await apply(conn, deltas)


async def mark_unscored(conn: AsyncConnection, items: Sequence[tuple[str, str]]) -> None:
    """List items as waiting to be scored (``reason`` "dirty")."""
    await executemany(
        conn, "INSERT INTO score_exceptions (item_id, path, reason)", 3,
        "ON CONFLICT (item_id) DO UPDATE SET path = excluded.path, reason = excluded.reason",
        [(i, p, "dirty") for i, p in sorted(set(items))],
    )


def add_scores(deltas: Deltas, rows: Iterable[Sequence[Any]], ranking: int, sign: int) -> None:
    """Score rows (quarter, path, unit, counters...) into ``score_tallies``, and into
    ``tally_ranking`` for the quarter it holds."""
    changes = deltas.setdefault(SCORES, {})
    current = deltas.setdefault(RANKING, {})
    for r in rows:
        slots = [changes.setdefault((r[0], r[1], r[2]), SCORES.zero())]
        if r[0] == ranking:
            slots.append(current.setdefault((r[1], r[2]), RANKING.zero()))
        for slot in slots:
            for k, v in enumerate(r[3:]):
                slot[k] += sign * v


async def drop_scores(
    conn: AsyncConnection, item_ids: Sequence[str], deltas: Deltas, ranking: int
) -> None:
    """Delete the items' cached point lines, taking them out of the score tallies."""
    c = t.score_rows.c
    for i in range(0, len(item_ids), _CHUNK):
        rows = await conn.execute(
            delete(t.score_rows).where(c.item_id.in_(item_ids[i : i + _CHUNK])).returning(
                c.quarter, c.path, c.unit, *(c[n] for n in SCORE_COUNTERS)
            )
        )
        add_scores(deltas, rows, ranking, -1)


# -- building everything from the items table -----------------------------------------------


def build_if_missing(conn: Connection, now: int) -> bool:
    """Build every tally (:func:`rebuild`) if the watermark was never set: a database
    created or upgraded by the migrations, which hold no live code. Returns whether
    it built them."""
    names = set(conn.execute(select(t.tally_marks.c.name)).scalars())
    if WATERMARK in names and RANKING_MARK in names:
        return False
    rebuild(conn, now)
    return True


def rebuild(conn: Connection, watermark_at: int, *, chunk: int = 5_000) -> int:
    """Build ``item_facts`` and every tally from the ``items`` table, on a sync
    connection (the schema migration, ``bench/pages.py``), with the watermark at
    ``watermark_at`` and the ranking for its quarter; every item is listed to be scored.
    Returns the number of items."""
    for table in (t.item_facts, t.score_rows, t.score_exceptions, t.tally_marks,
                  *(tally.table for tally in (*ROW_TALLIES, SCORES, RANKING))):
        conn.execute(delete(table))
    m = Marks(watermark_at, quarter_key(watermark_at))
    conn.execute(insert(t.tally_marks), [{"name": WATERMARK, "at": m.watermark},
                                         {"name": RANKING_MARK, "at": m.ranking}])
    c = t.items.c
    columns = (c.item_id, c.assignee_path, c.assignee_unit, c.lead_unit, c.board, c.status,
               c.done, c.assigned_at, c.updated_at, c.resolve_due, c.yellow_from, c.red_from,
               c.state)
    deltas: Deltas = {}
    after: str | None = None
    count = 0
    while True:
        stmt = select(*columns).order_by(c.item_id).limit(chunk)
        if after is not None:
            stmt = stmt.where(c.item_id > after)
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
        if not rows:
            break
        after = rows[-1]["item_id"]
        facts = [facts_of_row(r) for r in rows]
        conn.execute(insert(t.item_facts), facts)
        conn.execute(insert(t.score_exceptions),
                     [{"item_id": f["item_id"], "path": f["path"], "reason": "dirty"}
                      for f in facts])
        add_to(deltas, facts, m, +1)
        count += len(rows)
    for tally, changes in deltas.items():
        names = (*tally.keys, *tally.counters)
        values = [dict(zip(names, r, strict=True)) for r in _delta_rows(tally, changes)]
        for i in range(0, len(values), chunk):
            conn.execute(insert(tally.table), values[i : i + chunk])
    logger.info("page tallies built from %d items", count)
    return count


# -- reading --------------------------------------------------------------------------------


async def node_counts(conn: AsyncConnection, path: str, now: int) -> dict[str, list[int]]:
    """Per node path in ``path``'s subtree at ``now``: [open, done, red, warn]."""
    c = t.tally_nodes.c
    lo, hi = path_range(path)
    w = await watermark(conn)
    rows = await conn.execute(
        select(c.path, func.sum(c.open), func.sum(c.done), func.sum(c.red), func.sum(c.warn))
        .where(c.path >= lo, c.path < hi)
        .group_by(c.path)
    )
    out = {p: [int(v) for v in values] for p, *values in rows}
    for column, index in (("red_from", 2), ("warn_from", 3)):
        for p, _, n in await crossed(conn, column, w, now):
            if lo <= p < hi:
                out.setdefault(p, [0, 0, 0, 0])[index] += n
    return out


async def unit_counts(
    conn: AsyncConnection, path: str, now: int, *, red_only: bool = False,
    known: Marks | None = None,
) -> dict[tuple[str, str], list[int]]:
    """Per (node path, unit) in ``path``'s subtree at ``now``: [open, red]; ``red_only``:
    only the pairs with red items. ``known``: the marks, when already read."""
    c = t.tally_nodes.c
    lo, hi = path_range(path)
    w = (known or await marks(conn)).watermark
    stmt = select(c.path, c.unit, c.open, c.red).where(c.path >= lo, c.path < hi)
    if red_only:
        stmt = stmt.where(c.red != 0)
    out = {(p, u): [int(o), int(r)] for p, u, o, r in await conn.execute(stmt)}
    for p, u, n in await crossed(conn, "red_from", w, now):
        if lo <= p < hi:
            out.setdefault((p, u), [0, 0])[1] += n
    return out
