"""Reports over a real tree on loopback: colours, the weekly summary, the quarterly
bulletin, scores with the events behind every point, the ledger as Excel (opened
again with openpyxl, its cells checked), and ``duban report`` / ``duban export``.

Province 14 (units finance 财政厅 and env 生态环境厅) and city 1401 share one
ManualClock walking through September 2026 (2026Q3, week W37 = 09-07..09-13).
That is in the past, so the CLI, which reads the real time, sees the same
finished periods as the API. The history, all through the HTTP API:

===== ========= ============================================================
item  handler   history (China time; deadlines +1 d, +3 d, +7 d)
===== ========= ============================================================
E     1401      assigned 09-01 09:00, deployed 10:00, feedback 09-03, resolved
                09-07 16:00, accepted 09-08 10:00 (on time, first review)
A     finance   assigned 09-07 09:00 (co-unit env), deployed 10:00, feedback
                09-08, resolved 09-10 10:00, accepted 15:00, closed 09-11
B     env       assigned 09-07 09:00, deployed 09-08 10:00 (due 09:00: late),
                no feedback: yellow from 09-10 04:00, red from 09:00, and
                still open when the quarter ends
C     1401      assigned 09-07 09:00, deployed 11:00, feedback 09-09, resolved
                09-11, returned 09-12, resolved 09-13, accepted 09-15
D     finance   assigned 09-09 09:00 with deadline 10-30 18:00, deployed 10:00,
                feedback 09-11 10:00
===== ========= ============================================================

Q3 points by hand (default rules): finance = A 0.5+1+3 + D 0.5+1 = 6;
env = B -0.5 (late deploy) -2 (unfinished) = -2.5; node 14 = 6 - 2.5 = 3.5;
1401 = E 0.5+1+3 + C 0.5+1-1 (returned)+1 (qualified) = 6.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from node.cli import LEDGER_FILTERS
from node.clock import ManualClock
from node.demo.localtree import LocalTree
from node.queries.excel import COLUMNS, CONTENT_TYPE, HEADERS
from node.queries.ledger import _KNOWN as LEDGER_QUERY
from protocol.rules import CHINA_TZ
from tests.api_client import Api, person
from tests.federation import build, eventually

SHAPE = [("14", None, "山西省", "province"), ("1401", "14", "太原市", "city")]
REPO = Path(__file__).resolve().parents[2]


def cst(month: int, day: int, hour: int = 9, minute: int = 0) -> int:
    return int(datetime(2026, month, day, hour, minute, tzinfo=CHINA_TZ).timestamp()) * 1000


def when(month: int, day: int, hour: int = 9, minute: int = 0, second: int = 0) -> str:
    return f"2026-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}+08:00"


class Story:
    """The people of the two nodes acting at the clock's time, through the API."""

    def __init__(self, clock: ManualClock, province: Api, city: Api) -> None:
        self.clock, self.province, self.city = clock, province, city
        self.ids: dict[str, str] = {}

    def at(self, moment: int) -> None:
        self.clock.set(moment)

    async def assign(self, name: str, **body: Any) -> None:
        created = await self.province.post("/api/v1/items", body, expect=201)
        self.ids[name] = created["id"]

    async def act(self, api: Api, name: str, action: str, body: dict[str, Any]) -> None:
        await api.post(f"/api/v1/items/{self.ids[name]}/{action}", body)

    async def status_is(self, api: Api, name: str, status: str) -> None:
        async def check() -> bool:
            data = await api.call("GET", f"/api/v1/items/{self.ids[name]}", expect=None)
            return data.get("status") == status

        await eventually(check, what=f"{name} {status} at {api.node.id}")


