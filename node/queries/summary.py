"""What happened in a period: new, due, closed, overdue and open items, by unit and node.

Pure: :class:`ItemFacts` (an item as of one instant) in, counts and lists out.
The weekly summary (每周汇总) and the quarterly bulletin (季度通报) both count
with :func:`summarise`; the I/O around it decides which items to read.

Definitions, for a period ``[start, end)`` seen at ``as_of`` (the period's last
millisecond, or now while it runs):

- new (新增): assigned in the period;
- due (到期): resolve deadline in the period, not finished before it began and
  not withdrawn before the deadline; ``due_done`` of those were accepted by
  ``as_of``;
- closed (办结): accepted by the assigner in the period; ``closed_on_time`` of
  those were resolved by their deadline (the 按期办结率 is their ratio);
- overdue (逾期): open at ``as_of`` with a deploy, feedback or resolve deadline
  passed (red);
- open (在办): assigned and neither accepted nor withdrawn at ``as_of``, split
  by colour (green, yellow, red).

"Finished" is accepted (办结) or withdrawn (撤回); closing (销号) follows an
acceptance and changes no count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from node.queries.scores import finished_at, handler
from protocol import rules
from protocol.fold import ItemState, Status
from protocol.rules import DAY, Colour

COUNTS: Final = (
    "new",
    "due",
    "due_done",
    "closed",
    "closed_on_time",
    "overdue",
    "open",
    "green",
    "yellow",
    "red",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemFacts:
    """One item as of an instant: who handles it, its deadlines and how it ended."""

    item: str
    title: str
    node: str
    unit: str | None
    board: str
    status: str
    assigned_at: int
    deploy_due: int
    feedback_due: int
    resolve_due: int
    progress: int
    finished_at: int | None = None
    accepted: bool = False
    on_time: bool | None = None
    yellow_from: int | None = None
    red_from: int | None = None

    def is_open(self, at: int) -> bool:
        return self.assigned_at <= at and (self.finished_at is None or self.finished_at > at)

    def colour(self, at: int) -> Colour:
        return rules.colour_at(not self.is_open(at), self.yellow_from, self.red_from, at)

    def overdue_deadline(self) -> str | None:
        """Which deadline made it red: deploy, feedback or resolve."""
        if self.red_from is None:
            return None
        for name, due in (
            ("deploy", self.deploy_due),
            ("feedback", self.feedback_due),
            ("resolve", self.resolve_due),
        ):
            if due + 1 == self.red_from:
                return name
        return "resolve"


def facts_of(state: ItemState) -> ItemFacts:
    """The facts of a folded item (fold only the events up to the instant wanted)."""
    node, unit = handler(state)
    yellow_from, red_from = rules.colour_thresholds(state)
    accepted = state.status in (Status.ACCEPTED, Status.CLOSED)
    return ItemFacts(
        item=state.item,
        title=state.title,
        node=node,
        unit=unit,
        board=state.board,
        status=str(state.status),
        assigned_at=state.assigned_at,
        deploy_due=state.deploy.due,
        feedback_due=state.first_feedback.due,
        resolve_due=state.resolve.due,
        progress=state.progress,
        finished_at=finished_at(state),
        accepted=accepted,
        on_time=bool(state.resolve.met) if accepted else None,
        yellow_from=yellow_from,
        red_from=red_from,
    )


def _contribution(facts: ItemFacts, start: int, end: int, as_of: int) -> dict[str, int]:
    out = dict.fromkeys(COUNTS, 0)
    if facts.assigned_at > as_of:
        return out
    done = facts.finished_at
    if start <= facts.assigned_at < end:
        out["new"] = 1
    withdrawn_early = not facts.accepted and done is not None and done < facts.resolve_due
    if start <= facts.resolve_due < end and (done is None or done >= start) and not withdrawn_early:
        out["due"] = 1
        out["due_done"] = int(facts.accepted and done is not None and done <= as_of)
    if facts.accepted and done is not None and start <= done < end and done <= as_of:
        out["closed"] = 1
        out["closed_on_time"] = int(bool(facts.on_time))
    if facts.is_open(as_of):
        colour = facts.colour(as_of)
        out["open"] = 1
        out[str(colour)] = 1
        out["overdue"] = int(colour is Colour.RED)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Overdue:
    facts: ItemFacts
    deadline: str
    due: int
    days: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    start: int
    end: int
    as_of: int
    totals: dict[str, int]
    nodes: dict[str, dict[str, int]]
    units: dict[tuple[str, str], dict[str, int]]
    overdue: list[Overdue] = field(default_factory=list)
    due: list[ItemFacts] = field(default_factory=list)


def summarise(facts: Iterable[ItemFacts], *, start: int, end: int, as_of: int) -> Summary:
    """Counts over the items for the period ``[start, end)`` seen at ``as_of``.

    Node counts cover every item assigned to the node, unit counts the items
    handled by that unit. Overdue items are listed longest overdue first, due
    items by deadline; both then by item id.
    """
    totals = dict.fromkeys(COUNTS, 0)
    nodes: dict[str, dict[str, int]] = {}
    units: dict[tuple[str, str], dict[str, int]] = {}
    overdue: list[Overdue] = []
    due: list[ItemFacts] = []
    for f in facts:
        part = _contribution(f, start, end, as_of)
        if not any(part.values()):
            continue
        buckets = [totals, nodes.setdefault(f.node, dict.fromkeys(COUNTS, 0))]
        if f.unit is not None:
            buckets.append(units.setdefault((f.node, f.unit), dict.fromkeys(COUNTS, 0)))
        for bucket in buckets:
            for name, value in part.items():
                bucket[name] += value
        if part["overdue"] and f.red_from is not None:
            deadline = f.overdue_deadline() or "resolve"
            late = as_of - (f.red_from - 1)
            overdue.append(
                Overdue(facts=f, deadline=deadline, due=f.red_from - 1, days=-(-late // DAY))
            )
        if part["due"]:
            due.append(f)
    overdue.sort(key=lambda o: (o.due, o.facts.item))
    due.sort(key=lambda f: (f.resolve_due, f.item))
    return Summary(
        start=start, end=end, as_of=as_of, totals=totals,
        nodes=dict(sorted(nodes.items())), units=dict(sorted(units.items())),
        overdue=overdue, due=due,
    )


def on_time_rate(counts: dict[str, int]) -> float | None:
    """按期办结率: the share of closed items resolved by their deadline (None: none closed)."""
    if not counts["closed"]:
        return None
    return round(counts["closed_on_time"] / counts["closed"], 4)
