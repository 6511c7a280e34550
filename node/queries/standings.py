"""The quarter's ranking (督查激励积分) for the command board, from tallies.

``node.queries.assemble.quarter_scores`` replays the events of every item
active in the quarter (seconds per ten thousand items). The board needs only
the standings — points gained and deducted, items, rank — so it reads them
from counts kept per (quarter, node path, unit), and replays only the few items
those counts cannot stand for. The result is equal to ``quarter_scores``'s
standings (``tests/test_page_tallies.py`` checks it against it).

How an item counts in a quarter Q, judged at ``instant`` = min(Q's last
millisecond, now) (docs/reports.md has the rules):

- Point lines from its events (deploy, feedback, review) are cached per item:
  the keeper (:func:`score_some`) folds the item's events once after each
  change and stores, per quarter and unit, how many lines of each rule fall in
  it (``score_rows``, summed in ``score_tallies``).
- Taking part (an item open at some moment of Q) and the ``unfinished``
  deduction depend on the item's state at ``instant``. When no event of the
  item is dated after ``instant`` that state is the item's row, so it comes
  from row tallies kept by ``node.items.projection.write_rows``: open items (and, for the
  quarter running now, whether they are red now), and items finished in Q.
- For a quarter Q that ended before the item's last event, the keeper stores
  the whole of the item's part in Q, judged at Q's end from its events.
- Everything else is replayed from events at every read (:func:`standings`):
  items written since they were scored ("dirty"), items whose rows lag their
  events ("stale"), histories the counts cannot stand for ("irregular": an
  event dated earlier than one before it, a line after the item finished) and,
  for the running quarter, items with an event dated after now (a clock ahead).
  Their tallied part is taken away first.

The running quarter is read from ``tally_ranking``, which holds it whole per
(node path, unit): nodes are summed and the best units chosen in SQL, so tens
of thousands of units cost one pass. Other quarters are assembled here from
``score_tallies`` and the row tallies.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import Any, Final

from sqlalchemy import delete, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from node.items import tallies
from node.items.projection import item_events
from node.queries.periods import PeriodError, Quarter
from node.queries.scores import (
    DEDUCTIONS,
    RULES,
    ItemScore,
    QuarterScores,
    ScoreRules,
    Standing,
    event_lines,
    finished_at,
    handler,
    score_item,
    walk,
)
from node.storage import schema as t
from node.storage.db import Database
from protocol import rules as deadlines
from protocol.fold import ItemState

logger = logging.getLogger(__name__)

Pair = tuple[str, Any]
COUNTERS: Final = tallies.SCORE_COUNTERS
RULE_INDEX: Final = {rule: i for i, rule in enumerate(RULES)}
NODE_ITEMS: Final = COUNTERS.index("node_items")
UNIT_ITEMS: Final = COUNTERS.index("unit_items")
UNFINISHED: Final = COUNTERS.index("unfinished")
REPLAY_CAP: Final = 20_000
"""More items than this to replay in a scope: the board says the ranking is being
worked out instead of keeping the page waiting (after an upgrade, a large catch-up)."""
_RULES = ScoreRules()  # the lines' rules; amounts are applied when reading
_CHUNK: Final = 500


def _next_quarter(q: int) -> int:
    return tallies.quarter_key(q + 100 * tallies.DAY_MS)


# -- one item, from its events --------------------------------------------------------------


@dataclass(slots=True)
class Summary:
    """What the keeper keeps of one item: ``reason`` None (scored), "irregular" or "stale"."""

    reason: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)


def _facts_of_state(state: ItemState) -> dict[str, Any]:
    """The item_facts values the final state implies (to check the row is this state)."""
    yellow, red = deadlines.colour_thresholds(state)
    warn = red if yellow is None else yellow if red is None else min(yellow, red)
    return {
        "unit": state.assignee_unit or state.lead_unit or "",
        "status": str(state.status),
        "done": state.done,
        "assigned_at": state.assigned_at,
        "updated_at": max(state.last_event_at, state.assigned_at),
        "resolve_due": state.resolve.due,
        "resolve_met": state.resolve.met,
        "finished_at": finished_at(state),
        "warn_from": warn,
        "red_from": red,
        "board": state.board,
    }


class _Part:
    """One item's counters per unit in one quarter."""

    def __init__(self) -> None:
        self.by_unit: dict[str, list[int]] = {}

    def slot(self, unit: str | None) -> list[int]:
        return self.by_unit.setdefault(unit or "", [0] * len(COUNTERS))

    def add_score(self, score: ItemScore) -> None:
        """The item's part as ``node.queries.scores.tally`` counts it."""
        units: set[str] = set()
        member = False
        if score.state is not None and (score.active or score.lines):
            member = True
            units.add(handler(score.state)[1] or "")
        for line in score.lines:
            member = True
            units.add(line.unit or "")
            self.slot(line.unit)[RULE_INDEX[line.rule]] += 1
        if member:
            first = sorted(units)[0] if units else ""
            self.slot(first)[NODE_ITEMS] += 1
        for unit in units:
            if unit:
                self.slot(unit)[UNIT_ITEMS] += 1

    def rows(self, item: str, quarter: int, path: str) -> list[dict[str, Any]]:
        return [
            {"item_id": item, "quarter": quarter, "unit": unit, "path": path,
             **dict(zip(COUNTERS, values, strict=True))}
            for unit, values in sorted(self.by_unit.items()) if any(values)
        ]