async def first_days(s: Story) -> None:
    province, city = s.province, s.city
    s.at(cst(9, 1, 9))
    await s.assign("E", title="排查燃气安全隐患", assignee="1401", board="daily",
                   source="topical")
    await s.status_is(city, "E", "assigned")
    s.at(cst(9, 1, 10))
    await s.act(city, "E", "deploy", {"note": "已召开专题会议部署"})
    s.at(cst(9, 3, 10))
    await s.act(city, "E", "feedback", {"text": "已排查燃气用户1200户", "progress": 60})
    s.at(cst(9, 7, 9))
    await s.assign("A", title="落实减税降费政策", assignee="finance", board="key_task",
                   source="executive", co_units=["env"])
    await s.assign("B", title="整治入河排污口", assignee="env", board="daily",
                   source="instruction")
    await s.assign("C", title="解决企业用地手续问题", assignee="1401", board="investment",
                   source="office")
    await s.status_is(city, "C", "assigned")
    s.at(cst(9, 7, 10))
    await s.act(province, "A", "deploy", {"note": "已研究部署"})
    s.at(cst(9, 7, 11))
    await s.act(city, "C", "deploy", {"note": "已研究部署"})
    s.at(cst(9, 7, 16))
    await s.act(city, "E", "resolve", {"text": "隐患已全部整改"})
    await s.status_is(province, "E", "resolved")
    s.at(cst(9, 8, 10))
    await s.act(province, "E", "review", {"outcome": "accept"})
    await s.act(province, "B", "deploy", {"note": "已研究部署"})
    await s.act(province, "A", "feedback", {"text": "已完成政策梳理", "progress": 40})
    s.at(cst(9, 9, 9))
    await s.assign("D", title="推进大气污染联防联控", assignee="finance", board="reform",
                   source="plenary", deadline="2026-10-30T18:00")
    s.at(cst(9, 9, 10))
    await s.act(city, "C", "feedback", {"text": "已完成现场踏勘", "progress": 30})
    await s.act(province, "D", "deploy", {"note": "已研究部署"})
    await s.status_is(province, "C", "reporting")


async def rest_of_the_week(s: Story) -> None:
    province, city = s.province, s.city
    s.at(cst(9, 10, 10))
    await s.act(province, "A", "resolve", {"text": "政策已全部落实到位"})
    s.at(cst(9, 10, 15))
    await s.act(province, "A", "review", {"outcome": "accept"})
    s.at(cst(9, 11, 9))
    await s.act(province, "A", "close", {"note": "销号"})
    s.at(cst(9, 11, 10))
    await s.act(city, "C", "resolve", {"text": "用地手续已办结"})
    await s.act(province, "D", "feedback", {"text": "已制定联防联控方案", "progress": 20})
    await s.status_is(province, "C", "resolved")
    s.at(cst(9, 12, 10))
    await s.act(province, "C", "review", {"outcome": "return", "reason": "缺少不动产证复印件"})
    await s.status_is(city, "C", "returned")
    s.at(cst(9, 13, 10))
    await s.act(city, "C", "resolve", {"text": "已补充不动产证复印件"})
    await s.status_is(province, "C", "resolved")


@dataclass
class Scene:
    """The tree after the story's first days, and who acts and looks in it."""

    fed: LocalTree
    story: Story
    province: Api
    city: Api
    viewer: Api


@asynccontextmanager
async def first_days_played(tmp_path: Path, db_url: str) -> AsyncIterator[Scene]:
    """The tree (the province on ``db_url``, the others on SQLite) with the province's
    two units, a supervisor at the province and at the city, a leader who views, and
    the story's first days played; stopped afterwards."""
    clock = ManualClock(cst(9, 1, 8))
    fed = await build(tmp_path, clock, SHAPE, extra_for={"14": {"database.url": db_url}})
    try:
        ctx = fed["14"].ctx
        await ctx.accounts.add_unit("finance", "财政厅", office=False, now=clock.now_ms())
        await ctx.accounts.add_unit("env", "生态环境厅", office=False, now=clock.now_ms())
        async with aiohttp.ClientSession() as session:
            province = Api(session, fed["14"], await person(fed["14"], "sup", "supervisor"))
            city = Api(session, fed["1401"], await person(fed["1401"], "city", "supervisor"))
            viewer = Api(session, fed["14"], await person(fed["14"], "leader", "viewer"))
            story = Story(clock, province, city)
            await first_days(story)
            yield Scene(fed, story, province, city, viewer)
    finally:
        await fed.stop()


