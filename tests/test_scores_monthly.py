"""Missed monthly progress reports (按月反馈) in the incentive scores: each report date
an approved plan's item passes before its next report costs the handling unit
``monthly_missed`` (docs/reports.md), dated at that report, naming the event the
date was counted from."""

from __future__ import annotations

from decimal import Decimal

from node.queries.scores import ScoreRules, event_lines, walk
from protocol.events import Resolved
from protocol.rules import DAY, add_month
from tests.test_fold import ASSIGNED
from tests.test_fold_acts import DEPLOYED
from tests.test_monthly import APPROVED, FIRST, FIRST_DUE, PLAN, report, up

BASE = [ASSIGNED, DEPLOYED, PLAN, FIRST, APPROVED]


def _missed(pairs: list) -> list[tuple[int, int, tuple[str, ...]]]:  # type: ignore[type-arg]
    return [(int(line.points * 2), line.due or 0, line.events)
            for line in event_lines(walk(pairs), ScoreRules())
            if line.rule == "monthly_missed"]


def test_a_report_by_its_date_costs_nothing() -> None:
    on_time = report(4, 6, FIRST_DUE)
    assert _missed([*BASE, on_time]) == []
    # The next date counts from that report: a month on, again on time.
    again = report(5, 7, add_month(FIRST_DUE, "natural")[0])
    assert _missed([*BASE, on_time, again]) == []


def test_each_date_passed_costs_once_at_the_next_report() -> None:
    second_due = add_month(FIRST_DUE, "natural")[0]
    late = report(4, 6, second_due + DAY)  # two dates passed
    lines = _missed([*BASE, late])
    assert [(half, due) for half, due, _ in lines] == [(-1, FIRST_DUE), (-1, second_due)]
    assert all(events == (late[0], APPROVED[0]) for _, _, events in lines)
    # A resolution is a report too: a date passed before it costs the same.
    resolved = up(Resolved, 4, 6, FIRST_DUE + DAY, text="完成", attachments=())
    assert [due for _, due, _ in _missed([*BASE, resolved])] == [FIRST_DUE]


def test_a_node_may_turn_it_off() -> None:
    assert ScoreRules(monthly_missed=Decimal(0)).points("monthly_missed") == 0
    assert ScoreRules().points("monthly_missed") == Decimal("-0.5")
