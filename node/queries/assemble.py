"""Reports from a node's database, for the API and the CLI alike.

Each is a method of :class:`Reports`, built once per node with what it reads
(the database, the clock, the tree, the accounts, the score rules and the boards):

- :meth:`Reports.colour_counts`: 绿黄红 counts per node and per unit right now, one
  SQL aggregation over the items table with the stored colour thresholds;
- :meth:`Reports.weekly_report`: the weekly summary (每周汇总) of a scope;
- :meth:`Reports.quarterly_report` / :meth:`Reports.quarter_scores`: the quarterly
  bulletin (季度通报) and the incentive points behind it, every line with its event ids;
- :meth:`Reports.ledger_xlsx`: the ledger (台账) as an Excel file, with exactly the
  ledger API's filters.

Past instants are seen as they were: an item touched after the instant is
folded again from its events dated up to it; the others are read from their
rows. Refusals are :mod:`node.errors` kinds with a stable reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, case, func, or_, select

from node.clock import Clock, iso
from node.config import Config, ConfigError
from node.errors import Forbidden, Invalid, NotFound, bad
from node.items.projection import item_events
from node.queries import excel, labels, ledger
from node.queries.periods import PeriodError, Quarter, Week
from node.queries.scores import (
    RULES,
    ItemScore,
    QuarterScores,
    ScoreRules,
    Standing,
    score_item,
    tally,
)
from node.queries.summary import ItemFacts, Summary, facts_of, on_time_rate, summarise
from node.storage import schema as t
from node.storage.accounts import Accounts
from node.storage.db import Database
from node.sync.routing import KnownTree
from protocol import rules as deadlines
from protocol.errors import ProtocolError
from protocol.events import Event
from protocol.fold import ItemState, fold
from protocol.rules import CHINA_TZ

logger = logging.getLogger(__name__)

MAX_EXPORT_ROWS: Final = 100_000
_CHUNK: Final = 500
_NOT_COLOUR_FILTERS: Final = ("colour", "overdue", "sort", "limit", "offset")


def score_rules(config: Config) -> ScoreRules:
    """The ``[scores]`` settings as rules; ConfigError names a bad one."""
    try:
        return ScoreRules.from_numbers({rule: config[f"scores.{rule}"] for rule in RULES})
    except ValueError as exc:
        raise ConfigError(f"{config.data_dir}: {exc}") from None


# -- names and scope -----------------------------------------------------------------------


class Names:
    """Display names: nodes from their certificates, units from this node's table."""

    def __init__(self, tree: KnownTree, units: Mapping[str, str]) -> None:
        self.tree = tree
        self.units = units

    def node(self, node: str) -> str:
        try:
            return self.tree.trust.current(node).name
        except ProtocolError:
            return node

    def unit(self, node: str, unit: str | None) -> str:
        if unit is None:
            return ""
        return self.units.get(unit, unit) if node == self.tree.me else unit


def resolve_scope(tree: KnownTree, scope: str | None) -> tuple[str, str]:
    """(scope node, its path): NotFound for an unknown node, Forbidden outside this
    node's subtree."""
    me = tree.me
    scope = scope or me
    if not tree.trust.has_node(scope):
        raise NotFound("unknown_node", f"scope: no node {scope[:64]!r} is known here", "scope")
    if not tree.in_subtree(me, scope):
        raise Forbidden(
            "not_in_scope", f"scope: {scope} is outside {me}'s subtree", "scope"
        )
    return scope, tree.path_of(scope)


def parse_week(text: str | None, now: int) -> Week:
    if not text:
        return Week.of(now)
    try:
        return Week.parse(text)
    except PeriodError as exc:
        raise bad("week", str(exc)) from None


def parse_quarter(text: str | None, now: int) -> Quarter:
    if not text:
        return Quarter.of(now)
    try:
        return Quarter.parse(text)
    except PeriodError as exc:
        raise bad("quarter", str(exc)) from None


def _scope_dict(names: Names, scope: str) -> dict[str, str]:
    return {"node": scope, "name": names.node(scope)}


def _period_dict(period: Week | Quarter) -> dict[str, Any]:
    return {
        "code": period.code,
        "label": period.label,
        "start": iso(period.start),
        "end": iso(period.end),
    }


# -- items as of an instant ----------------------------------------------------------------

