"""Incentive points (督查激励积分) per unit and per node per quarter, from item events.

Pure: signed item events in, point lines out. Every point line names the
event ids behind it (the event that earned or lost the point and the event
that set the deadline it was measured against), so a bulletin can be checked
line by line against the items' verified histories. docs/reports.md has the
rules with a worked example.

Rules (amounts from the ``[scores]`` configuration):

================== ======================================================== =====
rule               when                                                      sign
================== ======================================================== =====
deploy_on_time     ``item.deployed`` at or before the deploy deadline          +
late_deploy        ``item.deployed`` after it                                  -
feedback_on_time   the first feedback (or resolution) by the feedback deadline +
late_feedback      the first feedback (or resolution) after it                 -
resolved_excellent accepted and graded excellent (优秀)                         +
resolved_qualified accepted and graded qualified (合格)                         +
returned           each ``item.reviewed`` with outcome "return"               -
unfinished         open at the quarter's end with a 1-3-7 deadline passed     -
urged              each ``item.urged`` (催办) the handling unit receives       -
monthly_missed     each monthly report date under an approved plan passed    -
                   before the next report (feedback or resolution)
================== ======================================================== =====

A step is measured against the deadline in force when it was done (for the
resolution: when it was accepted; an approved extension request or plan moves
it), so a line never changes once earned. A line
belongs to the quarter (China time) of its event's ``at``, and to the unit
handling the item at that moment (``assignee_unit``, else ``lead_unit``) of the
assignee node. ``unfinished`` is dated at the quarter's last millisecond;
while a quarter is still running it counts the items overdue at ``as_of``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Final

from node.queries.periods import Quarter
from protocol.events import (
    Assigned,
    Deployed,
    Event,
    ExtensionDecided,
    Feedback,
    PlanDecided,
    Resolved,
    Reviewed,
    Updated,
    Urged,
)
from protocol.fold import ItemState, Status, apply, can_apply, default_grade, sort_key
from protocol.rules import add_month

Pair = tuple[str, Event]

RULES: Final = (
    "deploy_on_time",
    "late_deploy",
    "feedback_on_time",
    "late_feedback",
    "resolved_excellent",
    "resolved_qualified",
    "returned",
    "unfinished",
    "urged",
    "monthly_missed",
)
_GRADE_RULES: Final = {"excellent": "resolved_excellent", "qualified": "resolved_qualified"}
"""The award of each closing grade; an acceptance graded unqualified (不合格) earns none."""
DEDUCTIONS: Final = frozenset(
    {"late_deploy", "late_feedback", "returned", "unfinished", "urged", "monthly_missed"}
)
MAX_MISSED_MONTHS: Final = 120
"""The most monthly reports one late report counts as missed (ten years of them)."""
MAX_POINTS: Final = Decimal(1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreRules:
    """Points per rule; deductions are written as positive amounts and subtracted."""

    deploy_on_time: Decimal = Decimal("0.5")
    late_deploy: Decimal = Decimal("0.5")
    feedback_on_time: Decimal = Decimal("1")
    late_feedback: Decimal = Decimal("1")
    resolved_excellent: Decimal = Decimal("3")
    resolved_qualified: Decimal = Decimal("1")
    returned: Decimal = Decimal("1")
    unfinished: Decimal = Decimal("2")
    urged: Decimal = Decimal("0.5")
    monthly_missed: Decimal = Decimal("0.5")

    def __post_init__(self) -> None:
        for rule in RULES:
            value = getattr(self, rule)
            if type(value) is not Decimal or not value.is_finite() or not 0 <= value <= MAX_POINTS:
                raise ValueError(f"scores.{rule} must be a number from 0 to {MAX_POINTS}")

    @classmethod
    def from_numbers(cls, values: Mapping[str, float | int | Decimal]) -> ScoreRules:
        """From plain numbers (the configuration's floats), read exactly as written."""
        converted = {}
        for rule, value in values.items():
            if rule not in RULES:
                raise ValueError(f"no score rule {rule!r}")
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
                raise ValueError(f"scores.{rule} must be a number")
            converted[rule] = Decimal(str(value))
        return cls(**converted)

    def points(self, rule: str) -> Decimal:
        """The signed points of one line under ``rule``."""
        value: Decimal = getattr(self, rule)
        return -value if rule in DEDUCTIONS else value

    def to_dict(self) -> dict[str, int | float]:
        return {rule: number(getattr(self, rule)) for rule in RULES}


def number(value: Decimal) -> int | float:
    """A JSON number: an integer when the value is whole."""
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class PointLine:
    """One award or deduction, with the events it rests on."""

    item: str
    title: str
    node: str
    unit: str | None
    rule: str
    points: Decimal
    at: int
    events: tuple[str, ...]
    deadlines: tuple[str, ...] = ()
    due: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "item": self.item,
            "title": self.title,
            "node": self.node,
            "unit": self.unit,
            "rule": self.rule,
            "points": number(self.points),
            "at": self.at,
            "events": list(self.events),
            "deadlines": list(self.deadlines),
            "due": self.due,
        }


