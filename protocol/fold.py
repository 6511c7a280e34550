"""The item state: a deterministic fold of an item's signed events.

Every node holding the same set of events computes the same :class:`ItemState`
whatever order they arrived in: :func:`fold` sorts them by
``(lamport, origin, seq, event_id)`` and applies them one by one. An event
that does not fit at its place (signed by the wrong party, addressed to the
wrong node, after the item was closed or withdrawn, out of turn, a reused
origin sequence...) changes nothing and is listed in ``state.refused`` with its
reason code, so the refusal is part of the deterministic result and is kept for
audit. :func:`can_apply` is the same check, for a node that refuses an action
(HTTP 409) before signing it.

Status transitions (docs/rules.md has the table)::

    assigned --deployed--> deployed --feedback--> reporting
    deployed/reporting/planned/returned --plan approved--> planned
    deployed/reporting/planned/returned --resolved--> resolved
    resolved --reviewed accept--> accepted --closed--> closed
    resolved --reviewed return--> returned
    any open status --withdrawn--> withdrawn        (not once accepted)

Under an approved plan a progress report is owed monthly (``monthly_due``); a
feedback may be signed ``monthly`` only then. The supervision acts change no
status (docs/rules.md, "Urging, instructions, extensions"): ``item.urged``
(while the item waits on its handling node: assigned, deployed, reporting,
planned, returned) and ``item.instructed`` (while open) are
listed on the item; a feedback may answer one instruction (``answers``).
``item.extension_requested`` (same statuses as an urge, one pending at a time,
before the resolve deadline — after it the reason is ``extension_too_late`` —
and for a later date) waits for ``item.extension_decided`` naming it, whose
approval moves the resolve deadline to the date asked (the old one stays in
the extension's record).

Deadline bookkeeping: ``deploy`` is done by ``item.deployed``; ``first_feedback``
by the first ``item.feedback`` or ``item.resolved``; ``resolve`` by
``item.resolved`` and undone again when the resolution is returned. Done times
are the author's ``at``. ``met`` compares the done time with the current due,
so an assigner who extends a deadline (by approving an extension or a plan,
whose last milestone becomes the resolve deadline; or by ``item.updated``, which
nodes no longer sign for deadlines but which still folds) changes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from operator import attrgetter
from typing import Any, Final

from protocol import errors, rules
from protocol.errors import ProtocolError
from protocol.events import (
    Assigned,
    Closed,
    Deployed,
    Event,
    ExtensionDecided,
    ExtensionRequested,
    Feedback,
    FileRef,
    Instructed,
    Milestone,
    PlanDecided,
    PlanSubmitted,
    Resolved,
    Reviewed,
    Updated,
    Urged,
    Withdrawn,
)
from protocol.ownership import Refusal, check_signer


class Status(StrEnum):
    ASSIGNED = "assigned"
    DEPLOYED = "deployed"
    REPORTING = "reporting"
    PLANNED = "planned"
    RESOLVED = "resolved"
    RETURNED = "returned"
    ACCEPTED = "accepted"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


_HANDLING: Final = frozenset({Status.DEPLOYED, Status.REPORTING, Status.PLANNED, Status.RETURNED})
_WAITING: Final = _HANDLING | {Status.ASSIGNED}
"""Open and waiting on the handling node: what an urge or an extension request is for."""
_OPEN: Final = _HANDLING | {Status.ASSIGNED, Status.RESOLVED}
DONE: Final = frozenset({Status.ACCEPTED, Status.CLOSED, Status.WITHDRAWN})


class PlanStatus(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadline:
    """One 13710 deadline: when it is due and when its step was done."""

    due: int
    done_at: int | None = None

    @property
    def met(self) -> bool | None:
        """None while pending, else whether the step was done by the due time."""
        return None if self.done_at is None else self.done_at <= self.due


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A plan submitted by the assignee and what the assigner decided."""

    event_id: str
    milestones: tuple[Milestone, ...]
    note: str
    submitted_at: int
    status: PlanStatus = PlanStatus.SUBMITTED
    decided_at: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """One feedback report, as received."""

    event_id: str
    at: int
    text: str
    progress: int
    attachments: tuple[bytes, ...]
    milestone: int | None
    files: tuple[FileRef, ...] = ()
    """Name, size and type of each attachment, when the report gave them."""
    answers: str | None = None
    """The event id of the instruction this report answers (落实批示情况)."""
    monthly: bool = False
    """Signed as the month's progress report under an approved plan."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Urge:
    """One urge (催办): when, by which node and person, what was said."""

    event_id: str
    at: int
    by: str
    author: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Instruction:
    """One leader's instruction (批示) and the reports that answered it."""

    event_id: str
    at: int
    by: str
    author: str
    text: str
    answered_by: tuple[str, ...] = ()
    """Event ids of the feedback reports naming it in ``answers``, in fold order."""


class ExtensionStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True, kw_only=True)
class Extension:
    """One extension request (延期申请) and its decision."""

    event_id: str
    at: int
    reason: str
    progress: str
    deadline: int
    """The resolve deadline asked for."""
    old_due: int
    """The resolve deadline when it was asked."""
    status: ExtensionStatus = ExtensionStatus.PENDING
    decided_at: int | None = None
    decision: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemState:
    """Everything known about an item after folding its events."""

    item: str
    title: str
    description: str
    board: str
    source: str
    item_class: str
    calendar: str
    assigner: str
    assignee: str
    assignee_unit: str | None
    lead_unit: str | None
    co_units: tuple[str, ...]
    parent_item: str | None
    assigned_at: int
    status: Status
    deploy: Deadline
    first_feedback: Deadline
    resolve: Deadline
    plan: Plan | None = None
    approved_plan: Plan | None = None
    milestones_reached: tuple[int, ...] = ()
    feedback: tuple[Report, ...] = ()
    progress: int = 0
    resolution: str | None = None
    resolution_attachments: tuple[bytes, ...] = ()
    resolution_files: tuple[FileRef, ...] = ()
    cascade: str | None = None
    urges: tuple[Urge, ...] = ()
    instructions: tuple[Instruction, ...] = ()
    extensions: tuple[Extension, ...] = ()
    review_outcome: str | None = None
    review_reason: str | None = None
    reviewed_at: int | None = None
    grade: str | None = None
    """The closing grade (评价) of the accepted resolution: one of
    :data:`~protocol.events.GRADES`, or None (not accepted, or accepted before
    grades were signed; :func:`default_grade` says what the rules would give)."""
    returns: int = 0
    closed_at: int | None = None
    withdrawn_at: int | None = None
    end_note: str | None = None
    last_event_at: int = 0
    applied: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()
    sequences: frozenset[tuple[str, int]] = frozenset()

    @property
    def done(self) -> bool:
        return self.status in DONE

    @property
    def extension_pending(self) -> Extension | None:
        """The extension request awaiting the assigner's decision, if any."""
        last = self.extensions[-1] if self.extensions else None
        return last if last is not None and last.status is ExtensionStatus.PENDING else None

    @property
    def unanswered_instructions(self) -> tuple[Instruction, ...]:
        """The instructions no feedback has answered yet (the handling unit's to-do)."""
        return tuple(i for i in self.instructions if not i.answered_by)

    @property
    def unanswered_urges(self) -> tuple[Urge, ...]:
        """The urges since the handling node's last feedback, in fold order: an urge
        waits on the handling unit until its next report (feedback, or the resolution,
        which ends the waiting anyway)."""
        if not self.urges:
            return ()
        if not self.feedback:
            return self.urges
        position = {event_id: i for i, event_id in enumerate(self.applied)}
        last = position[self.feedback[-1].event_id]
        return tuple(u for u in self.urges if position[u.event_id] > last)

    @property
    def monthly_due(self) -> int | None:
        """When the next monthly progress report is due under the approved plan
        (按月反馈进展情况; docs/rules.md): one natural month after the plan's approval
        or after the latest feedback since then, whichever is later; None without an
        approved plan, or once the item is resolved or done."""
        plan = self.approved_plan
        if plan is None or plan.decided_at is None or self.status not in _HANDLING:
            return None
        since = max(plan.decided_at, self.feedback[-1].at if self.feedback else 0)
        return rules.add_month(since, "natural")[0]

    @property
    def plan_pending(self) -> bool:
        return self.plan is not None and self.plan.status is PlanStatus.SUBMITTED

    def pending_milestones(self) -> tuple[tuple[int, Milestone], ...]:
        """The approved plan's milestones not yet reported reached, with their index.

        The last milestone is the resolve deadline itself and is tracked as such.
        """
        if self.approved_plan is None:
            return ()
        steps = self.approved_plan.milestones[:-1]
        return tuple((i, m) for i, m in enumerate(steps) if i not in self.milestones_reached)

    def colour(self, at: int, policy: rules.ReminderPolicy = rules.DEFAULT_POLICY) -> rules.Colour:
        """The 绿黄红 colour at instant ``at`` (unix ms); see :func:`protocol.rules.colour`."""
        return rules.colour(self, at, policy)

    def reminders(
        self, policy: rules.ReminderPolicy = rules.DEFAULT_POLICY
    ) -> tuple[rules.Reminder, ...]:
        return rules.reminders(self, policy)

    def to_dict(self) -> dict[str, object]:
        """A plain JSON-able dict (bytes as hex), for vectors, APIs and exports."""

        def deadline(d: Deadline) -> dict[str, object]:
            return {"due": d.due, "done_at": d.done_at, "met": d.met}

        def files(refs: tuple[FileRef, ...]) -> list[dict[str, object]]:
            return [
                {"digest": f.digest.hex(), "name": f.name, "size": f.size, "type": f.type}
                for f in refs
            ]

        def plan(p: Plan | None) -> dict[str, object] | None:
            if p is None:
                return None
            return {
                "event_id": p.event_id,
                "milestones": [{"title": m.title, "due": m.due} for m in p.milestones],
                "note": p.note,
                "submitted_at": p.submitted_at,
                "status": p.status.value,
                "decided_at": p.decided_at,
                "reason": p.reason,
            }

        return {
            "item": self.item,
            "title": self.title,
            "description": self.description,
            "board": self.board,
            "source": self.source,
            "class": self.item_class,
            "calendar": self.calendar,
            "assigner": self.assigner,
            "assignee": self.assignee,
            "assignee_unit": self.assignee_unit,
            "lead_unit": self.lead_unit,
            "co_units": list(self.co_units),
            "parent_item": self.parent_item,
            "cascade": self.cascade,
            "assigned_at": self.assigned_at,
            "status": self.status.value,
            "deadlines": {
                "deploy": deadline(self.deploy),
                "first_feedback": deadline(self.first_feedback),
                "resolve": deadline(self.resolve),
            },
            "plan": plan(self.plan),
            "approved_plan": plan(self.approved_plan),
            "milestones_reached": list(self.milestones_reached),
            "feedback": [
                {
                    "event_id": r.event_id,
                    "at": r.at,
                    "text": r.text,
                    "progress": r.progress,
                    "attachments": [a.hex() for a in r.attachments],
                    "milestone": r.milestone,
                    "files": files(r.files),
                    "answers": r.answers,
                    "monthly": r.monthly,
                }
                for r in self.feedback
            ],
            "urges": [
                {"event_id": u.event_id, "at": u.at, "by": u.by, "author": u.author,
                 "text": u.text}
                for u in self.urges
            ],
            "instructions": [
                {"event_id": i.event_id, "at": i.at, "by": i.by, "author": i.author,
                 "text": i.text, "answered_by": list(i.answered_by)}
                for i in self.instructions
            ],
            "extensions": [
                {"event_id": x.event_id, "at": x.at, "reason": x.reason,
                 "progress": x.progress, "deadline": x.deadline, "old_due": x.old_due,
                 "status": x.status.value, "decided_at": x.decided_at,
                 "decision": x.decision}
                for x in self.extensions
            ],
            "progress": self.progress,
            "resolution": self.resolution,
            "resolution_attachments": [a.hex() for a in self.resolution_attachments],
            "resolution_files": files(self.resolution_files),
            "review_outcome": self.review_outcome,
            "review_reason": self.review_reason,
            "reviewed_at": self.reviewed_at,
            "grade": self.grade,
            "returns": self.returns,
            "closed_at": self.closed_at,
            "withdrawn_at": self.withdrawn_at,
            "end_note": self.end_note,
            "last_event_at": self.last_event_at,
            "applied": list(self.applied),
            "refused": [list(r) for r in self.refused],
        }