async def test_reports_scores_and_excel_over_a_real_tree(tmp_path: Path, db_url: str) -> None:
    """The province on SQLite, then on PostgreSQL (the city on SQLite)."""
    async with first_days_played(tmp_path, db_url) as scene:
        fed, story = scene.fed, scene.story
        province, city, viewer = scene.province, scene.city, scene.viewer

        story.at(cst(9, 10, 8))  # B's feedback is due at 09:00: yellow since 04:00
        await check_colours_midweek(viewer)
        await check_refusals(viewer, city)

        await rest_of_the_week(story)
        story.at(cst(9, 13, 18))  # W37 seen on its last day, still running
        running = await viewer.get("/api/v1/reports/weekly?week=2026-W37")
        assert running["final"] is False and running["as_of"] == when(9, 13, 18)

        story.at(cst(9, 15, 10))
        await story.act(province, "C", "review", {"outcome": "accept"})
        await story.status_is(city, "C", "accepted")
        story.at(cst(10, 8, 9))  # the quarter is over

        ids = story.ids
        weekly = await viewer.get("/api/v1/reports/weekly?scope=14&week=2026-W37")
        check_weekly(weekly, ids)
        # Seen after the week, C (accepted since) is folded back to how it was.
        assert {k: v for k, v in running.items() if k not in ("as_of", "final")} == {
            k: v for k, v in weekly.items() if k not in ("as_of", "final")}
        text = await text_of(viewer, "/api/v1/reports/weekly?week=2026-W37&format=text")
        assert text.startswith("# 山西省“13710”督办事项每周汇总")
        assert "本周新增事项 4 项；本周到期 1 项，其中已办结 1 项；本周办结 2 项" in text
        assert (f"| 1 | {ids['B']} | 整治入河排污口 | 山西省 | 生态环境厅 | 首次反馈 | "
                "2026-09-10 09:00 | 4 |") in text

        scores = await viewer.get("/api/v1/scores?scope=14&quarter=2026Q3")
        await check_scores(scores, ids, viewer)
        city_view = await city.get("/api/v1/scores?quarter=2026Q3")
        assert [(s["node"], s["total"]) for s in city_view["nodes"]] == [("1401", 6)]
        assert city_view["units"] == []
        quarterly = await viewer.get("/api/v1/reports/quarterly?quarter=2026Q3")
        check_quarterly(quarterly, ids)

        colours = await viewer.get("/api/v1/colours")
        assert colours["totals"] == {"green": 1, "yellow": 0, "red": 1, "grey": 3,
                                     "total": 5}

        await check_excel(viewer, ids)
        await check_cli(fed, ids, weekly, quarterly, tmp_path)


async def text_of(api: Api, path: str) -> str:
    async with api.session.get(api.node.url + path, headers=api.headers) as resp:
        assert resp.status == 200 and resp.content_type == "text/markdown"
        return await resp.text()


async def check_colours_midweek(viewer: Api) -> None:
    """At 09-10 08:00: A, C, D green, B yellow, E (accepted) grey."""
    colours = await viewer.get("/api/v1/colours?scope=14")
    assert colours["now"] == when(9, 10, 8)
    assert colours["totals"] == {"green": 3, "yellow": 1, "red": 0, "grey": 1, "total": 5}
    assert colours["nodes"] == [
        {"node": "14", "name": "山西省", "green": 2, "yellow": 1, "red": 0, "grey": 0,
         "total": 3},
        {"node": "1401", "name": "太原市", "green": 1, "yellow": 0, "red": 0, "grey": 1,
         "total": 2},
    ]
    assert colours["units"] == [
        {"node": "14", "node_name": "山西省", "unit": "env", "unit_name": "生态环境厅",
         "green": 0, "yellow": 1, "red": 0, "grey": 0, "total": 1},
        {"node": "14", "node_name": "山西省", "unit": "finance", "unit_name": "财政厅",
         "green": 2, "yellow": 0, "red": 0, "grey": 0, "total": 2},
    ]
    only_city = await viewer.get("/api/v1/colours?scope=1401")
    assert only_city["totals"]["total"] == 2
    own_only = await viewer.get("/api/v1/colours?depth=node&board=daily")
    assert own_only["totals"] == {"green": 0, "yellow": 1, "red": 0, "grey": 0, "total": 1}


