"""Monthly progress under an approved plan (按月反馈进展情况) in the fold and the rules:
when a report is due, what a late one does to the colour, the reminders before the
date, and who may sign a monthly report when (docs/rules.md, "Monthly progress")."""

from __future__ import annotations

import pytest

from protocol import errors
from protocol.errors import ProtocolError
from protocol.events import Feedback, Milestone, PlanDecided, PlanSubmitted, decode_event
from protocol.events import encode_event as encode
from protocol.fold import Status, fold
from protocol.rules import DAY, HOUR, Colour, add_month
from tests.test_fold import ASSIGNED, ITEM, T0, down, up
from tests.test_fold_acts import DEPLOYED

APPROVED_AT = T0 + 2 * DAY
PLAN = up(PlanSubmitted, 2, 3, T0 + DAY, note="工程量大",
          milestones=(Milestone(title="完工", due=T0 + 120 * DAY),))
APPROVED = down(PlanDecided, 2, 5, APPROVED_AT, approved=True, reason="")
FIRST_DUE = add_month(APPROVED_AT, "natural")[0]


def report(seq: int, lamport: int, at: int, monthly: bool | None = True) -> tuple[str, Feedback]:
    return up(Feedback, seq, lamport, at, text="本月进展", progress=30, attachments=(),
              monthly=monthly)  # type: ignore[return-value]


FIRST = report(3, 4, T0 + DAY + HOUR, monthly=None)  # the 3-day first feedback, in time


def test_a_report_is_due_a_month_after_the_approval_then_after_each_report() -> None:
    before = fold([ASSIGNED, DEPLOYED, PLAN])
    assert before.monthly_due is None  # no approved plan: nothing owed monthly
    planned = fold([ASSIGNED, DEPLOYED, PLAN, FIRST, APPROVED])
    assert planned.status is Status.PLANNED and planned.monthly_due == FIRST_DUE
    done = report(4, 6, FIRST_DUE - DAY)
    after = fold([ASSIGNED, DEPLOYED, PLAN, FIRST, APPROVED, done])
    assert after.feedback[-1].monthly and after.to_dict()["feedback"][1]["monthly"] is True
    assert after.monthly_due == add_month(FIRST_DUE - DAY, "natural")[0]
    # Any feedback is progress: a plain one moves the date too.
    plain = report(4, 6, FIRST_DUE - 2 * DAY, monthly=None)
    assert fold([ASSIGNED, DEPLOYED, PLAN, FIRST, APPROVED, plain]).monthly_due == add_month(
        FIRST_DUE - 2 * DAY, "natural")[0]


def test_a_missing_report_turns_the_item_yellow_then_red() -> None:
    s = fold([ASSIGNED, DEPLOYED, PLAN, FIRST, APPROVED])
    assert s.colour(FIRST_DUE - 3 * DAY - 1) is Colour.GREEN
    assert s.colour(FIRST_DUE - 3 * DAY) is Colour.YELLOW  # reminded, 3 days before
    assert s.colour(FIRST_DUE + DAY) is Colour.YELLOW  # missed: yellow for a week
    assert s.colour(FIRST_DUE + 7 * DAY) is Colour.YELLOW
    assert s.colour(FIRST_DUE + 7 * DAY + 1) is Colour.RED
    kinds = [(r.deadline, r.kind, r.at) for r in s.reminders() if r.deadline == "monthly"]
    assert kinds == [("monthly", "due_soon", FIRST_DUE - 3 * DAY),
                     ("monthly", "overdue", FIRST_DUE)]
    # The report, even late, brings it back to green for the next month.
    late = fold([ASSIGNED, DEPLOYED, PLAN, FIRST, APPROVED, report(4, 6, FIRST_DUE + 8 * DAY)])
    assert late.colour(FIRST_DUE + 8 * DAY + HOUR) is Colour.GREEN


def test_a_monthly_report_needs_an_approved_plan_and_is_true_or_absent() -> None:
    early = report(2, 3, T0 + DAY)
    state = fold([ASSIGNED, DEPLOYED, early])
    assert state.refused == ((early[0], errors.INVALID_TRANSITION),)
    with pytest.raises(ProtocolError) as caught:
        Feedback(item=ITEM, origin="140105001", to="14", seq=2, lamport=3, at=T0, text="x",
                 progress=1, attachments=(), monthly=False)
    assert caught.value.reason == errors.BAD_FIELD
    event = report(4, 6, FIRST_DUE)[1]
    assert decode_event(*encode(event)) == event
    assert b"monthly" not in encode(report(4, 6, FIRST_DUE, monthly=None)[1])[1]