# -- walking an item's history -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Step:
    event_id: str
    event: Event
    before: ItemState | None
    after: ItemState
    due_set_by: Mapping[str, str]
    resolution: str | None
    monthly_from: str | None = None
    """The event the monthly report date in force before this one counts from (the
    plan's approval, or the latest feedback since)."""


def walk(pairs: Iterable[Pair]) -> list[_Step]:
    """The applied events in fold order, each with the state before and after it.

    The last step's ``after`` is ``protocol.fold.fold`` of the same events.
    Refused events are skipped: they change nothing and earn nothing.
    """
    unique: dict[str, Event] = {}
    for event_id, event in pairs:
        if unique.setdefault(event_id, event) != event:
            raise ValueError(f"two different events share the id {event_id}")
    steps: list[_Step] = []
    state: ItemState | None = None
    due_set_by: dict[str, str] = {}
    resolution: str | None = None
    for event_id, event in sorted(unique.items(), key=lambda pair: sort_key(*pair)):
        if state is None:
            if can_apply(None, event) is not None:
                continue
            after = apply(None, event_id, event)
        else:
            after = apply(state, event_id, event)
            if len(after.applied) == len(state.applied):
                continue
        monthly_from = due_set_by.get("monthly")
        match event:
            case Assigned():
                due_set_by = dict.fromkeys(("deploy", "feedback", "resolve"), event_id)
            case Updated() if event.deadlines is not None:
                due_set_by = dict.fromkeys(("deploy", "feedback", "resolve"), event_id)
            case PlanDecided() if event.approved:
                due_set_by = {**due_set_by, "resolve": event_id, "monthly": event_id}
            case ExtensionDecided() if event.approved:
                due_set_by = {**due_set_by, "resolve": event_id}
            case Feedback():
                due_set_by = {**due_set_by, "monthly": event_id}
            case Resolved():
                resolution = event_id
        steps.append(
            _Step(event_id, event, state, after, dict(due_set_by), resolution, monthly_from)
        )
        state = after
    return steps


def handler(state: ItemState) -> tuple[str, str | None]:
    """(node, unit) handling the item: the assignee node and its unit, if any."""
    return state.assignee, state.assignee_unit or state.lead_unit


def finished_at(state: ItemState) -> int | None:
    """When the item stopped needing work: its acceptance or its withdrawal."""
    if state.status is Status.WITHDRAWN:
        return state.withdrawn_at
    if state.status in (Status.ACCEPTED, Status.CLOSED):
        return state.reviewed_at
    return None


def _ids(*ids: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in ids if i is not None))