def default_grade(state: ItemState) -> str:
    """The grade (评价) the rules give a resolution awaiting review, if accepted now
    (docs/rules.md, "The grade"): ``excellent`` when it was never returned and
    was made by the resolve deadline in force; ``qualified`` otherwise. The rules
    never default to ``unqualified``: that is the reviewer's judgement, with a
    reason."""
    done = state.resolve.done_at
    on_time = done is not None and done <= state.resolve.due
    return "excellent" if on_time and state.returns == 0 else "qualified"


# -- checking ------------------------------------------------------------------------------


def _invalid(state: ItemState, event: Event, why: str) -> Refusal:
    return Refusal(
        reason=errors.INVALID_TRANSITION,
        detail=f"{event.TYPE} while {state.status.value}: {why}",
    )


def _transition(state: ItemState, event: Event) -> Refusal | None:
    status = state.status
    match event:
        case Assigned():
            return _invalid(state, event, "the item is already assigned")
        case Updated() | Withdrawn():
            if status not in _OPEN:
                return _invalid(state, event, "an accepted item can only be closed")
        case Deployed():
            if status is not Status.ASSIGNED:
                return _invalid(state, event, "already deployed")
        case Feedback():
            if status not in _HANDLING:
                return _invalid(state, event, "feedback is for a deployed, open item")
            if event.answers is not None and all(
                i.event_id != event.answers for i in state.instructions
            ):
                return _invalid(state, event, "no such instruction on this item")
            if event.monthly and state.approved_plan is None:
                return _invalid(state, event, "a monthly report is for an approved plan")
            if event.milestone is not None and (
                state.approved_plan is None
                or event.milestone >= len(state.approved_plan.milestones)
            ):
                return _invalid(state, event, "no such milestone in the approved plan")
        case PlanSubmitted():
            if status not in _HANDLING:
                return _invalid(state, event, "a plan is for a deployed, open item")
            if state.plan_pending:
                return _invalid(state, event, "a plan already awaits a decision")
        case PlanDecided():
            if not state.plan_pending:
                return _invalid(state, event, "no plan awaits a decision")
            if status not in _HANDLING and status is not Status.RESOLVED:
                return _invalid(state, event, "the item is not being handled")
        case Resolved():
            if status not in _HANDLING:
                return _invalid(state, event, "only a deployed, open item is resolved")
        case Reviewed():
            if status is not Status.RESOLVED:
                return _invalid(state, event, "nothing awaits review")
            if (
                event.grade is not None
                and event.grade != default_grade(state)
                and not event.reason.strip()
            ):
                return Refusal(
                    reason=errors.GRADE_NEEDS_REASON,
                    detail=f"{event.TYPE}: the grade {event.grade} differs from the "
                    f"rules' default {default_grade(state)}; the reviewer says why",
                )
        case Closed():
            if status is not Status.ACCEPTED:
                return _invalid(state, event, "only an accepted item is closed")
        case Urged():
            if status not in _WAITING:
                return _invalid(state, event, "only an item waiting on its handling node is urged")
        case Instructed():
            if status not in _OPEN:
                return _invalid(state, event, "instructions are for an open item")
        case ExtensionRequested():
            if status not in _WAITING:
                return _invalid(state, event, "an extension is for an item being handled")
            if state.extension_pending is not None:
                return _invalid(state, event, "an extension request already awaits a decision")
            if event.at >= state.resolve.due:
                return Refusal(
                    reason=errors.EXTENSION_TOO_LATE,
                    detail=f"{event.TYPE}: the resolve deadline passed before the request; "
                    "an extension is asked before the deadline",
                )
            if event.deadline <= state.resolve.due:
                return _invalid(state, event, "the new deadline must be later than the current one")
        case ExtensionDecided():
            pending = state.extension_pending
            if pending is None:
                return _invalid(state, event, "no extension request awaits a decision")
            if pending.event_id != event.request:
                return _invalid(state, event, "the request decided is not the pending one")
            if status not in _OPEN:
                return _invalid(state, event, "the item is no longer open")
    return None


