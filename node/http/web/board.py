"""The command board (挂图作战): rates by node and board, overdue by unit, ranking, trend.

Charts are SVG drawn on the server (``node.http.web.charts``) from the page tallies
(``node.queries.figures``); the quarter's ranking by incentive points comes from
``node.queries.standings``. docs/pages.md says what each one shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from node.errors import Forbidden, Invalid, NotFound
from node.http.services import CLOCK, DB, FIGURES, REPORTS, TREE
from node.http.web import charts
from node.http.web.render import node_name, page, render, translator
from node.queries import assemble, standings
from node.queries.periods import PeriodError, Quarter, Week
from node.storage.accounts import User

WEEKS = 12
RANKED = 20


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def overdue_by_unit(
    red: Mapping[tuple[str, str], int], names: assemble.Names, limit: int = 12
) -> list[tuple[str, str, int]]:
    """(node name, unit name or "", red count), most first, from red counts per
    (node, unit). Items handled by a node as a whole (no unit) count under the node."""
    rows: list[tuple[str, str, int]] = []
    for (node, unit), n in sorted(red.items()):
        if n > 0 and unit:
            rows.append((names.node(node), names.unit(node, unit) or unit, n))
    for (node, unit), n in sorted(red.items()):
        if n > 0 and not unit:
            rows.append((names.node(node), "", n))
    rows.sort(key=lambda r: (-r[2], r[0], r[1]))  # stable: ties keep (node, unit) order
    return rows[:limit]


@page
async def board_page(request: web.Request, user: User) -> web.StreamResponse:
    reports = request.app[REPORTS]
    known = request.app[TREE]
    me = known.me
    t = translator(request)
    tree = known.tree
    now = request.app[CLOCK].now_ms()
    top = request.query.get("node") or me
    if top not in tree:
        raise NotFound("unknown_node", f"no node {top[:80]!r} is known here", "node")
    if not tree.in_subtree(me, top):
        raise Forbidden("not_in_scope", f"{top} is outside {me}'s subtree", "node")
    try:
        quarter = Quarter.parse(request.query["quarter"]) if "quarter" in request.query \
            else Quarter.of(now)
    except PeriodError as exc:
        raise Invalid("bad_field", f"quarter: {exc}", "quarter") from None
    week = Week.of(now)
    weeks = [week]
    for _ in range(WEEKS - 1):
        weeks.insert(0, weeks[0].previous())
    children = list(tree.children(top))
    fig = await request.app[FIGURES].board(top, children, quarter, [w.start for w in weeks])
    names = await reports.names()
    ranking = await standings.standings(
        request.app[DB], now, known.path_of(top), quarter, reports.rules, limit=RANKED,
    )

    def label(node: str) -> str:
        return t("board.own") if node == top and children else node_name(tree, node)

    series = [t("board.series.completion"), t("board.series.on_time")]
    node_rows = [
        (label(n), (r.completion, r.on_time_rate))
        for n, r in sorted(fig.by_node.items(), key=lambda p: (p[0] == top, p[0]))
    ]
    board_order = {b: i for i, b in enumerate(reports.boards)}
    board_rows = [
        (t.board(b), (r.completion, r.on_time_rate))
        for b, r in sorted(fig.by_board.items(), key=lambda p: board_order.get(p[0], 99))
    ]

    unit_rows = [
        (f"{node} · {unit}" if unit else node, (float(k),))
        for node, unit, k in overdue_by_unit(fig.red_by_unit, names)
    ]
    pending: int | None = None
    if isinstance(ranking, standings.Pending):
        scores: dict[str, Any] = {"nodes": [], "units": [], "final": False}
        pending = ranking.items
    else:
        scores = {**assemble.standings_of(ranking, names), "final": ranking.final}
    week_labels = [f"{w.monday.month}/{w.monday.day}" for w in weeks]
    trend = charts.lines(
        t("board.trend", n=WEEKS),
        week_labels,
        [
            (t("board.trend.assigned"), [w[1] for w in fig.weeks]),
            (t("board.trend.done"), [w[2] for w in fig.weeks]),
            (t("board.trend.overdue_done"), [w[3] for w in fig.weeks]),
        ],
    )
    quarters = [Quarter.of(now)]
    for _ in range(3):
        quarters.append(quarters[-1].previous())
    return await render(
        request,
        "board.html",
        user=user,
        nav="board",
        top=top,
        top_name=node_name(tree, top),
        quarter=quarter,
        quarter_label=quarter.label if t.lang == "zh-CN" else quarter.code,
        quarters=quarters,
        total=fig.total,
        open_now=fig.open_now,
        overdue_now=sum(fig.overdue_now.values()),
        pct=_pct,
        chart_nodes=charts.bars(t("board.by_node"), node_rows, series, empty=t("board.no_data")),
        chart_boards=charts.bars(
            t("board.by_board"), board_rows, series, empty=t("board.no_data")
        ),
        chart_units=charts.bars(
            t("board.overdue_by_unit"), unit_rows, [t("tree.overdue")], percent=False,
            empty=t("board.none_overdue"),
        ),
        chart_trend=trend,
        ranked=scores["nodes"][:RANKED],
        ranked_units=scores["units"][:RANKED],
        scores_final=scores["final"],
        scores_pending=pending,
    )