def summarise(pairs: Sequence[Pair], facts: Mapping[str, Any]) -> Summary:
    """The cached part of one item (its events, its ``item_facts`` row)."""
    steps = walk(pairs)
    if not steps:
        return Summary("stale")
    final = steps[-1].after
    implied = _facts_of_state(final)
    if any(facts[k] != v for k, v in implied.items()) or \
            tallies.node_of(facts["path"]) != final.assignee:
        return Summary("stale")  # the row does not show these events (yet)
    max_at = max(s.event.at for s in steps)
    if max_at != facts["updated_at"]:
        return Summary("irregular")  # an event dated after the last one folded
    path, unit = facts["path"], facts["unit"]
    last = tallies.quarter_key(max_at)
    out = Summary(None)
    q = tallies.quarter_key(min(s.event.at for s in steps))
    while q < last:  # quarters that ended before the last event: the whole part
        try:
            quarter = Quarter.of(q)
        except PeriodError:
            return Summary("irregular")
        if final.assigned_at <= quarter.end - 1:  # the replay's own row filter
            part = _Part()
            part.add_score(score_item(pairs, _RULES, quarter))
            out.rows.extend(part.rows(final.item, q, path))
        q = _next_quarter(q)
    # The last event's quarter: lines only; taking part comes from the row tallies.
    part = _Part()
    present = not final.done or (
        implied["finished_at"] is not None
        and tallies.quarter_key(implied["finished_at"]) == last
    )
    extra: set[str] = set()
    for line in event_lines(steps, _RULES):
        if tallies.quarter_key(line.at) != last:
            continue
        if not present:
            return Summary("irregular")  # a line after the item finished
        part.slot(line.unit)[RULE_INDEX[line.rule]] += 1
        if line.unit and line.unit != unit:
            extra.add(line.unit)
    for u in extra:
        part.slot(u)[UNIT_ITEMS] += 1
    out.rows.extend(part.rows(final.item, last, path))
    return out


# -- the keeper's step ----------------------------------------------------------------------


async def score_some(db: Database, limit: int = _CHUNK) -> int:
    """Score up to ``limit`` dirty items in one write transaction; returns how many."""
    async with db.write() as conn:
        c = t.score_exceptions.c
        stmt = select(c.item_id).where(c.reason == "dirty").order_by(c.item_id).limit(limit)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        ids = list(await conn.scalars(stmt))
        if not ids:
            return 0
        await score_items(conn, ids)
    return len(ids)


async def score_items(conn: AsyncConnection, ids: Sequence[str]) -> None:
    """Replace the cached part of these items (in the caller's write transaction)."""
    f = t.item_facts.c
    facts = {
        r.item_id: dict(r._mapping)
        for r in await conn.execute(select(t.item_facts).where(f.item_id.in_(ids)))
    }
    grouped = await item_events(conn, list(ids))
    marks = await tallies.marks(conn, "share")
    deltas: tallies.Deltas = {}
    await tallies.drop_scores(conn, list(ids), deltas, marks.ranking)
    new_rows: list[dict[str, Any]] = []
    reasons: dict[str, str | None] = {}
    for item in ids:
        row = facts.get(item)
        summary = Summary("stale") if row is None else summarise(grouped.get(item, []), row)
        reasons[item] = summary.reason
        if summary.reason is None:
            new_rows.extend(summary.rows)
    tallies.add_scores(
        deltas, ((r["quarter"], r["path"], r["unit"], *(r[n] for n in COUNTERS))
                 for r in new_rows), marks.ranking, +1,
    )
    for i in range(0, len(new_rows), _CHUNK):
        await conn.execute(insert(t.score_rows), new_rows[i : i + _CHUNK])
    await tallies.apply(conn, deltas)
    c = t.score_exceptions.c
    scored = [i for i, reason in reasons.items() if reason is None]
    for i in range(0, len(scored), _CHUNK):
        await conn.execute(delete(t.score_exceptions).where(c.item_id.in_(scored[i : i + _CHUNK])))
    for reason in ("irregular", "stale"):
        marked = [i for i, r in reasons.items() if r == reason]
        for i in range(0, len(marked), _CHUNK):
            await conn.execute(
                update(t.score_exceptions)
                .where(c.item_id.in_(marked[i : i + _CHUNK]))
                .values(reason=reason)
            )


