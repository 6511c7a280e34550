"""The closing grade (评价) through a real two-level tree.

Province 14 assigns two items to city 1401, which deploys and resolves both on time.
The province's review form offers the rules' default (优秀); the API refuses another
grade without a reason and a graded return, accepts one item graded 不合格 with a
reason and the other with the default; the grade reaches the city by sync, and both
nodes show it on the item page, in the ledger (with the item's points) and in the
Excel export.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
from openpyxl import load_workbook

from node.clock import ManualClock
from node.queries.excel import HEADERS
from protocol import errors
from tests.api_client import Api
from tests.federation import build, eventually, folded
from tests.integration.test_board_pages import page
from tests.integration.test_reminders import add_people, api_for

PROVINCE, CITY = "14", "1401"
SHAPE = [(PROVINCE, None, "山西省", "province"), (CITY, PROVINCE, "太原市", "city")]
T0 = 1_772_413_200_000  # 2026-03-02 09:00 China time


async def _until(api: Api, item: str, check: Any, what: str) -> dict[str, Any]:
    got: dict[str, Any] = {}

    async def ok() -> bool:
        nonlocal got
        got = await api.call("GET", f"/api/v1/items/{item}", expect=None)
        return "item" in got and bool(check(got["item"]))

    await eventually(ok, what=what)
    return got["item"]


async def _xlsx_row(api: Api, item: str) -> dict[str, Any]:
    async with api.session.get(api.node.url + "/api/v1/export/ledger.xlsx?sort=id",
                               headers=api.headers) as resp:
        assert resp.status == 200, await resp.text()
        ws = load_workbook(io.BytesIO(await resp.read()))["台账"]
    for row in ws.iter_rows(min_row=4, values_only=True):
        if row[1] == item:
            return dict(zip(HEADERS, row, strict=True))
    raise AssertionError(f"{item} not exported")


async def test_the_closing_grade_through_two_levels(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    fed = await build(tmp_path, clock, SHAPE)
    province, city = fed[PROVINCE], fed[CITY]
    try:
        await add_people(province, ("p_sup", "supervisor", None, "13700000002", "p@14.gov.cn"))
        await add_people(city, ("c_sup", "supervisor", None, "13600000001", "c@1401.gov.cn"))
        async with aiohttp.ClientSession() as session:
            p_sup = await api_for(session, province, "p_sup")
            c_sup = await api_for(session, city, "c_sup")
            items = []
            for title in ("整治背街小巷环境", "修复破损路灯"):
                item = (await p_sup.post("/api/v1/items", {
                    "title": title, "assignee": CITY, "board": "daily", "source": "executive",
                }, expect=201))["id"]
                await _until(c_sup, item, lambda s: s["status"] == "assigned", "at the city")
                clock.advance(hours=1)
                await c_sup.post(f"/api/v1/items/{item}/deploy", {})
                await c_sup.post(f"/api/v1/items/{item}/resolve", {"text": "已全部完成"})
                await _until(p_sup, item, lambda s: s["status"] == "resolved", "resolved up")
                items.append(item)
            graded, defaulted = items

            # The review form offers the rules' default, with a reason field.
            html = await page(p_sup, f"/items/{graded}")
            assert 'id="review-grade" data-default="excellent"' in html
            assert '<option value="excellent" selected>优秀</option>' in html
            assert "按规则默认：优秀" in html and "改变默认评价时必填" in html

            act = f"/api/v1/items/{graded}/review"
            assert await p_sup.refused("POST", act, {"outcome": "accept",
                                                     "grade": "unqualified"},
                                       400) == errors.GRADE_NEEDS_REASON
            assert await p_sup.refused("POST", act, {"outcome": "return", "reason": "重做",
                                                     "grade": "qualified"},
                                       400) == errors.BAD_FIELD
            assert await p_sup.refused("POST", act, {"outcome": "accept", "grade": "good"},
                                       400) == errors.BAD_FIELD
            # Nothing was signed by the refusals.
            assert (await p_sup.get(f"/api/v1/items/{graded}"))["item"]["status"] == "resolved"

            done = await p_sup.post(act, {"outcome": "accept", "grade": "unqualified",
                                          "reason": "台账资料不全，群众反映仍有问题"})
            assert done["status"] == "accepted"
            await p_sup.post(f"/api/v1/items/{defaulted}/review", {"outcome": "accept"})

            # The grade reaches the city by sync.
            at_city = await _until(c_sup, graded, lambda s: s["grade"] is not None,
                                   "the grade at the city")
            assert (at_city["grade"], at_city["review_reason"]) == (
                "unqualified", "台账资料不全，群众反映仍有问题")
            at_city = await _until(c_sup, defaulted, lambda s: s["grade"] is not None,
                                   "the default grade at the city")
            assert at_city["grade"] == "excellent"

            # Shown on the item, in the ledger and its export, at both nodes.
            for api in (p_sup, c_sup):
                await folded(api.node)
                html = await page(api, f"/items/{graded}")
                assert 'id="grade" data-grade="unqualified">不合格' in html
                assert 'id="points">' in html
                listed = {r["id"]: r for r in (await api.get("/api/v1/items"))["items"]}
                assert listed[graded]["grade"] == "unqualified"
                assert listed[defaulted]["grade"] == "excellent"
                # deploy on time +0.5, first report (the resolution) on time +1; the
                # excellent grade +3, the unqualified one nothing.
                assert listed[defaulted]["points"] == 4.5
                assert listed[graded]["points"] == 1.5
                row = await _xlsx_row(api, graded)
                assert (row["评价"], row["积分"]) == ("不合格", 1.5)
                row = await _xlsx_row(api, defaulted)
                assert (row["评价"], row["积分"]) == ("优秀", 4.5)
    finally:
        await fed.stop()