def event_lines(steps: Sequence[_Step], rules: ScoreRules) -> list[PointLine]:
    """Every line the events of a walk earn or lose, whatever their quarter (no
    ``unfinished``: that one is judged at an instant)."""
    lines: list[PointLine] = []

    def add(step: _Step, rule: str, events: tuple[str, ...], deadline: str, due: int) -> None:
        node, unit = handler(step.after)
        lines.append(
            PointLine(
                item=step.after.item, title=step.after.title, node=node, unit=unit, rule=rule,
                points=rules.points(rule), at=step.event.at, events=events,
                deadlines=(deadline,), due=due,
            )
        )

    for step in steps:
        before, after, event = step.before, step.after, step.event
        if before is None:
            continue
        if isinstance(event, Deployed):
            due = before.deploy.due
            rule = "deploy_on_time" if event.at <= due else "late_deploy"
            add(step, rule, _ids(step.event_id, step.due_set_by["deploy"]), "deploy", due)
        if before.first_feedback.done_at is None and after.first_feedback.done_at is not None:
            due = before.first_feedback.due
            rule = "feedback_on_time" if event.at <= due else "late_feedback"
            add(step, rule, _ids(step.event_id, step.due_set_by["feedback"]), "feedback", due)
        if isinstance(event, Feedback | Resolved) and before.monthly_due is not None:
            # Each monthly report date (按月反馈) passed before this report: one missed.
            due, missed = before.monthly_due, 0
            while event.at > due and missed < MAX_MISSED_MONTHS:
                add(step, "monthly_missed", _ids(step.event_id, step.monthly_from),
                    "monthly", due)
                due, missed = add_month(due, "natural")[0], missed + 1
        if isinstance(event, Urged):
            add(step, "urged", _ids(step.event_id, step.due_set_by["resolve"]), "resolve",
                before.resolve.due)
        if isinstance(event, Reviewed):
            if event.outcome == "return":
                add(step, "returned", _ids(step.event_id, step.resolution), "resolve",
                    before.resolve.due)
            else:
                # The signed grade (评价) decides; an acceptance signed before grades
                # gets the rules' default, which is what the node then computed.
                grade = event.grade or default_grade(before)
                award = _GRADE_RULES.get(grade)
                if award is not None:
                    events = _ids(step.event_id, step.resolution, step.due_set_by["resolve"])
                    add(step, award, events, "resolve", after.resolve.due)
    return lines


# -- one item, one quarter -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemScore:
    """What one item contributes to a quarter.

    ``state`` is the item as of the quarter's end (or ``as_of``), None when it
    was not assigned yet; ``active`` says whether it was open at some moment of
    the quarter, which makes its handler a participant in the ranking even with
    no point line.
    """

    item: str
    state: ItemState | None
    active: bool
    lines: tuple[PointLine, ...]


def score_item(
    pairs: Sequence[Pair], rules: ScoreRules, quarter: Quarter, as_of: int | None = None
) -> ItemScore:
    """The point lines of one item (all its events, in any order) within ``quarter``.

    ``as_of`` (unix ms) cuts a quarter still running: nothing after it counts,
    and ``unfinished`` is judged at that instant instead of the quarter's end.
    """
    instant = quarter.end - 1 if as_of is None else min(quarter.end - 1, as_of)
    steps = walk(pairs)
    lines = [
        line
        for line in event_lines(steps, rules)
        if quarter.start <= line.at <= instant
    ]
    if all(s.event.at <= instant for s in steps):
        upto = steps
    else:  # the fold of the events dated up to the instant
        upto = walk([p for p in pairs if p[1].at <= instant])
    if not upto:
        item = lines[0].item if lines else ""
        return ItemScore(item=item, state=None, active=False, lines=tuple(lines))
    last = upto[-1]
    state = last.after
    done_at = finished_at(state)
    active = done_at is None or done_at >= quarter.start
    overdue = [
        (name, deadline.due)
        for name, deadline in (
            ("deploy", state.deploy),
            ("feedback", state.first_feedback),
            ("resolve", state.resolve),
        )
        if deadline.done_at is None and deadline.due < instant
    ]
    if done_at is None and overdue:
        node, unit = handler(state)
        lines.append(
            PointLine(
                item=state.item, title=state.title, node=node, unit=unit, rule="unfinished",
                points=rules.points("unfinished"), at=instant,
                events=_ids(state.applied[0], *(last.due_set_by[n] for n, _ in overdue)),
                deadlines=tuple(n for n, _ in overdue),
                due=min(due for _, due in overdue),
            )
        )
    lines.sort(key=lambda line: (line.at, RULES.index(line.rule)))
    return ItemScore(item=state.item, state=state, active=active, lines=tuple(lines))


