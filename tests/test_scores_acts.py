"""The scores of the supervision acts: an urge costs the handling unit, an approved
extension moves the deadline the resolution is measured against."""

from __future__ import annotations

from decimal import Decimal

from node.queries.scores import ScoreRules, event_lines, walk
from protocol.events import ExtensionDecided, ExtensionRequested, Resolved, Reviewed, Urged
from protocol.rules import DAY, HOUR
from tests.test_fold import ASSIGNED, DUE, T0, down, up
from tests.test_fold_acts import DEPLOYED


def _rules_of(pairs: list) -> dict[str, Decimal]:  # type: ignore[type-arg]
    lines = event_lines(walk(pairs), ScoreRules())
    out: dict[str, Decimal] = {}
    for line in lines:
        out[line.rule] = out.get(line.rule, Decimal(0)) + line.points
    return out


def test_each_urge_costs_the_handling_unit_and_names_its_event() -> None:
    urges = [down(Urged, 2 + i, 3 + i, T0 + (2 + i) * HOUR, author="督查室", text="请加快")
             for i in range(3)]
    lines = [line for line in event_lines(walk([ASSIGNED, DEPLOYED, *urges]), ScoreRules())
             if line.rule == "urged"]
    assert [line.points for line in lines] == [Decimal("-0.5")] * 3
    assert [line.events[0] for line in lines] == [event_id for event_id, _ in urges]
    assert ScoreRules(urged=Decimal(0)).points("urged") == 0  # a node may turn it off


def test_a_resolution_within_an_approved_extension_is_on_time() -> None:
    new_due = DUE.resolve + 10 * DAY
    asked = up(ExtensionRequested, 2, 3, T0 + 2 * DAY, reason="雨季", deadline=new_due,
               progress="一半")
    approved = down(ExtensionDecided, 2, 4, T0 + 3 * DAY, request=asked[0], approved=True,
                    reason="")
    resolved = up(Resolved, 3, 5, DUE.resolve + 5 * DAY, text="完成", attachments=())
    accepted = down(Reviewed, 3, 6, DUE.resolve + 6 * DAY, outcome="accept", reason="")
    got = _rules_of([ASSIGNED, DEPLOYED, asked, approved, resolved, accepted])
    assert "resolved_excellent" in got and "resolved_qualified" not in got
    [line] = [line for line in event_lines(
        walk([ASSIGNED, DEPLOYED, asked, approved, resolved, accepted]), ScoreRules())
        if line.rule == "resolved_excellent"]
    assert approved[0] in line.events  # the decision that set the deadline it met
    # Without the approval the same resolution is late: qualified.
    refused = down(ExtensionDecided, 2, 4, T0 + 3 * DAY, request=asked[0], approved=False,
                   reason="否")
    got = _rules_of([ASSIGNED, DEPLOYED, asked, refused, resolved, accepted])
    assert "resolved_qualified" in got and "resolved_excellent" not in got