_FACT_COLUMNS: Final = (
    t.items.c.item_id,
    t.items.c.title,
    t.items.c.assignee,
    t.items.c.assignee_unit,
    t.items.c.lead_unit,
    t.items.c.board,
    t.items.c.status,
    t.items.c.assigned_at,
    t.items.c.deploy_due,
    t.items.c.feedback_due,
    t.items.c.resolve_due,
    t.items.c.progress,
    t.items.c.yellow_from,
    t.items.c.red_from,
)


def _facts_of_row(row: Any, state: Mapping[str, Any] | None) -> ItemFacts:
    """Facts from a row whose state is the item's state at the instant wanted."""
    finished, accepted, on_time = None, False, None
    if state is not None:
        if state["status"] == "withdrawn":
            finished = state["withdrawn_at"]
        elif state["status"] in ("accepted", "closed"):
            finished, accepted = state["reviewed_at"], True
            on_time = bool(state["deadlines"]["resolve"]["met"])
    return ItemFacts(
        item=row.item_id,
        title=row.title,
        node=row.assignee,
        unit=row.assignee_unit or row.lead_unit,
        board=row.board,
        status=row.status,
        assigned_at=row.assigned_at,
        deploy_due=row.deploy_due,
        feedback_due=row.feedback_due,
        resolve_due=row.resolve_due,
        progress=row.progress,
        finished_at=finished,
        accepted=accepted,
        on_time=on_time,
        yellow_from=row.yellow_from,
        red_from=row.red_from,
    )


def state_at(pairs: Sequence[tuple[str, Event]], at: int) -> ItemState | None:
    """The item as it was at ``at``: the fold of its events dated up to then."""
    try:
        return fold([pair for pair in pairs if pair[1].at <= at])
    except ProtocolError:
        return None




# -- weekly summary ------------------------------------------------------------------------


def _counts(counts: Mapping[str, int]) -> dict[str, Any]:
    return {**counts, "on_time_rate": on_time_rate(dict(counts))}


def _summary_dict(summary: Summary, names: Names) -> dict[str, Any]:
    return {
        "totals": _counts(summary.totals),
        "nodes": [
            {"node": node, "name": names.node(node), **_counts(counts)}
            for node, counts in summary.nodes.items()
        ],
        "units": [
            {"node": node, "node_name": names.node(node), "unit": unit,
             "unit_name": names.unit(node, unit), **_counts(counts)}
            for (node, unit), counts in summary.units.items()
        ],
        "overdue": [
            {
                **_item_dict(entry.facts, names),
                "deadline": entry.deadline,
                "due": iso(entry.due),
                "days_overdue": entry.days,
            }
            for entry in summary.overdue
        ],
        "due": [
            {**_item_dict(f, names), "due": iso(f.resolve_due),
             "done": f.finished_at is not None and f.finished_at <= summary.as_of}
            for f in summary.due
        ],
    }


def _item_dict(facts: ItemFacts, names: Names) -> dict[str, Any]:
    return {
        "id": facts.item,
        "title": facts.title,
        "board": facts.board,
        "node": facts.node,
        "node_name": names.node(facts.node),
        "unit": facts.unit,
        "unit_name": names.unit(facts.node, facts.unit),
        "status": facts.status,
        "progress": facts.progress,
    }




# -- quarter: scores and bulletin ----------------------------------------------------------




def _line_dict(line: dict[str, Any], names: Names) -> dict[str, Any]:
    return {
        **line,
        "rule_name": labels.RULE[line["rule"]],
        "at": iso(line["at"]),
        "due": iso(line["due"]),
        "node_name": names.node(line["node"]),
        "unit_name": names.unit(line["node"], line["unit"]),
    }


def _standings(scores: QuarterScores, names: Names, *, with_lines: bool) -> dict[str, Any]:
    def one(standing: Standing) -> dict[str, Any]:
        out: dict[str, Any] = standing.to_dict(with_lines=with_lines)
        out["node_name"] = names.node(standing.node)
        if standing.unit is not None:
            out["unit_name"] = names.unit(standing.node, standing.unit)
        if with_lines:
            out["lines"] = [_line_dict(line, names) for line in out["lines"]]
        return out

    return {
        "units": [one(s) for s in scores.units],
        "nodes": [one(s) for s in scores.nodes],
    }