async def score_all(db: Database) -> int:
    """Score every dirty item at once (tests, benchmarks; a running node's keeper
    scores a chunk at a time, node/queries/keeper.py)."""
    total = 0
    while True:
        n = await score_some(db)
        total += n
        if n < _CHUNK:
            return total
        await asyncio.sleep(0)


# -- reading --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    """The ranking cannot be read cheaply yet: ``items`` wait to be scored in scope."""

    items: int


Counts = dict[tuple[str, str], list[int]]
"""Counters (``COUNTERS``) per (node path, unit)."""


def _slot(counts: Counts, key: tuple[str, str]) -> list[int]:
    slot = counts.get(key)
    if slot is None:
        slot = counts[key] = [0] * len(COUNTERS)
    return slot


async def standings(
    db: Database, now: int, scope_path: str, quarter: Quarter, rules: ScoreRules,
    limit: int | None = None,
) -> QuarterScores | Pending:
    """Ranked standings of ``quarter`` for the subtree at ``scope_path`` (without lines):
    every node and unit, or the ``limit`` best of each (ranks counted over all)."""
    end = quarter.end - 1
    instant = min(end, now)
    running = instant < end
    q = quarter.start
    lo, hi = tallies.path_range(scope_path)
    async with db.read() as conn:
        e = t.score_exceptions.c
        replay = set(await conn.scalars(select(e.item_id).where(e.path >= lo, e.path < hi)))
        if running:
            # An event dated after now (a clock ahead): few, found by the ledger's
            # update-time index; the scope is checked here, so that no path range
            # tempts SQLite into walking the whole subtree instead.
            i = t.items.c
            replay.update(
                item for item, path in await conn.execute(
                    select(i.item_id, i.assignee_path).where(i.updated_at > instant)
                )
                if lo <= path < hi
            )
        if len(replay) > REPLAY_CAP:
            return Pending(len(replay))
        marks = await tallies.marks(conn)
        whole = running and q == marks.ranking
        # What the tallies below do not hold: taken away and added back here.
        adjust: Counts = {}
        if whole:
            for path, unit, n in await tallies.crossed(conn, "red_from", marks.watermark,
                                                       instant):
                if lo <= path < hi:
                    _slot(adjust, (path, unit))[UNFINISHED] += n
        if replay:
            await _replay(conn, adjust, sorted(replay), quarter, instant, running)
        if whole:
            ranked = await _from_ranking(conn, lo, hi, adjust, rules, limit)
        else:
            counts = await _assembled(conn, lo, hi, q, instant, running, marks)
            for key, values in adjust.items():
                slot = _slot(counts, key)
                for k, v in enumerate(values):
                    slot[k] += v
            ranked = _ranked(_by_node(counts), list(counts.items()), rules, limit)
    return QuarterScores(
        quarter=quarter, rules=rules, as_of=instant, final=instant == end,
        units=ranked[0], nodes=ranked[1],
    )


async def _assembled(
    conn: AsyncConnection, lo: str, hi: str, q: int, instant: int, running: bool,
    marks: tallies.Marks,
) -> Counts:
    """Every (path, unit) of a quarter other than the one ``tally_ranking`` holds, from
    ``score_tallies`` and the row tallies."""
    counts: Counts = {}
    s = t.score_tallies.c
    rows = await conn.execute(
        select(s.path, s.unit, *(s[n] for n in COUNTERS))
        .where(s.quarter == q, s.path >= lo, s.path < hi)
    )
    for path, unit, *values in rows:
        slot = _slot(counts, (path, unit))
        for k, v in enumerate(values):
            slot[k] += int(v)

    def presence(path: str, unit: str, n: int, unfinished: int) -> None:
        slot = _slot(counts, (path, unit))
        slot[NODE_ITEMS] += n
        slot[UNIT_ITEMS] += n if unit else 0
        slot[UNFINISHED] += unfinished

    if running:
        for (path, unit), (open_, red) in (
            await tallies.unit_counts(conn, lo, instant, known=marks)
        ).items():
            presence(path, unit, open_, red)
    else:
        o = t.tally_open.c
        rows = await conn.execute(
            select(o.path, o.unit, o.red_quarter, o.n)
            .where(o.path >= lo, o.path < hi, o.quarter <= q)
        )
        for path, unit, red_quarter, n in rows:
            presence(path, unit, int(n), int(n) if red_quarter <= q else 0)
    f = t.tally_finished.c
    rows = await conn.execute(
        select(f.path, f.unit, f.n).where(f.quarter == q, f.path >= lo, f.path < hi)
    )
    for path, unit, n in rows:
        presence(path, unit, int(n), 0)
    return counts