def can_apply(state: ItemState | None, event: Event) -> Refusal | None:
    """None if ``event`` applies to ``state`` (None: the item is not assigned yet),
    else the refusal the fold would record. The node calls this before signing."""
    if state is None:
        if not isinstance(event, Assigned):
            return Refusal(reason=errors.UNKNOWN_ITEM, detail=f"{event.item} is not assigned")
        return check_signer(event, event.assigner, event.assignee)
    if event.item != state.item:
        return Refusal(reason=errors.WRONG_ITEM, detail=f"{event.item} is not {state.item}")
    if (event.origin, event.seq) in state.sequences:
        return Refusal(
            reason=errors.DUPLICATE_SEQUENCE,
            detail=f"{event.origin} already used sequence {event.seq} on this item",
        )
    refusal = check_signer(event, state.assigner, state.assignee)
    if refusal is not None:
        return refusal
    if state.status is Status.CLOSED:
        return Refusal(reason=errors.ITEM_CLOSED, detail=state.item)
    if state.status is Status.WITHDRAWN:
        return Refusal(reason=errors.ITEM_WITHDRAWN, detail=state.item)
    return _transition(state, event)


# -- applying ------------------------------------------------------------------------------

_STATE_FIELDS: Final = tuple(f.name for f in fields(ItemState))
_state_values: Final = attrgetter(*_STATE_FIELDS)


