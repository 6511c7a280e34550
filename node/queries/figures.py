"""The numbers behind the tree and the command board, read from the page tallies.

Nothing here reads item rows: every figure is a sum over the tallies that
``node.items.projection.write_rows`` keeps beside the rows (``node.items.tallies``), a
few rows per node, so a page costs about the same whether the subtree holds a
hundred items or a province's million. Counts that move with time (red and
yellow now, deadlines passed now) are kept as of a watermark and brought to
``now`` with the few items whose threshold lies in between.

Definitions (docs/pages.md):

- *open*: not accepted, closed or withdrawn; *overdue*: open and red now
  (a deploy, feedback or resolve deadline passed with its step undone);
  *done*: accepted or closed. Withdrawn items count nowhere.
- The board's period is a quarter; its items are those whose resolve
  deadline falls in it. *Completion rate* = done / items. *On-time rate* =
  items resolved by their deadline / items whose deadline has passed or that
  were resolved (an item not yet due and not resolved is not judged yet).
- Whether a resolution met its deadline was read once from the folded state,
  when the row was written (``item_facts.resolve_met``).

The quarter's ranking comes from ``node.queries.standings``. :class:`Figures` reads
them, built once per node (node/app.py) with the database, the clock and the tree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, func, literal, select, tuple_

from node.clock import Clock
from node.items import tallies
from node.queries.periods import Quarter
from node.storage import schema as t
from node.storage.db import Database
from node.sync.routing import KnownTree

# ------------------------------------------------------------------ the tree


@dataclass(slots=True)
class Counts:
    open: int = 0
    overdue: int = 0
    yellow: int = 0
    done: int = 0

    def add(self, other: Counts) -> None:
        self.open += other.open
        self.overdue += other.overdue
        self.yellow += other.yellow
        self.done += other.done

    @property
    def colour(self) -> str:
        if self.overdue:
            return "red"
        if self.yellow:
            return "yellow"
        return "green" if self.open else "grey"


def roll_up(
    own: dict[str, Counts], nodes: Iterable[str], parent_of: dict[str, str | None]
) -> dict[str, Counts]:
    """Each node's counts plus all its descendants' (``nodes`` in preorder)."""
    order = list(nodes)
    total = {n: Counts() for n in order}
    for n in order:
        if n in own:
            total[n].add(own[n])
    for n in reversed(order):
        up = parent_of.get(n)
        if up is not None and up in total:
            total[up].add(total[n])
    return total


# ----------------------------------------------------------------- the board


@dataclass(slots=True)
class Rates:
    items: int = 0
    done: int = 0
    judged: int = 0
    on_time: int = 0

    def add(self, other: Rates) -> None:
        self.items += other.items
        self.done += other.done
        self.judged += other.judged
        self.on_time += other.on_time

    @property
    def completion(self) -> float | None:
        return self.done / self.items if self.items else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.judged if self.judged else None


def child_of(path: str, top_path: str, top: str) -> str:
    """The child of ``top`` whose subtree holds ``path`` (``top`` itself else)."""
    rest = path[len(top_path):]
    return rest.split("/", 1)[0] if rest else top


def child_bucket(tree: KnownTree, top: str, children: Iterable[str], column: Any) -> Any:
    """SQL: the child of ``top`` whose subtree holds the path in ``column`` (else ``top``)."""
    whens = []
    for child in children:
        lo, hi = tallies.path_range(tree.path_of(child))
        whens.append((and_(column >= lo, column < hi), child))
    return case(*whens, else_=top) if whens else literal(top)


@dataclass(slots=True)
class Board:
    total: Rates = field(default_factory=Rates)
    by_node: dict[str, Rates] = field(default_factory=dict)
    by_board: dict[str, Rates] = field(default_factory=dict)
    overdue_now: dict[str, int] = field(default_factory=dict)
    open_now: int = 0
    weeks: list[tuple[int, int, int, int]] = field(default_factory=list)
    red_by_unit: dict[tuple[str, str], int] = field(default_factory=dict)
    """Red items now per (node, unit) (unit "" for items addressed to the node as a
    whole): the ``red_units`` pairs with most, and every pair tied with the last."""


class Figures:
    """The figures of one node's pages, from its tallies: the database, the clock (what
    "now" is) and the tree (each node's path)."""

    def __init__(self, db: Database, clock: Clock, tree: KnownTree) -> None:
        self.db = db
        self.clock = clock
        self.tree = tree

    async def counts_by_node(self, top: str) -> dict[str, Counts]:
        """Open / overdue / yellow / done items handled by each node of ``top``'s subtree."""
        async with self.db.read() as conn:
            by_path = await tallies.node_counts(conn, self.tree.path_of(top), self.clock.now_ms())
        return {
            tallies.node_of(path): Counts(open_, red, warn - red, done)
            for path, (open_, done, red, warn) in by_path.items()
        }

    async def board(
        self, top: str, children: Iterable[str], quarter: Quarter,
        week_starts: list[int], red_units: int = 12,
    ) -> Board:
        """Every figure of the command board for ``top``'s subtree and ``quarter``
        (the ranking aside)."""
        now = self.clock.now_ms()
        top_path = self.tree.path_of(top)
        lo, hi = tallies.path_range(top_path)
        out = Board()
        async with self.db.read() as conn:
            marks = await tallies.marks(conn)
            q = t.tally_quarters.c
            bucket = child_bucket(self.tree, top, children, q.path).label("bucket")
            rates: dict[tuple[str, str], Rates] = {}
            rows = await conn.execute(
                select(bucket, q.board, func.sum(q.total), func.sum(q.done),
                       func.sum(q.resolved) + func.sum(q.due), func.sum(q.met))
                .where(q.quarter == quarter.start, q.path >= lo, q.path < hi, q.total > 0)
                .group_by(bucket, q.board)
            )
            for child, board_, *values in rows:
                rates.setdefault((child, board_), Rates()).add(Rates(*(int(v) for v in values)))
            for _, path, board_, n in await tallies.due_crossed(
                conn, marks.watermark, now, quarter.start, quarter.end
            ):
                if lo <= path < hi:
                    key = (child_of(path, top_path, top), board_)
                    rates.setdefault(key, Rates()).judged += n
            for (child, board_), r in rates.items():
                if r.items:
                    for table, name in ((out.by_node, child), (out.by_board, board_)):
                        table.setdefault(name, Rates()).add(r)
            # Now, whatever the period: open and overdue items per child subtree.
            counts = await tallies.node_counts(conn, top_path, now)
            for path, (open_, _, red, _) in counts.items():
                child = child_of(path, top_path, top)
                if open_:
                    out.overdue_now[child] = out.overdue_now.get(child, 0) + red
                    out.open_now += open_
            out.red_by_unit = await _red_units(conn, lo, hi, now, marks, red_units)
            out.weeks = await _weeks(conn, lo, hi, week_starts)
        for r in out.by_node.values():
            out.total.add(r)
        return out


async def _red_units(
    conn: Any, lo: str, hi: str, now: int, marks: tallies.Marks, limit: int
) -> dict[tuple[str, str], int]:
    """The ``limit`` (node, unit) pairs with most red items now and every pair tied with
    the last: ranked in SQL, but for the pairs an item turned red or back since the
    watermark, which are counted here."""
    c = t.tally_nodes.c
    changed: dict[tuple[str, str], int] = {}
    for path, unit, n in await tallies.crossed(conn, "red_from", marks.watermark, now):
        if lo <= path < hi:
            changed[(path, unit)] = changed.get((path, unit), 0) + n
    where = [c.path >= lo, c.path < hi, c.red > 0]
    keys = sorted(changed)
    if keys:
        where.append(tuple_(c.path, c.unit).not_in(keys))
    rows = (await conn.execute(
        select(c.path, c.unit, c.red).where(*where).order_by(c.red.desc()).limit(limit)
    )).all()
    if len(rows) == limit:
        rows += (await conn.execute(
            select(c.path, c.unit, c.red).where(*where, c.red == rows[-1][2])
        )).all()
    out = {(tallies.node_of(p), u): int(n) for p, u, n in rows}
    for k in range(0, len(keys), 500):
        for p, u, n in await conn.execute(
            select(c.path, c.unit, c.red).where(tuple_(c.path, c.unit).in_(keys[k : k + 500]))
        ):
            changed[(p, u)] += int(n)
    for (p, u), n in changed.items():
        if n > 0:
            out[(tallies.node_of(p), u)] = n
    return out


async def _weeks(
    conn: Any, lo: str, hi: str, starts: list[int]
) -> list[tuple[int, int, int, int]]:
    """Per week: (start, assigned, done, done late)."""
    if not starts:
        return []
    c = t.tally_weeks.c
    rows = await conn.execute(
        select(c.week, func.sum(c.assigned), func.sum(c.done), func.sum(c.late))
        .where(c.week >= starts[0], c.week <= starts[-1], c.path >= lo, c.path < hi)
        .group_by(c.week)
    )
    sums = {int(week): (int(a), int(d), int(late)) for week, a, d, late in rows}
    return [(start, *sums.get(start, (0, 0, 0))) for start in starts]