async def check_refusals(viewer: Api, city: Api) -> None:
    """No token, a scope outside the subtree or unknown, a bad period, a stray parameter."""
    anonymous = Api(viewer.session, viewer.node, "")
    anonymous.headers = {}
    for path in ("/api/v1/colours", "/api/v1/reports/weekly", "/api/v1/reports/quarterly",
                 "/api/v1/scores", "/api/v1/export/ledger.xlsx"):
        assert await anonymous.refused("GET", path, None, 401) == "auth_required"
    refusals = [
        (city, "/api/v1/scores?scope=14", 403, "not_in_scope"),
        (city, "/api/v1/export/ledger.xlsx?scope=14", 403, "not_in_scope"),
        (viewer, "/api/v1/colours?scope=99", 404, "unknown_node"),
        (viewer, "/api/v1/reports/weekly?week=2026-W60", 400, "bad_field"),
        (viewer, "/api/v1/scores?quarter=2026Q5", 400, "bad_field"),
        (viewer, "/api/v1/reports/weekly?weak=1", 400, "unknown_field"),
        (viewer, "/api/v1/reports/quarterly?format=pdf", 400, "bad_field"),
        (viewer, "/api/v1/colours?colour=red", 400, "unknown_field"),
        (viewer, "/api/v1/export/ledger.xlsx?bogus=1", 400, "unknown_field"),
        (viewer, "/api/v1/export/ledger.xlsx?status=nope", 400, "bad_field"),
    ]
    for api, path, status, reason in refusals:
        assert await api.refused("GET", path, None, status) == reason, path


def check_weekly(weekly: dict[str, Any], ids: dict[str, str]) -> None:
    """W37: new A B C D; due E (accepted 09-08); closed A and E, both on time; B overdue."""
    assert weekly["kind"] == "weekly" and weekly["final"] is True
    assert weekly["scope"] == {"node": "14", "name": "山西省"}
    assert weekly["period"] == {"code": "2026-W37", "label": "2026年第37周（9月7日—9月13日）",
                                "start": when(9, 7, 0), "end": when(9, 14, 0)}
    assert weekly["as_of"] == when(9, 13, 23, 59, 59)

    def counts(new: int, due: int, due_done: int, closed: int, on_time: int, overdue: int,
               green: int, yellow: int, red: int, rate: float | None) -> dict[str, Any]:
        return {"new": new, "due": due, "due_done": due_done, "closed": closed,
                "closed_on_time": on_time, "overdue": overdue, "open": green + yellow + red,
                "green": green, "yellow": yellow, "red": red, "on_time_rate": rate}

    assert weekly["totals"] == counts(4, 1, 1, 2, 2, 1, 2, 0, 1, 1.0)
    assert weekly["nodes"] == [
        {"node": "14", "name": "山西省", **counts(3, 0, 0, 1, 1, 1, 1, 0, 1, 1.0)},
        {"node": "1401", "name": "太原市", **counts(1, 1, 1, 1, 1, 0, 1, 0, 0, 1.0)},
    ]
    assert weekly["units"] == [
        {"node": "14", "node_name": "山西省", "unit": "env", "unit_name": "生态环境厅",
         **counts(1, 0, 0, 0, 0, 1, 0, 0, 1, None)},
        {"node": "14", "node_name": "山西省", "unit": "finance", "unit_name": "财政厅",
         **counts(2, 0, 0, 1, 1, 0, 1, 0, 0, 1.0)},
    ]
    [overdue] = weekly["overdue"]
    assert overdue == {
        "id": ids["B"], "title": "整治入河排污口", "board": "daily", "node": "14",
        "node_name": "山西省", "unit": "env", "unit_name": "生态环境厅", "status": "deployed",
        "progress": 0, "deadline": "feedback", "due": when(9, 10, 9), "days_overdue": 4,
    }
    assert [(d["id"], d["due"], d["done"]) for d in weekly["due"]] == [
        (ids["E"], when(9, 8, 9), True)]