def _evolve(state: ItemState, **changes: Any) -> ItemState:
    """``dataclasses.replace(state, **changes)``, cheaper (docs/performance.md,
    "Figures behind the code").

    ``replace`` looks the fields up again on each call and reads them one
    ``getattr`` at a time; a fold makes a new state per event, so this reads all
    37 with one precomputed ``attrgetter``. The same ``__init__`` runs (most of
    the cost: a frozen dataclass sets each field with ``object.__setattr__``),
    so an unknown name is the same ``TypeError``.
    """
    values = dict(zip(_STATE_FIELDS, _state_values(state), strict=True))
    values.update(changes)
    return ItemState(**values)


def _new(event_id: str, ev: Assigned, refused: tuple[tuple[str, str], ...] = ()) -> ItemState:
    return ItemState(
        item=ev.item,
        title=ev.title,
        description=ev.description,
        board=ev.board,
        source=ev.source,
        item_class=ev.item_class,
        calendar=ev.calendar,
        assigner=ev.assigner,
        assignee=ev.assignee,
        assignee_unit=ev.assignee_unit,
        lead_unit=ev.lead_unit,
        co_units=ev.co_units,
        parent_item=ev.parent_item,
        cascade=ev.cascade,
        assigned_at=ev.at,
        status=Status.ASSIGNED,
        deploy=Deadline(due=ev.deadlines.deploy),
        first_feedback=Deadline(due=ev.deadlines.feedback),
        resolve=Deadline(due=ev.deadlines.resolve),
        last_event_at=ev.at,
        applied=(event_id,),
        refused=refused,
        sequences=frozenset({(ev.origin, ev.seq)}),
    )


