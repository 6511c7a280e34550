"""The item fold: transitions, refusals, deadlines, and order independence."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import errors
from protocol.errors import ProtocolError
from protocol.events import (
    Assigned,
    Closed,
    Deadlines,
    Deployed,
    Event,
    Feedback,
    Milestone,
    PlanDecided,
    PlanSubmitted,
    Resolved,
    Reviewed,
    Updated,
    Withdrawn,
    encode_event,
)
from protocol.fold import ItemState, PlanStatus, Status, apply, can_apply, fold, sort_key
from protocol.rules import DAY, HOUR, Colour

ASSIGNER, ASSIGNEE = "14", "1401"
ITEM = "14-000001"
T0 = 1_793_000_000_000  # 2026-10-27, a Tuesday
DUE = Deadlines(deploy=T0 + DAY, feedback=T0 + 3 * DAY, resolve=T0 + 7 * DAY)

Pair = tuple[str, Event]


def pair(event: Event) -> Pair:
    type_, body = encode_event(event)
    return hashlib.sha256(type_.encode() + body).hexdigest(), event


def down(cls: type, seq: int, lamport: int, at: int, **fields: object) -> Pair:
    header = {"item": ITEM, "origin": ASSIGNER, "to": ASSIGNEE}
    return pair(cls(**header, seq=seq, lamport=lamport, at=at, **fields))


def up(cls: type, seq: int, lamport: int, at: int, **fields: object) -> Pair:
    header = {"item": ITEM, "origin": ASSIGNEE, "to": ASSIGNER}
    return pair(cls(**header, seq=seq, lamport=lamport, at=at, **fields))


ASSIGNED = pair(
    Assigned(
        item=ITEM,
        origin=ASSIGNER,
        seq=1,
        lamport=1,
        at=T0,
        to=ASSIGNEE,
        title="repair the bridge",
        description="",
        board="engineering",
        source="instruction",
        item_class="general",
        assigner=ASSIGNER,
        assignee=ASSIGNEE,
        co_units=(),
        calendar="natural",
        deadlines=DUE,
    )
)
MILESTONES = (
    Milestone(title="survey", due=T0 + 10 * DAY),
    Milestone(title="done", due=T0 + 30 * DAY),
)
DEPLOYED = up(Deployed, 1, 2, T0 + HOUR, note="meeting held")
FEEDBACK = up(Feedback, 2, 3, T0 + 2 * DAY, text="started", progress=10, attachments=())
PLAN = up(PlanSubmitted, 3, 4, T0 + 4 * DAY, milestones=MILESTONES, note="too big for 7 days")
APPROVED = down(PlanDecided, 2, 5, T0 + 5 * DAY, approved=True, reason="")
MILESTONE = up(
    Feedback, 4, 6, T0 + 9 * DAY, text="surveyed", progress=40, attachments=(), milestone=0
)
RESOLVED = up(Resolved, 5, 7, T0 + 20 * DAY, text="repaired", attachments=(b"\x01" * 32,))
RETURNED = down(Reviewed, 3, 8, T0 + 21 * DAY, outcome="return", reason="no photos")
RESOLVED2 = up(Resolved, 6, 9, T0 + 25 * DAY, text="repaired, photos", attachments=())
ACCEPTED = down(Reviewed, 4, 10, T0 + 26 * DAY, outcome="accept", reason="")
CLOSED = down(Closed, 5, 11, T0 + 26 * DAY + HOUR, note="")
HISTORY = [
    ASSIGNED,
    DEPLOYED,
    FEEDBACK,
    PLAN,
    APPROVED,
    MILESTONE,
    RESOLVED,
    RETURNED,
    RESOLVED2,
    ACCEPTED,
    CLOSED,
]
# Events that must be refused, or that race with the history.
NOISE = [
    up(Closed, 7, 12, T0 + 27 * DAY, note="closing it myself"),  # not_assigner
    up(Feedback, 2, 3, T0 + 2 * DAY, text="forked", progress=11, attachments=()),  # same seq
    down(Withdrawn, 6, 6, T0 + 9 * DAY, reason="merged into another item"),  # a race
    down(Reviewed, 7, 3, T0 + 2 * DAY, outcome="accept", reason=""),  # nothing to review
    up(Deployed, 8, 13, T0 + 28 * DAY, note="again"),
]


def states(events: list[Pair]) -> list[ItemState]:
    out: list[ItemState] = []
    state: ItemState | None = None
    for event_id, event in sorted(events, key=lambda p: sort_key(*p)):
        state = apply(state, event_id, event)
        out.append(state)
    return out


# -- the whole life of an item ---------------------------------------------------------------


def test_full_history() -> None:
    steps = [s.status for s in states(HISTORY)]
    assert steps == [
        Status.ASSIGNED,
        Status.DEPLOYED,
        Status.REPORTING,
        Status.REPORTING,  # plan submitted: still reporting until approved
        Status.PLANNED,
        Status.PLANNED,
        Status.RESOLVED,
        Status.RETURNED,
        Status.RESOLVED,
        Status.ACCEPTED,
        Status.CLOSED,
    ]
    s = fold(HISTORY)
    assert s.applied == tuple(eid for eid, _ in HISTORY)
    assert s.refused == ()
    assert (s.deploy.done_at, s.deploy.met) == (T0 + HOUR, True)
    assert (s.first_feedback.done_at, s.first_feedback.met) == (T0 + 2 * DAY, True)
    assert s.resolve.due == T0 + 30 * DAY  # the approved plan's last milestone
    assert (s.resolve.done_at, s.resolve.met) == (T0 + 25 * DAY, True)
    assert s.plan is not None and s.plan.status is PlanStatus.APPROVED
    assert s.plan == s.approved_plan and s.plan.event_id == PLAN[0]
    assert s.milestones_reached == (0,)
    assert [r.progress for r in s.feedback] == [10, 40] and s.progress == 40
    assert (s.returns, s.review_outcome, s.resolution) == (1, "accept", "repaired, photos")
    assert s.closed_at == T0 + 26 * DAY + HOUR
    assert s.colour(T0 + 100 * DAY) is Colour.GREY
    json.dumps(s.to_dict())


def test_return_undoes_the_resolve_step() -> None:
    s = fold(HISTORY[:8])
    assert s.status is Status.RETURNED
    assert (s.resolve.done_at, s.resolve.met) == (None, None)
    assert s.review_reason == "no photos"
    assert s.colour(T0 + 29 * DAY) is Colour.YELLOW
    assert s.colour(T0 + 31 * DAY) is Colour.RED


def test_rejected_plan_keeps_the_status_and_deadline() -> None:
    rejected = down(PlanDecided, 2, 5, T0 + 5 * DAY, approved=False, reason="do it in 7 days")
    s = fold([*HISTORY[:4], rejected])
    assert s.status is Status.REPORTING
    assert s.plan is not None and s.plan.status is PlanStatus.REJECTED
    assert s.approved_plan is None and s.resolve.due == DUE.resolve
    assert s.plan.reason == "do it in 7 days"
    again = up(PlanSubmitted, 4, 6, T0 + 6 * DAY, milestones=MILESTONES, note="second try")
    assert fold([*HISTORY[:4], rejected, again]).plan_pending


def test_updates_change_assignment_fields_and_deadlines() -> None:
    late = up(Deployed, 1, 3, T0 + 2 * DAY, note="")
    s = fold([ASSIGNED, late])
    assert s.deploy.met is False
    extended = Deadlines(deploy=T0 + 3 * DAY, feedback=T0 + 4 * DAY, resolve=T0 + 9 * DAY)
    update = down(Updated, 2, 4, T0 + 2 * DAY, title="repair both bridges", deadlines=extended)
    s = fold([ASSIGNED, late, update])
    assert s.title == "repair both bridges" and s.description == ""
    assert s.deploy.met is True and s.resolve.due == T0 + 9 * DAY


def test_resolving_counts_as_first_feedback() -> None:
    resolved = up(Resolved, 2, 3, T0 + 4 * DAY, text="done", attachments=())
    s = fold([ASSIGNED, DEPLOYED, resolved])
    assert s.first_feedback.done_at == T0 + 4 * DAY and s.first_feedback.met is False
    assert s.resolve.met is True


# -- refusals --------------------------------------------------------------------------------


def refused(events: list[Pair]) -> list[str]:
    return [reason for _, reason in fold(events).refused]


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        ([ASSIGNED, up(Feedback, 1, 2, T0, text="x", progress=1, attachments=())],
         errors.INVALID_TRANSITION),  # feedback before deploy
        ([ASSIGNED, DEPLOYED, down(Reviewed, 2, 3, T0, outcome="accept", reason="")],
         errors.INVALID_TRANSITION),  # review before resolve
        ([ASSIGNED, DEPLOYED, down(Closed, 2, 3, T0, note="")], errors.INVALID_TRANSITION),
        ([ASSIGNED, down(PlanDecided, 2, 2, T0, approved=True, reason="")],
         errors.INVALID_TRANSITION),
        ([*HISTORY[:4], up(PlanSubmitted, 4, 5, T0, milestones=MILESTONES, note="")],
         errors.INVALID_TRANSITION),  # a plan already pending
        ([ASSIGNED, DEPLOYED, up(Feedback, 2, 3, T0, text="x", progress=1, attachments=(),
                                 milestone=0)], errors.INVALID_TRANSITION),  # no plan
        ([*HISTORY[:6], up(Feedback, 5, 7, T0, text="x", progress=1, attachments=(),
                           milestone=2)], errors.INVALID_TRANSITION),  # no such milestone
        ([*HISTORY[:10], down(Withdrawn, 5, 11, T0, reason="x")], errors.INVALID_TRANSITION),
        ([*HISTORY[:10], down(Updated, 5, 11, T0, title="x")], errors.INVALID_TRANSITION),
        ([ASSIGNED, DEPLOYED, up(Deployed, 2, 3, T0, note="")], errors.INVALID_TRANSITION),
        ([ASSIGNED, down(Withdrawn, 2, 2, T0, reason="x"), up(Deployed, 1, 3, T0, note="")],
         errors.ITEM_WITHDRAWN),
        ([*HISTORY, down(Updated, 6, 12, T0, title="x")], errors.ITEM_CLOSED),
        ([ASSIGNED, down(Deployed, 2, 2, T0, note="")], errors.NOT_ASSIGNEE),
        ([ASSIGNED, up(Updated, 1, 2, T0, title="mine now")], errors.NOT_ASSIGNER),
        ([ASSIGNED, pair(Deployed(item=ITEM, origin=ASSIGNEE, seq=1, lamport=2, at=T0,
                                  to="1402", note=""))], errors.WRONG_RECIPIENT),
        ([ASSIGNED, pair(Deployed(item="14-000002", origin=ASSIGNEE, seq=1, lamport=2, at=T0,
                                  to=ASSIGNER, note=""))], errors.WRONG_ITEM),
        ([ASSIGNED, DEPLOYED, up(Feedback, 1, 3, T0, text="x", progress=1, attachments=())],
         errors.DUPLICATE_SEQUENCE),
        ([ASSIGNED, pair(replace(ASSIGNED[1], lamport=2, title="again"))],
         errors.DUPLICATE_SEQUENCE),
    ],
)  # fmt: skip
def test_refusals(events: list[Pair], reason: str) -> None:
    s = fold(events)
    assert refused(events) == [reason]
    assert s.refused[0][0] == events[-1][0]
    assert events[-1][0] not in s.applied
    before = fold(events[:-1])
    refusal = can_apply(before, events[-1][1])
    assert refusal is not None and refusal.reason == reason and refusal.detail


def test_an_assignment_of_another_item_is_refused() -> None:
    other = pair(replace(ASSIGNED[1], item="14-000002", seq=2, lamport=2))
    assert refused([ASSIGNED, other]) == [errors.WRONG_ITEM]


def test_events_before_the_assignment() -> None:
    early = up(Deployed, 1, 1, T0, note="")  # same lamport, origin "1401" sorts after "14"
    assert refused([ASSIGNED, early]) == []
    assigned_late = pair(replace(ASSIGNED[1], lamport=5))
    s = fold([assigned_late, early])
    assert s.refused == ((early[0], errors.UNKNOWN_ITEM),)
    assert s.status is Status.ASSIGNED
    with pytest.raises(ProtocolError) as info:
        fold([early])
    assert info.value.reason == errors.UNKNOWN_ITEM
    with pytest.raises(ProtocolError):
        fold([])
    with pytest.raises(ProtocolError):
        apply(None, *early)
    refusal = can_apply(None, early[1])
    assert refusal is not None and refusal.reason == errors.UNKNOWN_ITEM
    assert can_apply(None, ASSIGNED[1]) is None


def test_duplicate_ids() -> None:
    assert fold([ASSIGNED, DEPLOYED, DEPLOYED]) == fold([ASSIGNED, DEPLOYED])
    with pytest.raises(ValueError):
        fold([ASSIGNED, DEPLOYED, (DEPLOYED[0], FEEDBACK[1])])


def test_can_apply_matches_the_fold() -> None:
    events = sorted(HISTORY + NOISE, key=lambda p: sort_key(*p))
    state: ItemState | None = None
    for event_id, event in events:
        verdict = can_apply(state, event)
        state = apply(state, event_id, event)
        assert (verdict is None) == (event_id in state.applied)


# -- order independence ----------------------------------------------------------------------

ALL = HISTORY + NOISE


@settings(max_examples=200, deadline=None)
@given(st.sets(st.sampled_from(range(len(ALL)))), st.randoms(use_true_random=False))
def test_any_order_gives_the_same_state(chosen: set[int], rnd: random.Random) -> None:
    events = [ALL[i] for i in sorted(chosen)]
    shuffled = events[:]
    rnd.shuffle(shuffled)
    try:
        expected = fold(events)
    except ProtocolError:
        with pytest.raises(ProtocolError):
            fold(shuffled)
        return
    assert fold(shuffled) == expected
    assert fold(reversed(events)) == expected
    assert len(expected.applied) + len(expected.refused) == len(events)


def test_every_permutation_of_a_small_history() -> None:
    resolved = up(Resolved, 3, 4, T0 + 2 * DAY, text="done", attachments=())
    accepted = down(Reviewed, 2, 5, T0 + 3 * DAY, outcome="accept", reason="")
    forked = up(Feedback, 2, 3, T0 + DAY, text="fork", progress=5, attachments=())
    small = [ASSIGNED, DEPLOYED, FEEDBACK, resolved, accepted, forked]
    expected = fold(small)
    assert expected.status is Status.ACCEPTED and len(expected.refused) == 1
    for order in itertools.permutations(small):
        assert fold(order) == expected


def test_evolve_is_replace() -> None:
    """apply builds each new state with fold._evolve, a cheaper dataclasses.replace."""
    from protocol.fold import _evolve

    for state in states(HISTORY + NOISE):
        changes: dict[str, object] = {"title": "t", "returns": state.returns + 1, "applied": ()}
        assert _evolve(state, **changes) == replace(state, **changes)
        assert _evolve(state) == state
        with pytest.raises(TypeError):
            _evolve(state, no_such_field=1)
        with pytest.raises(TypeError):
            replace(state, no_such_field=1)
