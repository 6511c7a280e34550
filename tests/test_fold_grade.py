"""The closing grade (评价) in the fold: the rules' default, a grade the reviewer
chose with a reason, the refusal without one, and acceptances signed before grades."""

from __future__ import annotations

import pytest

from protocol import errors
from protocol.errors import ProtocolError
from protocol.events import Deployed, Resolved, Reviewed
from protocol.fold import Status, can_apply, default_grade, fold
from protocol.rules import DAY, HOUR
from tests.test_fold import ASSIGNED, ASSIGNEE, ASSIGNER, ITEM, T0, Pair, down, up

DEPLOYED = up(Deployed, 1, 2, T0 + HOUR, note="")


def resolved(at: int, seq: int = 2, lamport: int = 3) -> Pair:
    return up(Resolved, seq, lamport, at, text="已办结", attachments=())


def test_the_default_is_excellent_on_time_without_return() -> None:
    state = fold([ASSIGNED, DEPLOYED, resolved(T0 + 2 * DAY)])
    assert state.status is Status.RESOLVED
    assert default_grade(state) == "excellent"


def test_the_default_is_qualified_when_late_or_returned() -> None:
    late = fold([ASSIGNED, DEPLOYED, resolved(T0 + 8 * DAY)])
    assert default_grade(late) == "qualified"
    returned = fold(
        [
            ASSIGNED, DEPLOYED, resolved(T0 + 2 * DAY),
            down(Reviewed, 2, 4, T0 + 3 * DAY, outcome="return", reason="补充材料"),
            resolved(T0 + 4 * DAY, seq=3, lamport=5),
        ]
    )
    assert returned.status is Status.RESOLVED
    assert default_grade(returned) == "qualified"


def test_an_acceptance_records_its_grade() -> None:
    review = down(Reviewed, 2, 4, T0 + 3 * DAY, outcome="accept", reason="", grade="excellent")
    state = fold([ASSIGNED, DEPLOYED, resolved(T0 + 2 * DAY), review])
    assert state.refused == ()
    assert state.status is Status.ACCEPTED
    assert state.grade == "excellent"
    assert state.to_dict()["grade"] == "excellent"


def test_a_grade_other_than_the_default_needs_a_reason() -> None:
    base = [ASSIGNED, DEPLOYED, resolved(T0 + 2 * DAY)]
    silent = down(Reviewed, 2, 4, T0 + 3 * DAY, outcome="accept", reason=" ",
                  grade="unqualified")
    state = fold([*base, silent])
    assert state.refused == ((silent[0], errors.GRADE_NEEDS_REASON),)
    assert state.status is Status.RESOLVED and state.grade is None
    refusal = can_apply(fold(base), silent[1])
    assert refusal is not None and refusal.reason == errors.GRADE_NEEDS_REASON
    assert "excellent" in refusal.detail  # names the default it differs from

    said = down(Reviewed, 2, 4, T0 + 3 * DAY, outcome="accept", reason="材料不全，仅部分完成",
                grade="unqualified")
    state = fold([*base, said])
    assert state.refused == ()
    assert (state.grade, state.review_reason) == ("unqualified", "材料不全，仅部分完成")


def test_a_late_resolution_may_be_raised_to_excellent_only_with_a_reason() -> None:
    base = [ASSIGNED, DEPLOYED, resolved(T0 + 8 * DAY)]
    raised = down(Reviewed, 2, 4, T0 + 9 * DAY, outcome="accept", reason="", grade="excellent")
    assert fold([*base, raised]).refused == ((raised[0], errors.GRADE_NEEDS_REASON),)
    default = down(Reviewed, 2, 4, T0 + 9 * DAY, outcome="accept", reason="", grade="qualified")
    assert fold([*base, default]).grade == "qualified"


def test_an_acceptance_signed_before_grades_still_folds() -> None:
    old = down(Reviewed, 2, 4, T0 + 3 * DAY, outcome="accept", reason="")
    state = fold([ASSIGNED, DEPLOYED, resolved(T0 + 2 * DAY), old])
    assert state.refused == ()
    assert state.status is Status.ACCEPTED
    assert state.grade is None


def test_a_return_is_never_graded() -> None:
    with pytest.raises(ProtocolError) as exc:
        Reviewed(item=ITEM, origin=ASSIGNER, to=ASSIGNEE, seq=2, lamport=4, at=T0,
                 outcome="return", reason="重做", grade="qualified")
    assert exc.value.reason == errors.BAD_FIELD and "grade" in exc.value.detail
    with pytest.raises(ProtocolError):
        Reviewed(item=ITEM, origin=ASSIGNER, to=ASSIGNEE, seq=2, lamport=4, at=T0,
                 outcome="accept", reason="", grade="good")


# -- the grade in the incentive scores (node/queries/scores.py) -----------------------------


def _rules(pairs: list[Pair]) -> list[str]:
    from node.queries.scores import ScoreRules, event_lines, walk

    return sorted(line.rule for line in event_lines(walk(pairs), ScoreRules())
                  if line.rule.startswith("resolved_"))


def test_the_signed_grade_decides_the_award() -> None:
    base = [ASSIGNED, DEPLOYED, resolved(T0 + 2 * DAY)]

    def accepted(grade: str | None, reason: str = "") -> Pair:
        fields: dict[str, object] = {"grade": grade} if grade else {}
        return down(Reviewed, 2, 4, T0 + 3 * DAY, outcome="accept", reason=reason, **fields)

    assert _rules([*base, accepted("excellent")]) == ["resolved_excellent"]
    assert _rules([*base, accepted(None)]) == ["resolved_excellent"]  # signed before grades
    assert _rules([*base, accepted("qualified", "一般")]) == ["resolved_qualified"]
    assert _rules([*base, accepted("unqualified", "质量不达标")]) == []  # no award
    late = [ASSIGNED, DEPLOYED, resolved(T0 + 8 * DAY)]
    raised = down(Reviewed, 2, 4, T0 + 9 * DAY, outcome="accept", reason="客观原因",
                  grade="excellent")
    assert _rules([*late, raised]) == ["resolved_excellent"]
