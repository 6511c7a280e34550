"""Incentive scores over a quarter of synthetic history, checked against points worked
out by hand.

The history is real protocol events (signed-event bodies without the signatures:
the fold does not need them), folded by ``protocol.fold``. Quarter 2026Q4 runs
2026-10-01 00:00 to 2027-01-01 00:00 China time. Province 14 assigns to three
of its own units (finance, env, transport) and to cities 1401-1404. Default
rules: deploy on time +0.5, late deploy -0.5, feedback on time +1, late
feedback -1, excellent +3, qualified +1, each return -1, unfinished -2.

Every item's lines, worked out by hand (deadlines: deploy +1 d, feedback
+3 d, resolve +7 d from the assignment at 09:00):

finance   A  assigned 10-12: deployed 10-12 (+0.5), feedback 10-14 (+1),
             resolved 10-18, accepted 10-19 on first review and on time (+3)  = +4.5
          B  assigned 11-02: deployed 11-03 08:00 (+0.5), first feedback 11-06,
             due 11-05 (-1), resolved 11-08, returned 11-09 (-1), resolved
             again 11-12, accepted 11-13: after a return -> qualified (+1)    = -0.5
          I  assigned 12-10, withdrawn 12-12 before quarter end: no line       =  0
          finance: gained 6, deducted 2, total 4.0
env       C  assigned 12-01: deployed 12-03, due 12-02 (-0.5); no feedback:
             open at quarter end with feedback and resolve overdue (-2)       = -2.5
          D  explicit deadline 2027-01-20: deployed 12-20 (+0.5), feedback
             12-22 (+1), open but not overdue at quarter end                  = +1.5
          env: gained 1.5, deducted 2.5, total -1.0
transport K  assigned 10-12: +0.5, +1, accepted excellent +3                   = +4.5
          L  explicit deadline 2027-01-30, assigned 12-30: deployed 12-31
             10:00, due 12-31 09:00 (-0.5); feedback not due until 01-02     = -0.5
          transport: gained 4.5, deducted 0.5, total 4.0
1401      E  assigned 10-08: deployed (+0.5), resolved 10-10 (the first
             feedback, on time: +1), accepted 10-16 on time (+3)              = +4.5
          F  assigned 09-25 (Q3): +0.5 and +1 fall in Q3; plan approved 09-29
             moves the resolve deadline to 10-20 18:00; resolved 10-15,
             accepted 10-16 -> excellent (+3) in Q4                           = +3
          1401: total 7.5
1402      G  assigned 11-16, never deployed: unfinished (-2)                    = -2
1403      G2 assigned 12-01, never deployed: unfinished (-2)                    = -2
1404      H  assigned 10-20: +0.5, +1, returned 10-27 (-1), accepted 10-29
             after the return -> qualified (+1)                               = +1.5
          M  assigned and accepted in August (Q3): not in Q4 at all

Units: transport 4.0 (deducted 0.5) ranks above finance 4.0 (deducted 2.0),
then env -1.0. Nodes: 1401 7.5, 14 7.0 (= 4.0 + 4.0 - 1.0), 1404 1.5, then
1402 and 1403 both -2 with the same deductions and no excellent: they share
rank 4, listed by node id.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import pytest

from node.queries.periods import PeriodError, Quarter, Week
from node.queries.scores import PointLine, ScoreRules, Standing, rank, score_item, tally
from node.queries.summary import facts_of, on_time_rate, summarise
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
    Withdrawn,
    encode_event,
    make_item_id,
)
from protocol.fold import fold
from protocol.rules import CHINA_TZ, DAY, HOUR

Pair = tuple[str, Event]
PROVINCE = "14"
Q4 = Quarter(year=2026, quarter=4)
Q3 = Quarter(year=2026, quarter=3)


def cst(month: int, day: int, hour: int = 9, minute: int = 0, year: int = 2026) -> int:
    """A China-time instant in unix ms."""
    return int(datetime(year, month, day, hour, minute, tzinfo=CHINA_TZ).timestamp()) * 1000


@dataclass
class History:
    """Builds real item events with gapless per-origin sequences and a global Lamport clock."""

    seqs: dict[str, int] = field(default_factory=dict)
    lamport: int = 0

    def sign(self, cls: type, **fields: object) -> Pair:
        origin = str(fields["origin"])
        self.seqs[origin] = self.seqs.get(origin, 0) + 1
        self.lamport += 1
        event = cls(seq=self.seqs[origin], lamport=self.lamport, **fields)
        type_, body = encode_event(event)
        return hashlib.sha256(type_.encode() + body).hexdigest(), event


@dataclass
class Item:
    history: History
    assignee: str
    pairs: list[Pair] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.pairs[0][1].item

    def ids(self, kind: type) -> list[str]:
        return [i for i, e in self.pairs if isinstance(e, kind)]

    def _down(self, cls: type, at: int, **fields: object) -> Item:
        self.pairs.append(self.history.sign(
            cls, item=self.id, origin=PROVINCE, to=self.assignee, at=at, **fields))
        return self

    def _up(self, cls: type, at: int, **fields: object) -> Item:
        self.pairs.append(self.history.sign(
            cls, item=self.id, origin=self.assignee, to=PROVINCE, at=at, **fields))
        return self

    def deploy(self, at: int) -> Item:
        return self._up(Deployed, at, note="已研究部署")

    def feedback(self, at: int, milestone: int | None = None) -> Item:
        return self._up(Feedback, at, text="正在推进", progress=50, attachments=(),
                        milestone=milestone)

    def plan(self, at: int, *dues: int) -> Item:
        steps = tuple(Milestone(title=f"节点{i + 1}", due=d) for i, d in enumerate(dues))
        return self._up(PlanSubmitted, at, milestones=steps, note="一个月内难以完成")

    def resolve(self, at: int) -> Item:
        return self._up(Resolved, at, text="已落实解决", attachments=())

    def approve(self, at: int) -> Item:
        return self._down(PlanDecided, at, approved=True, reason="")

    def accept(self, at: int) -> Item:
        return self._down(Reviewed, at, outcome="accept", reason="")

    def send_back(self, at: int) -> Item:
        return self._down(Reviewed, at, outcome="return", reason="材料不全")

    def close(self, at: int) -> Item:
        return self._down(Closed, at, note="销号")

    def withdraw(self, at: int) -> Item:
        return self._down(Withdrawn, at, reason="任务调整")


def assign(
    history: History, at: int, title: str, *, node: str = PROVINCE, unit: str | None = None,
    resolve: int | None = None,
) -> Item:
    """A general item (or explicit, with ``resolve``) assigned by the province at ``at``."""
    seq = history.seqs.get(PROVINCE, 0) + 1
    due = resolve if resolve is not None else at + 7 * DAY
    deadlines = Deadlines(deploy=min(at + DAY, due), feedback=min(at + 3 * DAY, due), resolve=due)
    item = Item(history, node)
    item.pairs.append(history.sign(
        Assigned, item=make_item_id(PROVINCE, seq), origin=PROVINCE, to=node, at=at,
        title=title, description="", board="daily", source="executive",
        item_class="general" if resolve is None else "explicit", assigner=PROVINCE,
        assignee=node, assignee_unit=unit, lead_unit=unit, co_units=(), calendar="natural",
        deadlines=deadlines,
    ))
    return item


def build_history() -> dict[str, Item]:
    h = History()
    items: dict[str, Item] = {}
    items["M"] = (assign(h, cst(8, 3), "整改环保督察问题", node="1404")
                  .deploy(cst(8, 3, 10)).resolve(cst(8, 5, 10)).accept(cst(8, 7)))
    items["F"] = (assign(h, cst(9, 25), "推进园区污水处理厂建设", node="1401")
                  .deploy(cst(9, 25, 15)).feedback(cst(9, 27, 10))
                  .plan(cst(9, 28, 10), cst(10, 10, 18), cst(10, 20, 18)).approve(cst(9, 29))
                  .feedback(cst(10, 9), milestone=0).resolve(cst(10, 15, 10))
                  .accept(cst(10, 16, 10)))
    items["E"] = (assign(h, cst(10, 8), "解决企业用地手续问题", node="1401")
                  .deploy(cst(10, 8, 14)).resolve(cst(10, 10, 11)).accept(cst(10, 16)))
    items["A"] = (assign(h, cst(10, 12), "落实减税降费政策", unit="finance")
                  .deploy(cst(10, 12, 15)).feedback(cst(10, 14, 10)).resolve(cst(10, 18, 16))
                  .accept(cst(10, 19, 10)).close(cst(10, 20)))
    items["K"] = (assign(h, cst(10, 12), "推进重点工程项目开工", unit="transport")
                  .deploy(cst(10, 12, 11)).feedback(cst(10, 13, 10)).resolve(cst(10, 16, 10))
                  .accept(cst(10, 16, 15)))
    items["H"] = (assign(h, cst(10, 20), "整改审计发现问题", node="1404")
                  .deploy(cst(10, 21, 8)).feedback(cst(10, 22, 10)).resolve(cst(10, 26, 17))
                  .send_back(cst(10, 27, 10)).resolve(cst(10, 28, 17)).accept(cst(10, 29)))
    items["B"] = (assign(h, cst(11, 2), "清理拖欠企业账款", unit="finance")
                  .deploy(cst(11, 3, 8)).feedback(cst(11, 6, 10)).resolve(cst(11, 8, 17))
                  .send_back(cst(11, 9, 10)).resolve(cst(11, 12, 17)).accept(cst(11, 13)))
    items["G"] = assign(h, cst(11, 16), "化解信访积案", node="1402")
    items["C"] = assign(h, cst(12, 1), "整治入河排污口", unit="env").deploy(cst(12, 3, 10))
    items["G2"] = assign(h, cst(12, 1), "排查燃气安全隐患", node="1403")
    items["I"] = assign(h, cst(12, 10), "编制专项资金方案", unit="finance").withdraw(cst(12, 12))
    items["D"] = (assign(h, cst(12, 20), "推进大气污染联防联控", unit="env",
                         resolve=cst(1, 20, 18, year=2027))
                  .deploy(cst(12, 20, 16)).feedback(cst(12, 22, 10)))
    items["L"] = (assign(h, cst(12, 30), "谋划明年交通项目", unit="transport",
                         resolve=cst(1, 30, 18, year=2027))
                  .deploy(cst(12, 31, 10)))
    return items


def table(standings: tuple[Standing, ...]) -> list[tuple[int, str, str | None, float]]:
    return [(s.rank, s.node, s.unit, float(s.total)) for s in standings]


def test_history_is_valid_protocol() -> None:
    for name, item in build_history().items():
        state = fold(item.pairs)
        assert state.refused == (), name
        assert len(state.applied) == len(item.pairs), name


def test_quarter_ranking_worked_out_by_hand() -> None:
    items = build_history()
    result = tally(
        (score_item(i.pairs, ScoreRules(), Q4) for i in items.values()), ScoreRules(), Q4
    )
    assert result.final is True
    assert table(result.units) == [
        (1, "14", "transport", 4.0),
        (2, "14", "finance", 4.0),
        (3, "14", "env", -1.0),
    ]
    assert table(result.nodes) == [
        (1, "1401", None, 7.5),
        (2, "14", None, 7.0),
        (3, "1404", None, 1.5),
        (4, "1402", None, -2.0),
        (4, "1403", None, -2.0),
    ]
    units = {s.unit: s for s in result.units}
    assert (units["finance"].gained, units["finance"].deducted) == (Decimal(6), Decimal(2))
    assert (units["env"].gained, units["env"].deducted) == (Decimal("1.5"), Decimal("2.5"))
    assert (units["transport"].gained, units["transport"].deducted) == (
        Decimal("4.5"), Decimal("0.5"))
    assert units["finance"].items == 3  # A, B and the withdrawn I, all open during Q4
    assert units["finance"].counts == {
        "deploy_on_time": 2, "late_deploy": 0, "feedback_on_time": 1, "late_feedback": 1,
        "resolved_excellent": 1, "resolved_qualified": 1, "returned": 1, "unfinished": 0,
        "urged": 0, "monthly_missed": 0,
    }
    nodes = {s.node: s for s in result.nodes}
    assert (nodes["14"].gained, nodes["14"].deducted, nodes["14"].items) == (
        Decimal(12), Decimal(5), 7)
    assert nodes["1401"].counts["resolved_excellent"] == 2
    assert nodes["1404"].items == 1  # M ended in August: not part of Q4


def test_every_line_by_hand_with_the_events_behind_it() -> None:
    items = build_history()

    def lines(name: str) -> list[tuple[str, float]]:
        score = score_item(items[name].pairs, ScoreRules(), Q4)
        return [(ln.rule, float(ln.points)) for ln in score.lines]

    assert lines("A") == [("deploy_on_time", 0.5), ("feedback_on_time", 1.0),
                          ("resolved_excellent", 3.0)]
    assert lines("B") == [("deploy_on_time", 0.5), ("late_feedback", -1.0),
                          ("returned", -1.0), ("resolved_qualified", 1.0)]
    assert lines("I") == []
    assert lines("C") == [("late_deploy", -0.5), ("unfinished", -2.0)]
    assert lines("D") == [("deploy_on_time", 0.5), ("feedback_on_time", 1.0)]
    assert lines("E") == [("deploy_on_time", 0.5), ("feedback_on_time", 1.0),
                          ("resolved_excellent", 3.0)]
    assert lines("F") == [("resolved_excellent", 3.0)]
    assert lines("G") == [("unfinished", -2.0)]
    assert lines("H") == [("deploy_on_time", 0.5), ("feedback_on_time", 1.0),
                          ("returned", -1.0), ("resolved_qualified", 1.0)]
    assert lines("L") == [("late_deploy", -0.5)]
    assert lines("M") == []

    # Traceable: each line names the event that earned it and the one that set its deadline.
    f = items["F"]
    [excellent] = score_item(f.pairs, ScoreRules(), Q4).lines
    assert excellent.events == (f.ids(Reviewed)[0], f.ids(Resolved)[0], f.ids(PlanDecided)[0])
    assert excellent.due == cst(10, 20, 18) and excellent.at == cst(10, 16, 10)
    b = items["B"]
    by_rule = {ln.rule: ln for ln in score_item(b.pairs, ScoreRules(), Q4).lines}
    assert by_rule["late_feedback"].events == (b.ids(Feedback)[0], b.pairs[0][0])
    assert by_rule["returned"].events == (b.ids(Reviewed)[0], b.ids(Resolved)[0])
    assert by_rule["resolved_qualified"].events == (
        b.ids(Reviewed)[1], b.ids(Resolved)[1], b.pairs[0][0])
    c = items["C"]
    unfinished = score_item(c.pairs, ScoreRules(), Q4).lines[-1]
    assert unfinished.events == (c.pairs[0][0],)
    assert unfinished.deadlines == ("feedback", "resolve")
    assert unfinished.at == Q4.end - 1 and unfinished.due == cst(12, 4)
    for item in items.values():
        known = {event_id for event_id, _ in item.pairs}
        for line in score_item(item.pairs, ScoreRules(), Q4).lines:
            assert set(line.events) <= known and line.item == item.id


def test_lines_fall_in_the_quarter_of_their_event() -> None:
    items = build_history()
    result = tally((score_item(i.pairs, ScoreRules(), Q3) for i in items.values()),
                   ScoreRules(), Q3)
    assert table(result.nodes) == [(1, "1404", None, 4.5), (2, "1401", None, 1.5)]
    assert result.units == ()
    f = score_item(items["F"].pairs, ScoreRules(), Q3)
    assert [ln.rule for ln in f.lines] == ["deploy_on_time", "feedback_on_time"]


def test_the_order_events_arrive_in_does_not_matter() -> None:
    items = build_history()
    rng = random.Random(7)
    for item in items.values():
        shuffled = list(item.pairs)
        rng.shuffle(shuffled)
        assert score_item(shuffled, ScoreRules(), Q4) == score_item(item.pairs, ScoreRules(), Q4)


def test_rules_come_from_the_configuration() -> None:
    items = build_history()
    rules = ScoreRules.from_numbers({"unfinished": 5, "resolved_excellent": 2.5})
    result = tally((score_item(i.pairs, rules, Q4) for i in items.values()), rules, Q4)
    nodes = {s.node: float(s.total) for s in result.nodes}
    assert nodes["1402"] == -5.0
    assert nodes["1401"] == 0.5 + 1 + 2.5 + 2.5  # E and F with excellent worth 2.5
    with pytest.raises(ValueError, match=r"scores\.returned"):
        ScoreRules.from_numbers({"returned": -1})
    with pytest.raises(ValueError, match="no score rule"):
        ScoreRules.from_numbers({"bonus": 1})


def test_a_running_quarter_judges_unfinished_at_as_of() -> None:
    g = build_history()["G"]  # assigned 11-16 09:00: deploy due 11-17 09:00
    assert score_item(g.pairs, ScoreRules(), Q4, as_of=cst(11, 17, 8)).lines == ()
    late = score_item(g.pairs, ScoreRules(), Q4, as_of=cst(11, 18)).lines
    assert [(ln.rule, ln.at, ln.deadlines) for ln in late] == [
        ("unfinished", cst(11, 18), ("deploy",))]
    result = tally([score_item(g.pairs, ScoreRules(), Q4, as_of=cst(11, 18))], ScoreRules(), Q4,
                   as_of=cst(11, 18))
    assert result.final is False and result.as_of == cst(11, 18)


def test_ties_share_a_rank_only_when_equal_on_every_criterion() -> None:
    def standing(node: str, total: str, deducted: str, excellent: int) -> Standing:
        return Standing(node=node, unit=None, rank=0, total=Decimal(total),
                        gained=Decimal(total) + Decimal(deducted), deducted=Decimal(deducted),
                        counts={"resolved_excellent": excellent}, items=1)

    ranked = rank([
        standing("d", "3", "1", 0),
        standing("c", "3", "1", 1),
        standing("b", "3", "0", 0),
        standing("a", "5", "4", 0),
        standing("e", "3", "1", 0),
    ])
    assert [(s.rank, s.node) for s in ranked] == [
        (1, "a"), (2, "b"), (3, "c"), (4, "d"), (4, "e")]


def test_quarter_summary_counts_by_hand() -> None:
    items = build_history()
    as_of = Q4.end - 1
    facts = []
    for item in items.values():
        state = score_item(item.pairs, ScoreRules(), Q4).state
        assert state is not None
        facts.append(facts_of(state))
    summary = summarise(facts, start=Q4.start, end=Q4.end, as_of=as_of)
    # new: A B C D E G G2 H I K L; closed: A B E F H K, on time A E F K;
    # due in Q4: A B C E F G G2 H K, accepted A B E F H K; open: C D G G2 L, red C G G2.
    assert summary.totals == {
        "new": 11, "due": 9, "due_done": 6, "closed": 6, "closed_on_time": 4,
        "overdue": 3, "open": 5, "green": 2, "yellow": 0, "red": 3,
    }
    assert on_time_rate(summary.totals) == 0.6667
    # province units: new A B C D I K L; due A B C K (I withdrawn before its deadline),
    # accepted A B K, on time A K; open C D L, red C.
    assert summary.nodes["14"] == {
        "new": 7, "due": 4, "due_done": 3, "closed": 3, "closed_on_time": 2,
        "overdue": 1, "open": 3, "green": 2, "yellow": 0, "red": 1,
    }
    assert summary.units[("14", "env")]["overdue"] == 1
    assert [(o.facts.item, o.deadline, o.days) for o in summary.overdue] == [
        # longest overdue first; days counted up: 44 d 15 h late is 45 days
        (items["G"].id, "deploy", 45),  # due 11-17 09:00
        (items["G2"].id, "deploy", 30),  # due 12-02 09:00: 29 d 15 h
        (items["C"].id, "feedback", 28),  # due 12-04 09:00: 27 d 15 h (deployed, no feedback)
    ]


def test_periods_in_china_time() -> None:
    assert Quarter.parse("2026Q4") == Q4 == Quarter.of(cst(12, 31, 23, 59))
    assert Q4.start == cst(10, 1, 0) and Q4.end == cst(1, 1, 0, year=2027)
    assert Quarter.of(cst(1, 1, 0, year=2027)) == Quarter(year=2027, quarter=1)
    assert Q4.label == "2026年第四季度" and Q4.previous() == Q3
    week = Week.parse("2026-W47")
    assert week.start == cst(11, 16, 0) and week.end - week.start == 7 * DAY
    assert Week.of(cst(11, 22, 23, 59)) == week and Week.of(cst(11, 23, 0)) != week
    assert week.previous() == Week(year=2026, week=46)
    assert week.label == "2026年第47周（11月16日—11月22日）"
    assert Week.of(cst(1, 1, 0, year=2027)) == Week(year=2026, week=53)
    for bad in ("2026Q5", "Q4", "2026", "1999Q1"):
        with pytest.raises(PeriodError):
            Quarter.parse(bad)
    for bad in ("2026-W54", "2025-W53", "2026-47", "x"):
        with pytest.raises(PeriodError):
            Week.parse(bad)


def test_point_lines_are_plain_json() -> None:
    line = PointLine(item="14-000001", title="t", node="14", unit=None, rule="unfinished",
                     points=Decimal("-2"), at=HOUR, events=("ab",), deadlines=("deploy",),
                     due=1)
    assert line.to_dict()["points"] == -2 and isinstance(line.to_dict()["points"], int)