async def _replay(
    conn: AsyncConnection, adjust: Counts, ids: Sequence[str], quarter: Quarter, instant: int,
    running: bool,
) -> None:
    """Take the tallied part of these items away and add their part from their events."""
    q = quarter.start
    f = t.item_facts.c
    s = t.score_rows.c
    for i in range(0, len(ids), _CHUNK):
        chunk = list(ids[i : i + _CHUNK])
        facts = [dict(r._mapping) for r in await conn.execute(
            select(t.item_facts).where(f.item_id.in_(chunk))
        )]
        for row in facts:
            part = tallies.presence(row, q, instant if running else None)
            if part is not None:
                slot = _slot(adjust, (row["path"], row["unit"]))
                slot[NODE_ITEMS] -= part[0]
                slot[UNIT_ITEMS] -= part[1]
                slot[UNFINISHED] -= part[2]
        cached = await conn.execute(
            select(s.path, s.unit, *(s[n] for n in COUNTERS))
            .where(s.item_id.in_(chunk), s.quarter == q)
        )
        for path, unit, *values in cached:
            slot = _slot(adjust, (path, unit))
            for k, v in enumerate(values):
                slot[k] -= int(v)
        grouped = await item_events(conn, chunk)
        for row in facts:
            if row["assigned_at"] > instant or (row["done"] and row["updated_at"] < q):
                continue  # the replay's own row filter (assemble._score)
            pairs = grouped.get(row["item_id"], [])
            if not pairs:
                continue
            part_ = _Part()
            part_.add_score(score_item(pairs, _RULES, quarter, instant))
            for unit, values in part_.by_unit.items():
                slot = _slot(adjust, (row["path"], unit))
                for k, v in enumerate(values):
                    slot[k] += v
        await asyncio.sleep(0)


def _by_node(counts: Counts) -> dict[str, list[int]]:
    nodes: dict[str, list[int]] = {}
    for (path, _), values in counts.items():
        slot = nodes.get(path)
        if slot is None:
            nodes[path] = list(values)
        else:
            for k, v in enumerate(values):
                slot[k] += v
    return nodes


# -- ranking --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Points:
    """The rules' amounts as integers (times ``scale``, a power of ten), so points add up
    exactly and cheaply, in Python or in SQL."""

    scale: int
    gain: tuple[tuple[int, int], ...]  # (counter index, whole amount)
    loss: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, rules: ScoreRules) -> _Points:
        amounts = [getattr(rules, rule) for rule in RULES]
        scale = 10 ** max(0, *(-int(a.as_tuple().exponent) for a in amounts))
        whole = [int(a * scale) for a in amounts]
        return cls(
            scale,
            tuple((k, w) for k, w in enumerate(whole) if RULES[k] not in DEDUCTIONS and w),
            tuple((k, w) for k, w in enumerate(whole) if RULES[k] in DEDUCTIONS and w),
        )

    def entry(self, path: str, unit: str | None, values: Sequence[int],
              items: int) -> tuple[Any, ...]:
        """The sort key (as ``scores.rank``: points, deductions, excellent, node, unit)
        and what a standing needs."""
        gained = sum(values[k] * w for k, w in self.gain)
        deducted = sum(values[k] * w for k, w in self.loss)
        return (deducted - gained, deducted, -values[EXCELLENT], tallies.node_of(path),
                unit or "", unit, values, items, gained)


EXCELLENT: Final = RULE_INDEX["resolved_excellent"]
_TIES: Final = 50  # entries read past the last one shown, for ties on the sort key
_N_RULES: Final = len(RULES)


def _takes_part(values: Sequence[int], items_index: int) -> bool:
    return bool(values[items_index]) or any(values[:_N_RULES])