def _first(deadline: Deadline, at: int) -> Deadline:
    return deadline if deadline.done_at is not None else Deadline(due=deadline.due, done_at=at)


def _changes(s: ItemState, event_id: str, ev: Event) -> dict[str, Any]:
    """The fields ``ev`` changes, which :func:`can_apply` has accepted, as keyword
    arguments for the one new state :func:`apply` builds."""
    match ev:
        case Updated():
            changes: dict[str, Any] = {
                "title": s.title if ev.title is None else ev.title,
                "description": s.description if ev.description is None else ev.description,
                "lead_unit": s.lead_unit if ev.lead_unit is None else ev.lead_unit,
                "co_units": s.co_units if ev.co_units is None else ev.co_units,
                "assignee_unit": s.assignee_unit if ev.assignee_unit is None else ev.assignee_unit,
            }
            if ev.deadlines is not None:
                due = ev.deadlines
                changes["deploy"] = Deadline(due=due.deploy, done_at=s.deploy.done_at)
                changes["first_feedback"] = Deadline(
                    due=due.feedback, done_at=s.first_feedback.done_at
                )
                changes["resolve"] = Deadline(due=due.resolve, done_at=s.resolve.done_at)
            return changes
        case Withdrawn():
            return {"status": Status.WITHDRAWN, "withdrawn_at": ev.at, "end_note": ev.reason}
        case Deployed():
            return {"status": Status.DEPLOYED, "deploy": Deadline(due=s.deploy.due, done_at=ev.at)}
        case Feedback():
            reached = s.milestones_reached
            if ev.milestone is not None:
                reached = tuple(sorted({*reached, ev.milestone}))
            changes = {
                "status": Status.REPORTING if s.status is Status.DEPLOYED else s.status,
                "first_feedback": _first(s.first_feedback, ev.at),
                "feedback": (*s.feedback, _report(event_id, ev)),
                "progress": ev.progress,
                "milestones_reached": reached,
            }
            if ev.answers is not None:
                changes["instructions"] = tuple(
                    replace(i, answered_by=(*i.answered_by, event_id))
                    if i.event_id == ev.answers else i
                    for i in s.instructions
                )
            return changes
        case PlanSubmitted():
            plan = Plan(
                event_id=event_id, milestones=ev.milestones, note=ev.note, submitted_at=ev.at
            )
            return {"plan": plan}
        case PlanDecided():
            if s.plan is None:  # pragma: no cover - can_apply refuses it
                raise AssertionError("no plan to decide")
            decided = replace(
                s.plan,
                status=PlanStatus.APPROVED if ev.approved else PlanStatus.REJECTED,
                decided_at=ev.at,
                reason=ev.reason,
            )
            if not ev.approved:
                return {"plan": decided}
            return {
                "plan": decided,
                "approved_plan": decided,
                "milestones_reached": (),
                "resolve": Deadline(due=decided.milestones[-1].due, done_at=s.resolve.done_at),
                "status": Status.PLANNED if s.status in _HANDLING else s.status,
            }
        case Resolved():
            return {
                "status": Status.RESOLVED,
                "first_feedback": _first(s.first_feedback, ev.at),
                "resolve": Deadline(due=s.resolve.due, done_at=ev.at),
                "resolution": ev.text,
                "resolution_attachments": ev.attachments,
                "resolution_files": ev.files or (),
            }
        case Reviewed():
            changes = {
                "review_outcome": ev.outcome,
                "review_reason": ev.reason,
                "reviewed_at": ev.at,
            }
            if ev.outcome == "accept":
                changes["status"] = Status.ACCEPTED
                changes["grade"] = ev.grade
            else:
                changes["status"] = Status.RETURNED
                changes["returns"] = s.returns + 1
                changes["resolve"] = Deadline(due=s.resolve.due, done_at=None)
            return changes
        case Closed():
            return {"status": Status.CLOSED, "closed_at": ev.at, "end_note": ev.note}
        case Urged():
            urge = Urge(event_id=event_id, at=ev.at, by=ev.origin, author=ev.author, text=ev.text)
            return {"urges": (*s.urges, urge)}
        case Instructed():
            instruction = Instruction(
                event_id=event_id, at=ev.at, by=ev.origin, author=ev.author, text=ev.text
            )
            return {"instructions": (*s.instructions, instruction)}
        case ExtensionRequested():
            asked = Extension(
                event_id=event_id, at=ev.at, reason=ev.reason, progress=ev.progress,
                deadline=ev.deadline, old_due=s.resolve.due,
            )
            return {"extensions": (*s.extensions, asked)}
        case ExtensionDecided():
            pending = s.extensions[-1]
            answered = replace(
                pending,
                status=ExtensionStatus.APPROVED if ev.approved else ExtensionStatus.REFUSED,
                decided_at=ev.at,
                decision=ev.reason,
            )
            changes = {"extensions": (*s.extensions[:-1], answered)}
            if ev.approved:
                changes["resolve"] = Deadline(due=pending.deadline, done_at=s.resolve.done_at)
            return changes
    raise AssertionError(f"unhandled {ev.TYPE}")  # pragma: no cover - Assigned never gets here