def standings_of(scores: QuarterScores, names: Names) -> dict[str, Any]:
    """The ranked standings (no lines) as the scores API writes them, with names."""
    return _standings(scores, names, with_lines=False)






# -- the ledger as Excel -------------------------------------------------------------------


def _latest_feedback(state: Mapping[str, Any]) -> str:
    """The newest report: the last feedback, or the resolution if it came later."""
    candidates: list[tuple[int, str]] = []
    if state.get("feedback"):
        last = state["feedback"][-1]
        candidates.append((last["at"], last["text"]))
    resolved_at = state["deadlines"]["resolve"]["done_at"]
    if state.get("resolution") and resolved_at is not None:
        candidates.append((resolved_at, f"【办结】{state['resolution']}"))
    if not candidates:
        return ""
    at, text = max(candidates, key=lambda pair: pair[0])
    return f"{excel.local_time(at):%Y-%m-%d} {text}"


def _urges(state: Mapping[str, Any], names: Names) -> str:
    """"催办2次，最近 2026-12-08 09:00 张三（山西省）": how often the item was urged (催办),
    and the last time by whom; "" if never."""
    urges = state.get("urges") or ()
    if not urges:
        return ""
    last = urges[-1]
    return (f"催办{len(urges)}次，最近 {excel.local_time(last['at']):%Y-%m-%d %H:%M} "
            f"{last['author']}（{names.node(last['by'])}）")


def _ledger_row(row: Any, names: Names, now: int, points: Decimal | None) -> excel.LedgerRow:
    """One printed row; an accepted or closed item shows 100 % progress."""
    state = json.loads(row.state)
    colour = deadlines.colour_at(row.done, row.yellow_from, row.red_from, now)
    unit = row.assignee_unit or row.lead_unit
    return excel.LedgerRow(
        item=row.item_id,
        title=row.title,
        board=labels.name(labels.BOARD, row.board),
        source=labels.name(labels.SOURCE, state.get("source")),
        item_class=labels.name(labels.CLASS, row._mapping["class"]),
        assigner=names.node(row.assigner),
        assignee=names.node(row.assignee),
        unit=names.unit(row.assignee, unit),
        co_units="、".join(names.unit(row.assignee, u) for u in state.get("co_units", ())),
        assigned_at=row.assigned_at,
        deadline=row.resolve_due,
        status=labels.name(labels.STATUS, row.status),
        progress=100 if row.status in ("accepted", "closed") else row.progress,
        colour=str(colour),
        latest_feedback=_latest_feedback(state),
        overdue=colour is deadlines.Colour.RED,
        urges=_urges(state, names),
        grade=labels.name(labels.GRADE, state.get("grade")) if state.get("grade") else "",
        points=points,
    )


def _filters_text(params: Mapping[str, str]) -> str:
    shown = [f"{k}={v}" for k, v in sorted(params.items()) if k not in ("scope", "depth") and v]
    return "，".join(shown) if shown else "无"


# -- the service ---------------------------------------------------------------------------