def _best(points: _Points, entries: list[tuple[Any, ...]], limit: int | None,
          ) -> tuple[Standing, ...]:
    """The best ``limit`` entries (all if None) as ranked standings: equal on points,
    deductions and excellent share a rank (1, 2, 2, 4), listed by node id then unit."""
    key = itemgetter(0, 1, 2, 3, 4)
    best = sorted(entries, key=key) if limit is None else heapq.nsmallest(limit, entries, key)
    out: list[Standing] = []
    previous = None
    for position, e in enumerate(best, start=1):
        rank = out[-1].rank if previous == e[:3] else position
        previous = e[:3]
        gained, deducted = Decimal(e[8]) / points.scale, Decimal(e[1]) / points.scale
        out.append(Standing(
            node=e[3], unit=e[5], rank=rank, total=gained - deducted, gained=gained,
            deducted=deducted, counts=dict(zip(RULES, e[6], strict=False)), items=e[7],
        ))
    return tuple(out)


def _ranked(
    nodes: Mapping[str, Sequence[int]], units: Sequence[tuple[tuple[str, str], Sequence[int]]],
    rules: ScoreRules, limit: int | None,
) -> tuple[tuple[Standing, ...], tuple[Standing, ...]]:
    """(units, nodes) ranked, from counters per node path and per (path, unit)."""
    points = _Points.of(rules)
    unit_entries = [
        points.entry(path, unit, values, values[UNIT_ITEMS])
        for (path, unit), values in units if unit and _takes_part(values, UNIT_ITEMS)
    ]
    node_entries = [
        points.entry(path, None, values, values[NODE_ITEMS])
        for path, values in nodes.items() if _takes_part(values, NODE_ITEMS)
    ]
    return _best(points, unit_entries, limit), _best(points, node_entries, limit)


async def _from_ranking(
    conn: AsyncConnection, lo: str, hi: str, adjust: Counts, rules: ScoreRules,
    limit: int | None,
) -> tuple[tuple[Standing, ...], tuple[Standing, ...]]:
    """The running quarter from ``tally_ranking``: nodes summed in SQL; units ranked in
    SQL (the best ``limit``, and every entry tied with the last of them: ties are then
    ordered by node id here), but for the pairs ``adjust`` changes, which are read and
    ranked here."""
    r = t.tally_ranking.c
    counters = [r[n] for n in COUNTERS]
    scope = [r.path >= lo, r.path < hi]
    nodes: dict[str, list[int]] = {
        path: [int(v) for v in values]
        for path, *values in await conn.execute(
            select(r.path, *(func.sum(c) for c in counters)).where(*scope).group_by(r.path)
        )
    }
    for (path, _), values in adjust.items():
        slot = nodes.setdefault(path, [0] * len(COUNTERS))
        for k, v in enumerate(values):
            slot[k] += v
    points = _Points.of(rules)
    affected = sorted(key for key in adjust if key[1])
    units: Counts = {key: [0] * len(COUNTERS) for key in affected}
    for k in range(0, len(affected), _CHUNK):
        rows = await conn.execute(
            select(r.path, r.unit, *counters)
            .where(tuple_(r.path, r.unit).in_(affected[k : k + _CHUNK]))
        )
        for path, unit, *values in rows:
            units[(path, unit)] = [int(v) for v in values]
    for key in affected:
        for k, v in enumerate(adjust[key]):
            units[key][k] += v
    if limit is None:
        rows = await conn.execute(select(r.path, r.unit, *counters).where(*scope, r.unit != ""))
        for path, unit, *values in rows:
            if (path, unit) not in units:
                units[(path, unit)] = [int(v) for v in values]
    else:
        gained = sum((counters[k] * w for k, w in points.gain), literal(0))
        deducted = sum((counters[k] * w for k, w in points.loss), literal(0))
        where = [*scope, r.unit != "", or_(r.unit_items > 0, *(c > 0 for c in counters[:_N_RULES]))]
        if affected:
            where.append(tuple_(r.path, r.unit).not_in(affected))
        order = (deducted - gained, deducted, -r.resolved_excellent)
        wanted = limit + _TIES
        top = list(await conn.execute(
            select(r.path, r.unit, *counters, *order).where(*where).order_by(*order)
            .limit(wanted)
        ))
        if len(top) == wanted and top[-1][-3:] == top[limit - 1][-3:]:
            # More entries tie with the last one shown than were read: read them all.
            last = top[limit - 1][-3:]
            top += await conn.execute(
                select(r.path, r.unit, *counters, *order)
                .where(*where, *(o == v for o, v in zip(order, last, strict=True)))
            )
        for path, unit, *values in top:
            units[(path, unit)] = [int(v) for v in values[: len(COUNTERS)]]
    return _ranked(nodes, list(units.items()), rules, limit)