def _report(event_id: str, ev: Feedback) -> Report:
    return Report(
        event_id=event_id,
        at=ev.at,
        text=ev.text,
        progress=ev.progress,
        attachments=ev.attachments,
        milestone=ev.milestone,
        files=ev.files or (),
        answers=ev.answers,
        monthly=bool(ev.monthly),
    )


def apply(state: ItemState | None, event_id: str, event: Event) -> ItemState:
    """``state`` after ``event``: applied, or listed in ``refused`` when it does not fit.

    Only equal to :func:`fold` when events come in fold order (a node's own new
    event always does: its Lamport clock is the highest). Raises ``unknown_item``
    when there is no state yet and ``event`` is not the assignment.
    """
    refusal = can_apply(state, event)
    if state is None:
        if refusal is not None:
            raise refusal.error()
        if not isinstance(event, Assigned):  # pragma: no cover - can_apply refuses it
            raise AssertionError("only an assignment starts an item")
        return _new(event_id, event)
    if refusal is not None:
        return _evolve(state, refused=(*state.refused, (event_id, refusal.reason)))
    # One new state per event: the bookkeeping and the event's own changes together.
    return _evolve(
        state,
        applied=(*state.applied, event_id),
        sequences=state.sequences | {(event.origin, event.seq)},
        last_event_at=event.at,
        **_changes(state, event_id, event),
    )


def sort_key(event_id: str, event: Event) -> tuple[int, str, int, str]:
    """The fold order: (Lamport clock, origin, origin sequence, event id)."""
    return (event.lamport, event.origin, event.seq, event_id)


def fold(events: Iterable[tuple[str, Event]]) -> ItemState:
    """The state of one item from its (event id, event) pairs, in any order.

    Events sorted before the assignment are refused ``unknown_item``; if no
    assignment applies at all there is no item and ``unknown_item`` is raised.
    The same event id given twice counts once.
    """
    unique: dict[str, Event] = {}
    for event_id, event in events:
        known = unique.setdefault(event_id, event)
        # Usually `known` is `event` itself, first seen: comparing it field by field is waste.
        if known is not event and known != event:
            raise ValueError(f"two different events share the id {event_id}")
    state: ItemState | None = None
    early: list[tuple[str, str]] = []
    for event_id, event in sorted(unique.items(), key=lambda pair: sort_key(*pair)):
        if state is not None:
            state = apply(state, event_id, event)
            continue
        refusal = can_apply(None, event)
        if refusal is not None:
            early.append((event_id, refusal.reason))
            continue
        if not isinstance(event, Assigned):  # pragma: no cover - can_apply refuses it
            raise AssertionError("only an assignment starts an item")
        state = _new(event_id, event, refused=tuple(early))
    if state is None:
        raise ProtocolError(errors.UNKNOWN_ITEM, "no assignment among the events")
    return state
