"""The tree page and the command board over HTTP show what the reports API says, while
the node's keeper scores items in the background and after it has.

The story of ``test_reports`` (province 14 with two units and city 1401, all
through the API, September 2026): the pages are read mid-week (an item yellow,
one red, items just written and not scored yet), again once the keeper has
scored everything, and after the quarter (the ranking final). The board's KPIs
and ranking table and the tree's counts are read from the HTML and compared with
``/api/v1/colours`` and ``/api/v1/scores`` (the event replay).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from node.demo.localtree import RunningNode
from node.queries import standings
from node.storage import schema as t
from tests.api_client import Api
from tests.federation import eventually
from tests.integration.test_reports import cst, first_days_played, rest_of_the_week

_ROW = re.compile(r'<tr data-node="([^"]+)"(?: data-unit="([^"]*)")?>(.*?)</tr>', re.S)
_CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
_TAG = re.compile(r"<[^>]+>")


async def page(api: Api, path: str) -> str:
    async with api.session.get(api.node.url + path, headers=api.headers,
                               allow_redirects=False) as resp:
        body = await resp.text()
        assert resp.status == 200, (path, resp.status, body[:300])
        return body


def number(text: str) -> float:
    return float(text.replace("−", "").replace("+", "") or 0)


def ranking(board: str) -> list[tuple[str, str | None, int, float, float, float, int]]:
    """(node, unit, rank, points, gained, deducted, items) of every ranking row."""
    section = board[board.index('id="ranking"'):]
    out = []
    for node, unit, row in _ROW.findall(section):
        cells = [html.unescape(_TAG.sub("", c)).strip() for c in _CELL.findall(row)]
        rank, _, total, gained, deducted, items = cells
        out.append((node, unit or None, int(rank), number(total), number(gained),
                    number(deducted), int(items)))
    return out


def expected(scores: dict[str, Any]) -> list[tuple[str, str | None, int, float, float, float, int]]:
    return [
        (s["node"], s.get("unit"), s["rank"], float(s["total"]), float(s["gained"]),
         float(s["deducted"]), s["items"])
        for s in [*scores["nodes"][:20], *scores["units"][:20]]
    ]


def kpis(board: str) -> dict[str, str]:
    return dict(re.findall(r'<b id="kpi-([a-z-]+)">([^<]*)</b>', board))


def tree_counts(tree: str) -> dict[str, tuple[int, int, int]]:
    """Per node row: (open, overdue, done) as the tree page shows them (with descendants)."""
    out = {}
    for node, row in re.findall(r'<li data-node="([^"]+)">(.*?)</div>', tree, re.S):
        numbers = re.findall(r'class="n-(?:open|overdue|done)[^"]*"[^>]*>[^<]*<b>(\d+)</b>', row)
        out[node] = tuple(int(n) for n in numbers)
    return out


async def same_as_the_api(viewer: Api, quarter: str) -> None:
    board = await page(viewer, f"/board?quarter={quarter}")
    scores = await viewer.get(f"/api/v1/scores?scope=14&quarter={quarter}")
    assert ranking(board) == expected(scores)
    colours = await viewer.get("/api/v1/colours")
    totals = colours["totals"]
    shown = kpis(board)
    assert int(shown["open"]) == totals["total"] - totals["grey"]
    assert int(shown["overdue"]) == totals["red"]
    tree = tree_counts(await page(viewer, "/tree"))
    by_node = {n["node"]: n for n in colours["nodes"]}
    city = by_node.get("1401", {"red": 0, "total": 0, "grey": 0})
    assert tree["1401"][:2] == (city["total"] - city["grey"], city["red"])
    assert tree["14"][:2] == (totals["total"] - totals["grey"], totals["red"])


async def unscored(node: RunningNode) -> int:
    async with node.ctx.db.read() as conn:
        return int(await conn.scalar(
            select(func.count()).select_from(t.score_exceptions)
            .where(t.score_exceptions.c.reason == "dirty")
        ) or 0)


async def test_pages_show_what_the_reports_say(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with first_days_played(tmp_path, db_url) as scene:
        fed, story = scene.fed, scene.story
        province, city, viewer = scene.province, scene.city, scene.viewer

        story.at(cst(9, 10, 8))  # B's feedback is due at 09:00: yellow since 04:00
        await same_as_the_api(viewer, "2026Q3")  # whatever the keeper has scored yet
        board = await page(viewer, "/board")
        assert 'id="ranking-pending"' not in board
        await eventually(lambda: _zero(fed["14"]), what="the keeper scoring every item")
        await same_as_the_api(viewer, "2026Q3")

        await rest_of_the_week(story)
        story.at(cst(9, 13, 23))  # deadlines pass while nothing is written
        await same_as_the_api(viewer, "2026Q3")
        story.at(cst(9, 15, 10))
        await story.act(province, "C", "review", {"outcome": "accept"})
        await story.status_is(city, "C", "accepted")
        story.at(cst(10, 8, 9))  # the quarter is over: its ranking is final
        await same_as_the_api(viewer, "2026Q3")
        await eventually(lambda: _zero(fed["14"]), what="the keeper scoring every item")
        await same_as_the_api(viewer, "2026Q3")
        await same_as_the_api(viewer, "2026Q4")
        board = await page(viewer, "/board?quarter=2026Q3")
        assert ranking(board)[0][:4] == ("1401", None, 1, 6.0)

        # Too many items to replay (after the upgrade, a large catch-up): the board
        # says the ranking is being worked out; its other figures are there.
        monkeypatch.setattr(standings, "REPLAY_CAP", -1)
        board = await page(viewer, "/board?quarter=2026Q3")
        assert 'id="ranking-pending"' in board and ranking(board) == []
        assert kpis(board)["overdue"] == str(
            (await viewer.get("/api/v1/colours"))["totals"]["red"])


async def _zero(node: RunningNode) -> bool:
    return await unscored(node) == 0