# -- standings and ranking -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Standing:
    """A unit's (``unit`` set) or a node's (``unit`` None) quarter: points and rank."""

    node: str
    unit: str | None
    rank: int
    total: Decimal
    gained: Decimal
    deducted: Decimal
    counts: Mapping[str, int]
    items: int
    lines: tuple[PointLine, ...] = field(default=())

    def sort_key(self) -> tuple[Decimal, Decimal, int]:
        """Higher total first; then fewer deduction points; then more excellent."""
        return (-self.total, self.deducted, -self.counts.get("resolved_excellent", 0))

    def to_dict(self, *, with_lines: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "node": self.node,
            "unit": self.unit,
            "rank": self.rank,
            "total": number(self.total),
            "gained": number(self.gained),
            "deducted": number(self.deducted),
            "counts": dict(self.counts),
            "items": self.items,
        }
        if with_lines:
            out["lines"] = [line.to_dict() for line in self.lines]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarterScores:
    quarter: Quarter
    rules: ScoreRules
    as_of: int
    final: bool
    units: tuple[Standing, ...]
    nodes: tuple[Standing, ...]


def _standing(node: str, unit: str | None, lines: list[PointLine], items: int) -> Standing:
    gained = sum((ln.points for ln in lines if ln.points > 0), Decimal(0))
    deducted = -sum((ln.points for ln in lines if ln.points < 0), Decimal(0))
    counts = {rule: sum(1 for ln in lines if ln.rule == rule) for rule in RULES}
    ordered = tuple(sorted(lines, key=lambda ln: (ln.at, ln.item, RULES.index(ln.rule))))
    return Standing(
        node=node, unit=unit, rank=0, total=gained - deducted, gained=gained,
        deducted=deducted, counts=counts, items=items, lines=ordered,
    )


def rank(standings: Iterable[Standing]) -> tuple[Standing, ...]:
    """Ordered best first, with ranks.

    Ties on the total are broken by fewer deduction points, then by more
    excellent resolutions. Entries equal on all three share a rank (1, 2, 2, 4)
    and are listed by node id, then unit code.
    """
    ordered = sorted(standings, key=lambda s: (s.sort_key(), s.node, s.unit or ""))
    out: list[Standing] = []
    for position, standing in enumerate(ordered, start=1):
        tied = bool(out) and out[-1].sort_key() == standing.sort_key()
        out.append(replace(standing, rank=out[-1].rank if tied else position))
    return tuple(out)


def tally(
    scores: Iterable[ItemScore],
    rules: ScoreRules,
    quarter: Quarter,
    as_of: int | None = None,
) -> QuarterScores:
    """Per-unit and per-node standings of the quarter, ranked.

    A node's standing counts every item assigned to it, whichever unit handles
    it (or none); a unit's counts the items of that unit. Participants are the
    handlers of items open at some moment of the quarter, and anyone with a line.
    """
    unit_lines: dict[tuple[str, str], list[PointLine]] = {}
    node_lines: dict[str, list[PointLine]] = {}
    unit_items: dict[tuple[str, str], set[str]] = {}
    node_items: dict[str, set[str]] = {}
    for score in scores:
        if score.state is not None and (score.active or score.lines):
            node, unit = handler(score.state)
            node_items.setdefault(node, set()).add(score.item)
            node_lines.setdefault(node, [])
            if unit is not None:
                unit_items.setdefault((node, unit), set()).add(score.item)
                unit_lines.setdefault((node, unit), [])
        for line in score.lines:
            node_lines.setdefault(line.node, []).append(line)
            node_items.setdefault(line.node, set()).add(line.item)
            if line.unit is not None:
                unit_lines.setdefault((line.node, line.unit), []).append(line)
                unit_items.setdefault((line.node, line.unit), set()).add(line.item)
    instant = quarter.end - 1 if as_of is None else min(quarter.end - 1, as_of)
    return QuarterScores(
        quarter=quarter,
        rules=rules,
        as_of=instant,
        final=instant == quarter.end - 1,
        units=rank(
            _standing(node, unit, lines, len(unit_items[(node, unit)]))
            for (node, unit), lines in unit_lines.items()
        ),
        nodes=rank(
            _standing(node, None, lines, len(node_items[node]))
            for node, lines in node_lines.items()
        ),
    )