class Reports:
    """The reports of one node, from its database: built once (node/app.py, or the CLI)
    with what they read. ``rules``: the ``[scores]`` settings (:func:`score_rules`);
    ``boards``: this node's boards (``ledger.boards_of``)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        tree: KnownTree,
        accounts: Accounts,
        rules: ScoreRules,
        boards: tuple[str, ...],
    ) -> None:
        self.db = db
        self.clock = clock
        self.tree = tree
        self.accounts = accounts
        self.rules = rules
        self.boards = boards

    async def names(self) -> Names:
        """Display names of nodes and of this node's units, as they are now."""
        return Names(self.tree, await self.accounts.units())

    def _scope_where(self, scope: str | None) -> tuple[str, list[ColumnElement[bool]]]:
        me = self.tree.me
        query = ledger.parse_query({"scope": scope or me}, me, self.boards)
        scope, path = resolve_scope(self.tree, query.scope)
        return scope, ledger.where_clauses(query, path, self.clock.now_ms())

    async def colour_counts(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Items per colour now, per node and per unit, under the ledger's filters
        (all but colour, overdue, sort and paging)."""
        for name in _NOT_COLOUR_FILTERS:
            if name in params:
                raise bad(name, "is not a filter of colour counts", "unknown_field")
        query = ledger.parse_query(params, self.tree.me, self.boards)
        scope, path = resolve_scope(self.tree, query.scope)
        now = self.clock.now_ms()
        c = t.items.c
        unit = func.coalesce(c.assignee_unit, c.lead_unit).label("unit")
        sums = [
            func.sum(case((ledger.colour_clause(colour, now), 1), else_=0)).label(colour)
            for colour in ledger.COLOURS
        ]
        stmt = (
            select(c.assignee, unit, *sums)
            .where(*ledger.where_clauses(query, path, now))
            .group_by(c.assignee, unit)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        names = await self.names()

        def zero() -> dict[str, int]:
            return dict.fromkeys((*ledger.COLOURS, "total"), 0)

        totals = zero()
        nodes: dict[str, dict[str, int]] = {}
        units: dict[tuple[str, str], dict[str, int]] = {}
        for row in rows:
            counts = {colour: int(row._mapping[colour] or 0) for colour in ledger.COLOURS}
            counts["total"] = sum(counts.values())
            buckets = [totals, nodes.setdefault(row.assignee, zero())]
            if row.unit is not None:
                buckets.append(units.setdefault((row.assignee, row.unit), zero()))
            for bucket in buckets:
                for key, value in counts.items():
                    bucket[key] += value
        return {
            "scope": _scope_dict(names, scope),
            "now": iso(now),
            "totals": totals,
            "nodes": [
                {"node": node, "name": names.node(node), **counts}
                for node, counts in sorted(nodes.items())
            ],
            "units": [
                {"node": node, "node_name": names.node(node), "unit": unit_code,
                 "unit_name": names.unit(node, unit_code), **counts}
                for (node, unit_code), counts in sorted(units.items())
            ],
        }

    async def facts_as_of(
        self, where: Sequence[ColumnElement[bool]], *, start: int, as_of: int
    ) -> list[ItemFacts]:
        """Every item in ``where`` that could count in a period from ``start``, as of ``as_of``.

        Items finished before ``start`` and untouched since are left out: they count
        in nothing. Rows untouched since ``as_of`` are read as they are; the others
        are folded again from their events dated up to ``as_of``.
        """
        c = t.items.c
        base = [*where, c.assigned_at <= as_of]
        out: list[ItemFacts] = []
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(*_FACT_COLUMNS).where(*base, c.done.is_(False), c.updated_at <= as_of)
            )
            out.extend(_facts_of_row(row, None) for row in rows)
            rows = await conn.execute(
                select(*_FACT_COLUMNS, c.state).where(
                    *base, c.done.is_(True), c.updated_at >= start, c.updated_at <= as_of
                )
            )
            out.extend(_facts_of_row(row, json.loads(row.state)) for row in rows)
            later = list(await conn.scalars(select(c.item_id).where(*base, c.updated_at > as_of)))
            for i in range(0, len(later), _CHUNK):
                grouped = await item_events(conn, later[i : i + _CHUNK])
                for pairs in grouped.values():
                    state = state_at(pairs, as_of)
                    if state is not None:
                        out.append(facts_of(state))
                await asyncio.sleep(0)
        return out

    async def weekly_report(
        self, *, scope: str | None = None, week: str | None = None
    ) -> dict[str, Any]:
        """The weekly summary of ``scope`` (default: this node) for ``week`` (default: this one)."""
        now = self.clock.now_ms()
        period = parse_week(week, now)
        scope, where = self._scope_where(scope)
        as_of = min(period.end - 1, now)
        facts = await self.facts_as_of(where, start=period.start, as_of=as_of)
        summary = summarise(facts, start=period.start, end=period.end, as_of=as_of)
        names = await self.names()
        return {
            "kind": "weekly",
            "scope": _scope_dict(names, scope),
            "period": _period_dict(period),
            "as_of": iso(as_of),
            "final": as_of == period.end - 1,
            **_summary_dict(summary, names),
        }

    async def _score(
        self, where: Sequence[ColumnElement[bool]], quarter: Quarter, rules: ScoreRules
    ) -> tuple[QuarterScores, list[ItemFacts]]:
        now = self.clock.now_ms()
        instant = min(quarter.end - 1, now)
        c = t.items.c
        stmt = select(c.item_id).where(
            *where,
            c.assigned_at <= instant,
            or_(c.done.is_(False), c.updated_at >= quarter.start),
        )
        scores: list[ItemScore] = []
        facts: list[ItemFacts] = []
        async with self.db.read() as conn:
            ids = sorted(await conn.scalars(stmt))
            for i in range(0, len(ids), _CHUNK):
                grouped = await item_events(conn, ids[i : i + _CHUNK])
                for pairs in grouped.values():
                    if not pairs:
                        continue
                    score = score_item(pairs, rules, quarter, instant)
                    scores.append(score)
                    if score.state is not None:
                        facts.append(facts_of(score.state))
                await asyncio.sleep(0)
        return tally(scores, rules, quarter, instant), facts

    async def quarter_scores(
        self, *, scope: str | None = None, quarter: str | None = None
    ) -> dict[str, Any]:
        """Points and ranks per unit and per node, with every point line and its event ids."""
        period = parse_quarter(quarter, self.clock.now_ms())
        scope, where = self._scope_where(scope)
        rules = self.rules
        scores, _ = await self._score(where, period, rules)
        names = await self.names()
        return {
            "kind": "scores",
            "scope": _scope_dict(names, scope),
            "period": _period_dict(period),
            "as_of": iso(scores.as_of),
            "final": scores.final,
            "rules": rules.to_dict(),
            **_standings(scores, names, with_lines=True),
        }

    async def quarterly_report(
        self, *, scope: str | None = None, quarter: str | None = None
    ) -> dict[str, Any]:
        """The quarterly bulletin: totals, rankings and the items overdue at the quarter's end."""
        period = parse_quarter(quarter, self.clock.now_ms())
        scope, where = self._scope_where(scope)
        rules = self.rules
        scores, facts = await self._score(where, period, rules)
        summary = summarise(facts, start=period.start, end=period.end, as_of=scores.as_of)
        names = await self.names()
        body = _summary_dict(summary, names)
        return {
            "kind": "quarterly",
            "scope": _scope_dict(names, scope),
            "period": _period_dict(period),
            "as_of": iso(scores.as_of),
            "final": scores.final,
            "rules": rules.to_dict(),
            "totals": body["totals"],
            "rankings": _standings(scores, names, with_lines=False),
            "overdue": body["overdue"],
        }

    async def ledger_xlsx(self, params: Mapping[str, str]) -> tuple[bytes, str, int]:
        """(the .xlsx bytes, a file name, the number of items) for the ledger filters ``params``.

        Every filter and the sort of ``GET /api/v1/items`` apply; without ``limit``
        or ``offset`` every matching item is exported (at most MAX_EXPORT_ROWS).
        """
        query = ledger.parse_query(params, self.tree.me, self.boards)
        scope, path = resolve_scope(self.tree, query.scope)
        now = self.clock.now_ms()
        where = ledger.where_clauses(query, path, now)
        order = ledger.SORTS[query.sort]
        stmt = (
            select(*ledger.LIST_COLUMNS, t.items.c.state)
            .where(*where)
            .order_by(order.desc() if query.descending else order.asc(), t.items.c.item_id.asc())
        )
        paged = "limit" in params or "offset" in params
        if paged:
            stmt = stmt.limit(query.limit).offset(query.offset)
        names = await self.names()
        async with self.db.read() as conn:
            if not paged:
                counted = select(func.count()).select_from(t.items).where(*where)
                total = int(await conn.scalar(counted) or 0)
                if total > MAX_EXPORT_ROWS:
                    raise Invalid(
                        "too_many_rows",
                        f"{total} items match; narrow the filters to at most {MAX_EXPORT_ROWS}",
                    )
            found = list(await conn.execute(stmt))
            points = await ledger.points_of(conn, [r.item_id for r in found], self.rules)
            rows = [_ledger_row(row, names, now, points[row.item_id]) for row in found]
        stamp = datetime.fromtimestamp(now / 1000, CHINA_TZ)
        title = f"{names.node(scope)}“13710”督办事项台账"
        info = (
            f"范围：{names.node(scope)}（{scope}）{'本级' if query.only_node else '及所辖下级'}；"
            f"筛选：{_filters_text(params)}；导出时间：{stamp:%Y-%m-%d %H:%M}；共{len(rows)}项"
        )
        data = await asyncio.to_thread(excel.workbook_bytes, title, info, rows)
        return data, f"ledger-{scope}-{stamp:%Y%m%d-%H%M}.xlsx", len(rows)
