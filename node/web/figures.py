"""The numbers behind the tree and the command board, counted in SQL.

Nothing here loads items: every figure is a ``GROUP BY`` over the ``items``
rows of one subtree (an index range on ``assignee_path``), so the pages cost
the same whether the subtree holds a hundred items or a province's million.

Definitions (docs/pages.md):

- *open*: not accepted, closed or withdrawn; *overdue*: open and red now
  (a deploy, feedback or resolve deadline passed with its step undone);
  *done*: accepted or closed. Withdrawn items count nowhere.
- The board's period is a quarter; its items are those whose resolve
  deadline falls in it. *Completion rate* = done / items. *On-time rate* =
  items resolved by their deadline / items whose deadline has passed or that
  were resolved (an item not yet due and not resolved is not judged yet).
- Whether a resolution met its deadline is in the folded state (stored as
  JSON in ``items.state``): read with the database's JSON functions, for the
  period's resolved items only.

The quarter's ranking (incentive points) and the colour counts per unit come
from ``node.reports`` (``quarter_scores``, ``colour_counts``), not from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Integer, Text, and_, case, cast, func, or_, select

from node.api import ledger
from node.context import NodeContext
from node.storage import schema as t

WEEK_MS = 7 * 86_400_000
DONE = ("accepted", "closed")
RESOLVED = ("resolved", "accepted", "closed")


def _sum(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def subtree(ctx: NodeContext, node: str) -> list[ColumnElement[bool]]:
    """The where-clauses of "items handled in ``node``'s subtree" (the ledger's own)."""
    query = ledger.parse_query({"scope": node}, ctx.me, ())
    return ledger.where_clauses(query, ctx.store.path_of(node), ctx.clock.now_ms())


def met(ctx: NodeContext) -> ColumnElement[bool]:
    """The item's resolve step was done by its deadline (from the folded state)."""
    c = t.items.c
    if ctx.db.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        state = cast(func.convert_from(c.state, "UTF8"), JSONB)
        return state["deadlines"]["resolve"]["met"].astext == "true"
    value = func.json_extract(cast(c.state, Text), "$.deadlines.resolve.met")
    return cast(value, Integer) == 1


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


async def counts_by_node(ctx: NodeContext, top: str) -> dict[str, Counts]:
    """Open / overdue / yellow / done items handled by each node of ``top``'s subtree."""
    c = t.items.c
    now = ctx.clock.now_ms()
    query = (
        select(
            c.assignee,
            _sum(c.done.is_(False)),
            _sum(ledger.colour_clause("red", now)),
            _sum(ledger.colour_clause("yellow", now)),
            _sum(c.status.in_(DONE)),
        )
        .where(*subtree(ctx, top))
        .group_by(c.assignee)
    )
    async with ctx.db.read() as conn:
        rows = (await conn.execute(query)).all()
    return {r[0]: Counts(int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}


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
    overdue: int = 0

    def add(self, other: Rates) -> None:
        self.items += other.items
        self.done += other.done
        self.judged += other.judged
        self.on_time += other.on_time
        self.overdue += other.overdue

    @property
    def completion(self) -> float | None:
        return self.done / self.items if self.items else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.judged if self.judged else None


def _rate_columns(ctx: NodeContext, now: int) -> list[Any]:
    c = t.items.c
    resolved = c.status.in_(RESOLVED)
    return [
        func.count(),
        _sum(c.status.in_(DONE)),
        _sum(or_(resolved, c.resolve_due <= now)),
        _sum(and_(resolved, met(ctx))),
        _sum(ledger.colour_clause("red", now)),
    ]


def _rates(row: Any) -> Rates:
    return Rates(int(row[-5]), int(row[-4]), int(row[-3]), int(row[-2]), int(row[-1]))


def child_bucket(ctx: NodeContext, top: str, children: Iterable[str]) -> ColumnElement[Any]:
    """The child of ``top`` whose subtree holds the item's assignee (``top`` itself else)."""
    c = t.items.c
    whens = []
    for child in children:
        path = ctx.store.path_of(child)
        whens.append((and_(c.assignee_path >= path, c.assignee_path < path[:-1] + "0"), child))
    if not whens:
        return c.assignee
    return case(*whens, else_=top)


@dataclass(slots=True)
class Board:
    total: Rates = field(default_factory=Rates)
    by_node: dict[str, Rates] = field(default_factory=dict)
    by_board: dict[str, Rates] = field(default_factory=dict)
    overdue_now: dict[str, int] = field(default_factory=dict)
    open_now: int = 0
    weeks: list[tuple[int, int, int, int]] = field(default_factory=list)


async def board(
    ctx: NodeContext,
    top: str,
    children: list[str],
    *,
    start: int,
    end: int,
    week_starts: list[int],
) -> Board:
    """Every figure of the command board for ``top``'s subtree and the period [start, end)."""
    c = t.items.c
    now = ctx.clock.now_ms()
    scope = subtree(ctx, top)
    in_period = [*scope, c.resolve_due >= start, c.resolve_due < end, c.status != "withdrawn"]
    bucket = child_bucket(ctx, top, children).label("bucket")
    out = Board()
    red = ledger.colour_clause("red", now)
    async with ctx.db.read() as conn:
        # One pass over the period's rows, by (child subtree, board); summed both ways here.
        rows = (
            await conn.execute(
                select(bucket, c.board, *_rate_columns(ctx, now))
                .where(*in_period)
                .group_by(bucket, c.board)
            )
        ).all()
        for r in rows:
            rates = _rates(r)
            for table, key in ((out.by_node, r[0]), (out.by_board, r[1])):
                table.setdefault(key, Rates()).add(rates)
        # Now, whatever the period: open and overdue items per child subtree.
        rows = (
            await conn.execute(
                select(bucket, _sum(red), func.count())
                .where(*scope, c.done.is_(False))
                .group_by(bucket)
            )
        ).all()
        for r in rows:
            out.overdue_now[r[0]] = int(r[1])
            out.open_now += int(r[2])
        out.weeks = await _weeks(ctx, conn, scope, week_starts)
    for rates in out.by_node.values():
        out.total.add(rates)
    return out


async def _weeks(
    ctx: NodeContext, conn: Any, scope: list[ColumnElement[bool]], starts: list[int]
) -> list[tuple[int, int, int, int]]:
    """Per week: (start, assigned, done, done late)."""
    if not starts:
        return []
    c = t.items.c
    first = starts[0]
    assigned_week = ((c.assigned_at - first) // WEEK_MS).label("week")
    done_week = ((c.updated_at - first) // WEEK_MS).label("week")
    assigned = {
        int(r[0]): int(r[1])
        for r in await conn.execute(
            select(assigned_week, func.count())
            .where(*scope, c.assigned_at >= first)
            .group_by(assigned_week)
        )
    }
    done: dict[int, tuple[int, int]] = {
        int(r[0]): (int(r[1]), int(r[2]))
        for r in await conn.execute(
            select(done_week, func.count(), _sum(~met(ctx)))
            .where(*scope, c.status.in_(DONE), c.updated_at >= first)
            .group_by(done_week)
        )
    }
    return [
        (start, assigned.get(i, 0), *done.get(i, (0, 0))) for i, start in enumerate(starts)
    ]
