"""The roll-up: an item's whole subtree of sub-items, summed up for its page.

The subtree is read in one recursive query over ``items.parent_item`` (SQLite and
PostgreSQL alike), bounded in depth (:data:`MAX_DEPTH`) so that a cycle a hostile
node might sign can never loop. What it answers:

- per level of the sub-items' assignees (city, county, township...): how many,
  by status and by colour, how many have sent their first feedback
  (``feedback_in``), how many are late with it (the feedback deadline passed
  without one, or it came after the deadline), how many are red, and their
  average signed progress;
- per direct sub-item: its own status, colour and progress, and its rolled-up
  progress and colour with its leaves' counts (a city's sub-item: its townships);
- the slowest open leaves and the overdue (red) items, up to :data:`LIST_MAX`
  each, for drill-down.

The rolled-up progress and colour (docs/cascade.md, "Roll-up"), shown beside the
item's own signed progress and colour, which they never change (the item's
state has one writer, its assignee):

- a sub-item with no sub-items of its own counts with its signed progress, or
  100 once it is resolved, accepted or closed; withdrawn sub-items are left out;
- a sub-item with sub-items counts with the mean of their rolled-up progress
  (each child weighs the same, whatever the size of its own subtree);
- the item's rolled-up progress is the mean over its direct sub-items, rounded;
- the rolled-up colour is the worst colour (red, then yellow, then green) of the
  open items of the subtree and the item itself; grey when all are done.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import literal, select

from node.clock import Clock
from node.storage import schema as t
from node.storage.db import Database
from node.sync.routing import KnownTree
from protocol import rules
from protocol.fold import ItemState

MAX_DEPTH: Final = 16
"""Deeper than any tree of levels; a bound against a cycle of parent items."""
LIST_MAX: Final = 10
"""The slowest and the overdue: at most this many each."""
FINISHED: Final = frozenset({"resolved", "accepted", "closed"})
_WORST: Final = {"red": 3, "yellow": 2, "green": 1, "grey": 0}
RULE: Final = (
    "progress: mean over the direct sub-items of their rolled-up progress (a sub-item "
    "without sub-items: its signed progress, 100 once resolved; withdrawn ones left out); "
    "colour: the worst colour of the open items in the subtree"
)


@dataclass(slots=True)
class _Row:
    id: str
    parent: str
    top: str
    depth: int
    assignee: str
    assignee_unit: str | None
    title: str
    status: str
    progress: int
    colour: str
    level: str
    feedback_due: int
    feedback_at: int | None
    red_from: int | None
    children: list[_Row]
    rolled: float = 0.0
    rolled_colour: str = "grey"

    @property
    def feedback_in(self) -> bool:
        return self.feedback_at is not None

    def late(self, now: int) -> bool:
        if self.status == "withdrawn":
            return False
        if self.feedback_at is None:
            return self.feedback_due < now
        return self.feedback_at > self.feedback_due

    def brief(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "assignee": self.assignee,
            "assignee_unit": self.assignee_unit,
            "level": self.level,
            "status": self.status,
            "colour": self.colour,
            "progress": self.progress,
        }


def _worst(colours: list[str]) -> str:
    return max(colours, key=lambda c: _WORST[c], default="grey")


class Rollup:
    """The roll-ups of one node's items: rows in ``db``, colours at ``clock``'s now,
    levels from the tree its certificates draw (``tree``)."""

    def __init__(self, db: Database, clock: Clock, tree: KnownTree) -> None:
        self.db = db
        self.clock = clock
        self.known = tree

    async def _rows(self, item: str) -> list[Any]:
        items = t.items
        sub = (
            select(
                items.c.item_id.label("id"),
                items.c.item_id.label("top"),
                literal(1).label("depth"),
            )
            .where(items.c.parent_item == item)
            .cte("sub", recursive=True)
        )
        child = items.alias("child")
        sub = sub.union_all(
            select(child.c.item_id, sub.c.top, sub.c.depth + 1)
            .where(child.c.parent_item == sub.c.id)
            .where(sub.c.depth < MAX_DEPTH)
        )
        query = select(
            items.c.item_id, items.c.parent_item, sub.c.top, sub.c.depth, items.c.assignee,
            items.c.assignee_unit, items.c.title, items.c.status, items.c.progress,
            items.c.done, items.c.yellow_from, items.c.red_from, items.c.feedback_due,
            items.c.state,
        ).join(sub, sub.c.id == items.c.item_id).order_by(sub.c.depth, items.c.item_id)
        async with self.db.read() as conn:
            return list((await conn.execute(query)).all())

    def _level(self, node: str) -> str:
        found = self.known.tree.get(node)
        return found.level if found is not None else "unknown"

    async def of(self, state: ItemState) -> dict[str, Any]:
        """The roll-up of the item whose state is ``state`` (the caller checked the
        reader may see it): a JSON-able dict, ``count`` 0 when it has no sub-items."""
        now = self.clock.now_ms()
        rows: dict[str, _Row] = {}
        for r in await self._rows(state.item):
            if r.item_id in rows:
                continue  # reached twice: only through a cycle; counted once
            folded = json.loads(r.state)
            rows[r.item_id] = _Row(
                id=r.item_id, parent=r.parent_item, top=r.top, depth=int(r.depth),
                assignee=r.assignee, assignee_unit=r.assignee_unit, title=r.title,
                status=r.status, progress=r.progress,
                colour=str(rules.colour_at(r.done, r.yellow_from, r.red_from, now)),
                level=self._level(r.assignee), feedback_due=r.feedback_due,
                feedback_at=folded["deadlines"]["first_feedback"]["done_at"],
                red_from=r.red_from, children=[],
            )
        direct: list[_Row] = []
        for row in rows.values():
            parent = rows.get(row.parent)
            if parent is not None:
                parent.children.append(row)
            elif row.parent == state.item:
                direct.append(row)
        # Deepest first: every child is rolled up before its parent.
        for row in sorted(rows.values(), key=lambda r: -r.depth):
            kids = [c for c in row.children if c.status != "withdrawn"]
            if kids:
                row.rolled = sum(c.rolled for c in kids) / len(kids)
            else:
                row.rolled = 100.0 if row.status in FINISHED else float(row.progress)
            row.rolled_colour = _worst([row.colour, *(c.rolled_colour for c in kids)])
        counted = [r for r in direct if r.status != "withdrawn"]
        own_colour = str(state.colour(now))
        rolled_progress = (
            round(sum(r.rolled for r in counted) / len(counted)) if counted else None
        )
        return {
            "item": state.item,
            "count": len(rows),
            "own": {"progress": state.progress, "colour": own_colour},
            "rolled": {
                "progress": rolled_progress,
                "colour": _worst([own_colour, *(r.rolled_colour for r in counted)]),
            },
            "rule": RULE,
            "levels": self._levels(list(rows.values()), now),
            "children": [self._child(r, now) for r in direct],
            "slowest": self._slowest(list(rows.values())),
            "overdue": self._overdue(list(rows.values())),
            "overdue_count": sum(1 for r in rows.values() if r.colour == "red"),
        }

    def _levels(self, rows: list[_Row], now: int) -> list[dict[str, Any]]:
        by_level: dict[str, list[_Row]] = defaultdict(list)
        for row in rows:
            by_level[row.level].append(row)
        tree = self.known.tree

        def rank(level: str) -> int:
            return tree.levels.index(level) if level in tree.levels else len(tree.levels)

        out = []
        for level in sorted(by_level, key=rank):
            group = by_level[level]
            out.append(
                {
                    "level": level,
                    "count": len(group),
                    "by_status": dict(Counter(r.status for r in group)),
                    "by_colour": dict(Counter(r.colour for r in group)),
                    "feedback_in": sum(1 for r in group if r.feedback_in),
                    "late": sum(1 for r in group if r.late(now)),
                    "red": sum(1 for r in group if r.colour == "red"),
                    "progress": round(sum(r.progress for r in group) / len(group)),
                }
            )
        return out

    @staticmethod
    def _leaves(row: _Row) -> list[_Row]:
        out, todo = [], [row]
        while todo:
            current = todo.pop()
            if current.children:
                todo.extend(current.children)
            else:
                out.append(current)
        return out

    def _child(self, row: _Row, now: int) -> dict[str, Any]:
        leaves = self._leaves(row)
        return {
            **row.brief(),
            "rolled_progress": round(row.rolled),
            "rolled_colour": row.rolled_colour,
            "leaves": {
                "count": len(leaves),
                "feedback_in": sum(1 for r in leaves if r.feedback_in),
                "late": sum(1 for r in leaves if r.late(now)),
                "red": sum(1 for r in leaves if r.colour == "red"),
            },
        }

    def _slowest(self, rows: list[_Row]) -> list[dict[str, Any]]:
        open_leaves = [
            r for r in rows if not r.children and r.colour != "grey" and r.status not in FINISHED
        ]
        open_leaves.sort(key=lambda r: (r.progress, r.feedback_due, r.id))
        return [r.brief() for r in open_leaves[:LIST_MAX]]

    def _overdue(self, rows: list[_Row]) -> list[dict[str, Any]]:
        red = [r for r in rows if r.colour == "red"]
        red.sort(key=lambda r: (r.red_from or 0, r.id))
        return [r.brief() for r in red[:LIST_MAX]]