async def check_scores(scores: dict[str, Any], ids: dict[str, str], viewer: Api) -> None:
    assert scores["final"] is True and scores["as_of"] == when(9, 30, 23, 59, 59)
    assert scores["rules"]["unfinished"] == 2 and scores["rules"]["deploy_on_time"] == 0.5
    assert [(s["rank"], s["node"], s["unit"], s["total"], s["gained"], s["deducted"])
            for s in scores["units"]] == [
        (1, "14", "finance", 6, 6, 0),
        (2, "14", "env", -2.5, 0, 2.5),
    ]
    assert [(s["rank"], s["node"], s["total"], s["items"]) for s in scores["nodes"]] == [
        (1, "1401", 6, 2),
        (2, "14", 3.5, 3),
    ]
    city = scores["nodes"][0]
    assert city["counts"]["resolved_excellent"] == 1 and city["counts"]["returned"] == 1
    assert [(ln["item"], ln["rule"], ln["points"]) for ln in city["lines"]] == [
        (ids["E"], "deploy_on_time", 0.5),
        (ids["E"], "feedback_on_time", 1),
        (ids["C"], "deploy_on_time", 0.5),
        (ids["E"], "resolved_excellent", 3),
        (ids["C"], "feedback_on_time", 1),
        (ids["C"], "returned", -1),
        (ids["C"], "resolved_qualified", 1),
    ]
    env = scores["units"][1]
    late, unfinished = env["lines"]
    assert (late["rule"], late["rule_name"], late["at"], late["due"]) == (
        "late_deploy", "逾期研究部署", when(9, 8, 10), when(9, 8, 9))
    assert (unfinished["rule"], unfinished["at"], unfinished["deadlines"]) == (
        "unfinished", when(9, 30, 23, 59, 59), ["feedback", "resolve"])
    # Traceable: every line's events are in its item's verified history.
    for standing in scores["nodes"]:
        for line in standing["lines"]:
            item = await viewer.get(f"/api/v1/items/{line['item']}")
            history = {h["event_id"]: h for h in item["history"]}
            assert set(line["events"]) <= set(history), line
            assert all(history[e]["verified"] for e in line["events"])
            assert history[line["events"][0]]["at"] == line["at"] or line["rule"] == "unfinished"
    c_history = (await viewer.get(f"/api/v1/items/{ids['C']}"))["history"]
    returned = next(ln for ln in city["lines"] if ln["rule"] == "returned")
    assert [h["type"] for h in c_history if h["event_id"] in returned["events"]] == [
        "item.resolved", "item.reviewed"]


def check_quarterly(quarterly: dict[str, Any], ids: dict[str, str]) -> None:
    assert quarterly["kind"] == "quarterly" and quarterly["final"] is True
    assert quarterly["period"]["label"] == "2026年第三季度"
    totals = quarterly["totals"]
    assert (totals["new"], totals["closed"], totals["closed_on_time"], totals["on_time_rate"],
            totals["open"], totals["overdue"], totals["due"], totals["due_done"]) == (
        5, 3, 3, 1.0, 2, 1, 4, 3)
    rankings = quarterly["rankings"]
    assert [(s["rank"], s["unit_name"], s["total"]) for s in rankings["units"]] == [
        (1, "财政厅", 6), (2, "生态环境厅", -2.5)]
    assert [(s["rank"], s["node_name"], s["total"]) for s in rankings["nodes"]] == [
        (1, "太原市", 6), (2, "山西省", 3.5)]
    assert "lines" not in rankings["units"][0]
    assert [(o["id"], o["deadline"], o["days_overdue"]) for o in quarterly["overdue"]] == [
        (ids["B"], "feedback", 21)]


