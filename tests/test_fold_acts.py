"""The supervision acts in the fold: urges (催办), instructions (批示) and extension
requests (延期申请) — who may sign them, what they change, and every refusal."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import errors
from protocol.events import (
    Deadlines,
    Deployed,
    ExtensionDecided,
    ExtensionRequested,
    Feedback,
    Instructed,
    Resolved,
    Reviewed,
    Updated,
    Urged,
)
from protocol.fold import ExtensionStatus, Status, can_apply, fold
from protocol.rules import DAY, HOUR
from tests.test_fold import ASSIGNED, ASSIGNEE, ASSIGNER, DUE, ITEM, T0, Pair, down, pair, up

PROVINCE = "1"  # a node above the assigner "14" (the fold does not ask the tree)


def above(cls: type, seq: int, lamport: int, at: int, **fields: object) -> Pair:
    header = {"item": ITEM, "origin": PROVINCE, "to": ASSIGNEE}
    return pair(cls(**header, seq=seq, lamport=lamport, at=at, **fields))


DEPLOYED = up(Deployed, 1, 2, T0 + HOUR, note="")


def urge(**fields: object) -> dict[str, object]:
    return {"author": "张三", "text": "请加快进度", **fields}


def test_urges_by_the_assigner_and_a_node_above_are_listed() -> None:
    state = fold(
        [
            ASSIGNED,
            DEPLOYED,
            down(Urged, 2, 3, T0 + 2 * HOUR, author="督查室", text="请尽快反馈"),
            above(Urged, 1, 4, T0 + 3 * HOUR, author="省督查室", text="省里关注"),
        ]
    )
    assert state.refused == ()
    assert [(u.by, u.author, u.text) for u in state.urges] == [
        (ASSIGNER, "督查室", "请尽快反馈"),
        (PROVINCE, "省督查室", "省里关注"),
    ]
    assert state.status is Status.DEPLOYED  # an urge changes no status
    assert state.to_dict()["urges"][1]["by"] == PROVINCE


def test_an_urge_signed_by_the_assignee_or_misaddressed_is_refused() -> None:
    own = pair(Urged(item=ITEM, origin=ASSIGNEE, to=ASSIGNEE, seq=2, lamport=3, at=T0 + HOUR,
                     author="x", text="自己催自己"))
    wrong_to = pair(Urged(item=ITEM, origin=PROVINCE, to=ASSIGNER, seq=2, lamport=4,
                          at=T0 + HOUR, author="x", text="发错对象"))
    state = fold([ASSIGNED, own, wrong_to])
    assert [reason for _, reason in state.refused] == [
        errors.NOT_SUPERVISOR, errors.WRONG_RECIPIENT,
    ]
    assert state.urges == ()


def test_an_urge_is_for_an_item_waiting_on_its_handling_node() -> None:
    resolved = up(Resolved, 2, 3, T0 + 2 * HOUR, text="done", attachments=())
    late = down(Urged, 2, 4, T0 + 3 * HOUR, **urge())
    state = fold([ASSIGNED, DEPLOYED, resolved, late])
    assert state.refused == ((late[0], errors.INVALID_TRANSITION),)
    # Returned for rework, it may be urged again.
    returned = down(Reviewed, 3, 5, T0 + 4 * HOUR, outcome="return", reason="redo")
    again = down(Urged, 4, 6, T0 + 5 * HOUR, **urge())
    assert len(fold([ASSIGNED, DEPLOYED, resolved, late, returned, again]).urges) == 1


def test_an_instruction_is_answered_by_a_feedback() -> None:
    instructed = above(Instructed, 1, 3, T0 + 2 * HOUR, author="王副省长", text="务必按期完成")
    answer = up(Feedback, 2, 4, T0 + 3 * HOUR, text="已落实", progress=50, attachments=(),
                answers=instructed[0])
    state = fold([ASSIGNED, DEPLOYED, instructed, answer])
    assert state.refused == ()
    [instruction] = state.instructions
    assert (instruction.by, instruction.author) == (PROVINCE, "王副省长")
    assert instruction.answered_by == (answer[0],)
    assert state.feedback[0].answers == instructed[0]
    assert state.to_dict()["feedback"][0]["answers"] == instructed[0]
    # A report naming an instruction the item does not hold is refused.
    stray = up(Feedback, 3, 5, T0 + 4 * HOUR, text="x", progress=60, attachments=(),
               answers="ab" * 32)
    assert fold([ASSIGNED, DEPLOYED, instructed, stray]).refused == (
        (stray[0], errors.INVALID_TRANSITION),
    )


def test_an_instruction_waits_for_its_item_and_not_after_the_end() -> None:
    early = above(Instructed, 1, 1, T0 - 1, author="x", text="先到")
    state = fold([early, ASSIGNED])  # sorted before the assignment: unknown_item
    assert state.refused == ((early[0], errors.UNKNOWN_ITEM),)
    resolved = up(Resolved, 2, 3, T0 + 2 * HOUR, text="done", attachments=())
    on_resolved = above(Instructed, 1, 4, T0 + 3 * HOUR, author="x", text="验收时注意")
    assert fold([ASSIGNED, DEPLOYED, resolved, on_resolved]).refused == ()


REQUEST_AT = T0 + 2 * DAY
NEW_DUE = T0 + 20 * DAY


def request(seq: int = 2, lamport: int = 3, at: int = REQUEST_AT, deadline: int = NEW_DUE) -> Pair:
    return up(ExtensionRequested, seq, lamport, at, reason="雨季施工受阻", deadline=deadline,
              progress="完成主体一半")


def decide(asked: Pair, approved: bool, lamport: int = 4, reason: str = "同意") -> Pair:
    return down(ExtensionDecided, 2, lamport, REQUEST_AT + HOUR, request=asked[0],
                approved=approved, reason=reason)


def test_an_approved_extension_moves_the_resolve_deadline() -> None:
    asked = request()
    pending = fold([ASSIGNED, DEPLOYED, asked])
    assert pending.extension_pending is not None
    assert pending.resolve.due == DUE.resolve  # nothing moves until the assigner decides
    state = fold([ASSIGNED, DEPLOYED, asked, decide(asked, True)])
    assert state.refused == ()
    [ext] = state.extensions
    assert (ext.status, ext.old_due, ext.deadline) == (
        ExtensionStatus.APPROVED, DUE.resolve, NEW_DUE
    )
    assert state.resolve.due == NEW_DUE
    assert state.extension_pending is None
    assert state.to_dict()["extensions"][0]["old_due"] == DUE.resolve


def test_a_refused_extension_keeps_the_deadline_and_says_why() -> None:
    asked = request()
    state = fold([ASSIGNED, DEPLOYED, asked, decide(asked, False, reason="理由不充分")])
    [ext] = state.extensions
    assert (ext.status, ext.decision) == (ExtensionStatus.REFUSED, "理由不充分")
    assert state.resolve.due == DUE.resolve
    # Then the unit may ask again.
    again = request(seq=3, lamport=5, at=REQUEST_AT + 2 * HOUR)
    assert len(fold([ASSIGNED, DEPLOYED, asked, decide(asked, False, reason="否"), again])
               .extensions) == 2


def test_an_extension_asked_after_the_deadline_is_refused_with_its_reason() -> None:
    late = request(at=DUE.resolve)
    state = fold([ASSIGNED, DEPLOYED, late])
    assert state.refused == ((late[0], errors.EXTENSION_TOO_LATE),)
    refusal = can_apply(fold([ASSIGNED, DEPLOYED]), late[1])
    assert refusal is not None and "before the deadline" in refusal.detail


@pytest.mark.parametrize(
    "why, events",
    [
        ("no earlier date", lambda: [request(deadline=DUE.resolve)]),
        ("one pending at a time", lambda: [request(), request(seq=3, lamport=4)]),
        ("none pending to decide", lambda: [decide(request(), True)]),
        ("the pending one only", lambda: [request(), decide(request(seq=9, lamport=9), True)]),
        ("not by the assigner", lambda: [
            down(ExtensionRequested, 2, 3, REQUEST_AT, reason="r", deadline=NEW_DUE,
                 progress="p")
        ]),
    ],
)
def test_extension_refusals(why: str, events: object) -> None:
    extra = events()  # type: ignore[operator]
    state = fold([ASSIGNED, DEPLOYED, *extra])
    assert len(state.refused) == 1, why
    assert state.resolve.due == DUE.resolve


def test_an_old_deadline_update_still_folds() -> None:
    """Nodes no longer sign item.updated for a deadline (the extension replaced it), but
    one signed before folds as it did."""
    moved = Deadlines(deploy=DUE.deploy, feedback=DUE.feedback, resolve=NEW_DUE)
    state = fold([ASSIGNED, down(Updated, 2, 2, T0 + HOUR, deadlines=moved)])
    assert state.refused == () and state.resolve.due == NEW_DUE


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_acts_fold_the_same_in_any_order(rng: random.Random) -> None:
    instructed = above(Instructed, 1, 3, T0 + 2 * HOUR, author="王", text="抓紧")
    asked = request(seq=3, lamport=5)
    history = [
        ASSIGNED,
        DEPLOYED,
        instructed,
        down(Urged, 2, 4, T0 + 3 * HOUR, **urge()),
        asked,
        up(Feedback, 4, 6, REQUEST_AT + HOUR, text="已落实", progress=40, attachments=(),
           answers=instructed[0]),
        down(ExtensionDecided, 3, 7, REQUEST_AT + 2 * HOUR, request=asked[0], approved=True,
             reason=""),
    ]
    expected = fold(history)
    assert expected.refused == ()
    shuffled = list(history)
    rng.shuffle(shuffled)
    assert fold(shuffled) == expected