async def xlsx(api: Api, query: str) -> tuple[Worksheet, dict[str, str]]:
    async with api.session.get(api.node.url + "/api/v1/export/ledger.xlsx" + query,
                               headers=api.headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == CONTENT_TYPE
        data = await resp.read()
        headers = dict(resp.headers)
    return load_workbook(io.BytesIO(data))["台账"], headers


def rows(ws: Worksheet) -> list[list[Any]]:
    return [[c.value for c in row] for row in ws.iter_rows(min_row=4)]


async def check_excel(viewer: Api, ids: dict[str, str]) -> None:
    ws, headers = await xlsx(viewer, "?sort=id")
    assert headers["X-Item-Count"] == "5"
    assert 'filename="ledger-14-20261008-0900.xlsx"' in headers["Content-Disposition"]
    assert ws["A1"].value == "山西省“13710”督办事项台账"
    assert ws["A2"].value.startswith("范围：山西省（14）及所辖下级；筛选：sort=id；导出时间："
                                     "2026-10-08 09:00；共5项")
    assert [c.value for c in ws[3]] == list(HEADERS)
    assert HEADERS == (
        "序号", "事项编号", "事项名称", "板块", "来源", "事项类别", "交办单位", "承办单位",
        "责任单位（牵头单位）", "协办单位", "交办时间", "办理时限", "当前状态", "办理进度",
        "预警", "最新反馈", "是否逾期", "催办情况", "评价", "积分",
    )
    assert ws.freeze_panes == "A4"
    assert ws.auto_filter.ref == "A3:T8"
    assert ws.column_dimensions["C"].width == dict(COLUMNS)["事项名称"]
    assert ws["A3"].font.b is True
    assert rows(ws) == [
        [1, ids["E"], "排查燃气安全隐患", "日常管理事项", "专题会议", "一般性问题（7天）",
         "山西省", "太原市", None, None, datetime(2026, 9, 1, 9), datetime(2026, 9, 8, 9),
         "已办结", 1, "—", "2026-09-07 【办结】隐患已全部整改", "否", None, "优秀", 4.5],
        [2, ids["A"], "落实减税降费政策", "重点工作任务", "政府常务会议", "一般性问题（7天）",
         "山西省", "山西省", "财政厅", "生态环境厅", datetime(2026, 9, 7, 9),
         datetime(2026, 9, 14, 9), "已销号", 1, "—", "2026-09-10 【办结】政策已全部落实到位",
         "否", None, "优秀", 4.5],
        [3, ids["B"], "整治入河排污口", "日常管理事项", "领导批示", "一般性问题（7天）",
         "山西省", "山西省", "生态环境厅", None, datetime(2026, 9, 7, 9),
         datetime(2026, 9, 14, 9), "已部署", 0, "红", None, "是", None, None, -0.5],
        [4, ids["C"], "解决企业用地手续问题", "重点招商项目", "政府办公会议", "一般性问题（7天）",
         "山西省", "太原市", None, None, datetime(2026, 9, 7, 9), datetime(2026, 9, 14, 9),
         "已办结", 1, "—", "2026-09-13 【办结】已补充不动产证复印件", "否", None, "合格", 1.5],
        [5, ids["D"], "推进大气污染联防联控", "重大改革事项", "政府全体会议", "明确时限",
         "山西省", "山西省", "财政厅", None, datetime(2026, 9, 9, 9),
         datetime(2026, 10, 30, 18), "办理中", 0.2, "绿", "2026-09-11 已制定联防联控方案",
         "否", None, None, 1.5],
    ]
    fills = {ws.cell(row=r, column=15).value: ws.cell(row=r, column=15).fill.fgColor.rgb
             for r in range(4, 9)}
    assert fills == {"红": "00FFC7CE", "绿": "00C6EFCE", "—": "00D9D9D9"}
    assert ws["L4"].number_format == "yyyy-mm-dd hh:mm" and ws["N4"].number_format == "0%"
    assert ws["Q6"].font.color.rgb == "00C00000"  # 是否逾期 是, in red

    # The ledger's filters, exactly.
    for query, expected in (
        ("?status=deployed", ["B"]),
        ("?overdue=true", ["B"]),
        ("?colour=green,red", ["B", "D"]),
        ("?board=key_task,reform", ["A", "D"]),
        ("?unit=finance&sort=-id", ["D", "A"]),
        ("?scope=1401&sort=-id", ["C", "E"]),
        ("?q=排污", ["B"]),
        ("?sort=id&limit=2&offset=1", ["A", "B"]),
    ):
        ws, _ = await xlsx(viewer, query)
        got = [row[1] for row in rows(ws)]
        ledger = await viewer.get("/api/v1/items" + (query if "limit" in query else
                                                     query + "&limit=200"))
        assert got == [i["id"] for i in ledger["items"]], query
        assert got == [ids[name] for name in expected], query
    ws, _ = await xlsx(viewer, "?status=withdrawn")
    assert rows(ws) == [] and ws.auto_filter.ref == "A3:T4"
    ws, _ = await xlsx(viewer, "?q=%01%1F%E6%8E%92")  # characters no worksheet can hold
    assert rows(ws) == [] and "q=排；" in ws["A2"].value


async def duban(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node.cli", *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def check_cli(
    fed: LocalTree, ids: dict[str, str], weekly: dict[str, Any], quarterly: dict[str, Any],
    tmp_path: Path,
) -> None:
    data = str(fed["14"].data)
    code, out, err = await duban("report", "weekly", "--data", data, "--week", "2026-W37",
                                 "--format", "json")
    assert code == 0, err
    assert json.loads(out) == weekly
    code, out, err = await duban("report", "quarterly", "--data", data, "--quarter", "2026Q3",
                                 "--format", "json")
    assert code == 0, err
    assert json.loads(out) == quarterly
    code, out, err = await duban("report", "quarterly", "--data", data, "--quarter", "2026Q3")
    assert code == 0, err
    assert out.startswith("# 山西省“13710”督查激励积分季度通报\n\n**2026年第三季度**")
    assert "本季度交办事项 5 项，办结 3 项，其中按期办结 3 项，按期办结率 100.0%" in out
    assert "| 1 | 山西省 | 财政厅 | 6 | 6 | 0 | 1 | 0 | 0 | 0 | 0 |" in out
    assert "| 2 | 山西省 | 生态环境厅 | -2.5 | 0 | 2.5 | 0 | 0 | 0 | 0 | 1 |" in out
    assert "| 1 | 太原市 | 6 | 7 | 1 | 1 | 1 | 1 | 0 | 0 |" in out
    code, out, err = await duban("report", "weekly", "--data", data, "--week", "2026-W37",
                                 "--scope", "1401")
    assert code == 0, err
    assert "# 太原市“13710”督办事项每周汇总" in out and "本周新增事项 1 项" in out

    out_file = tmp_path / "台账.xlsx"
    code, out, err = await duban("export", "ledger", "--data", data, "--out", str(out_file),
                                 "--status", "deployed,reporting", "--sort", "id")
    assert code == 0, err
    assert out.strip() == f"wrote 2 items to {out_file}"
    ws = load_workbook(out_file)["台账"]
    assert [c.value for c in ws[3]] == list(HEADERS)
    # The CLI reads the real time: D's deadline (2026-10-30) has passed there too.
    assert [(row[1], row[12], row[14]) for row in rows(ws)] == [
        (ids["B"], "已部署", "红"), (ids["D"], "办理中", "红")]
    assert "筛选：sort=id，status=deployed,reporting" in ws["A2"].value

    code, _, err = await duban("report", "weekly", "--data", data, "--week", "2026-W60")
    assert code == 2 and "week" in err
    code, _, err = await duban("export", "ledger", "--data", data, "--out", str(out_file),
                               "--scope", "99")
    assert code == 2 and "99" in err
    assert set(LEDGER_FILTERS) == LEDGER_QUERY
