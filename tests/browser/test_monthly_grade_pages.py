"""The monthly progress form and the closing grade on the item page (headless Chromium,
real nodes on loopback, 1366 px and 390 px).

Province 14 assigns an item to city 1401, which deploys it and submits a plan the
province approves. The city's supervisor reports the month's progress from the item
page (an empty report is refused in its form, with the progress typed kept); the
report shows in the history as 【月度进展】. The city resolves; the province's review
form offers the rules' grade (优秀), refuses 不合格 without a reason (the choice
kept), then accepts it with one: the grade and the item's points show on the item
at the province and, after sync, at the city.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp

from node.clock import SystemClock
from tests.api_client import Api, deployed_item, person
from tests.browser.test_pages import (
    WIDTHS,
    add_person,
    at_both_widths,
    refused_form,
    sign_in,
    submit_form,
    text_of,
    until,
)
from tests.federation import build, eventually

PROVINCE, CITY = "14", "1401"
SHAPE = [(PROVINCE, None, "山西省", "province"), (CITY, PROVINCE, "太原市", "city")]
CHINA = timezone(timedelta(hours=8))
REPORT = "本月完成两个小区管网改造，累计完成40%。"


async def test_monthly_report_and_grade_from_the_item_page(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    fed = await build(tmp_path, SystemClock(), SHAPE)
    contexts = []
    try:
        await add_person(fed[PROVINCE], "duchashi", "supervisor", "省政府督查室")
        await add_person(fed[CITY], "shi", "supervisor", "市督查室")
        async with aiohttp.ClientSession() as session:
            prov = Api(session, fed[PROVINCE],
                       await person(fed[PROVINCE], "p_api", "supervisor"))
            city = Api(session, fed[CITY], await person(fed[CITY], "c_api", "supervisor"))
            item = await deployed_item(prov, city, CITY, "老旧小区雨污分流改造")
            due = (datetime.now(CHINA) + timedelta(days=90)).strftime("%Y-%m-%d")
            await city.post(f"/api/v1/items/{item}/plan", {
                "milestones": [{"title": "全部完工", "due": due}], "note": "工程量大",
            })

            async def plan_up() -> bool:
                got = await prov.get(f"/api/v1/items/{item}")
                return bool(got["item"]["plan"])

            await eventually(plan_up, what="the plan at the province")
            leader = Api(session, fed[PROVINCE],
                         await person(fed[PROVINCE], "p_leader", "leader"))
            await leader.post(f"/api/v1/items/{item}/approve", {})

        async def open_as(node: str, name: str) -> Any:
            ctx = await browser.new_context(viewport=WIDTHS[0], locale="zh-CN")
            contexts.append(ctx)
            page = await ctx.new_page()
            await sign_in(page, fed[node], name)
            return page

        url = {n: f"{fed[n].url}/items/{item}" for n in (PROVINCE, CITY)}

        # -- the city: the monthly form, its date; an empty report refused, kept.
        shi = await open_as(CITY, "shi")
        await until(shi, url[CITY], "#form-monthly_report", "按月反馈进展")
        assert "须按月反馈进展" in await text_of(shi, "#monthly-due")
        form = "#form-monthly_report"
        await shi.fill(f"{form} input[name=progress]", "40")
        await shi.click(f"{form} button[type=submit]")  # sent by the upload script
        status = shi.locator(f"{form} .upload-status.form-error")
        await status.wait_for()
        said = await status.inner_text()
        assert "请填写“本月进展情况”" in said and "内容和所选文件都还在" in said, said
        assert await shi.input_value(f"{form} input[name=progress]") == "40"
        assert shi.url == url[CITY]
        await shi.fill(f"{form} textarea[name=text]", REPORT)
        await submit_form(shi, form, "monthly_report")
        history = await text_of(shi, "#history")
        assert "【月度进展】" in history and REPORT in history, history
        await at_both_widths(shi, shots, "monthly-city")
        await shi.fill("#form-resolve textarea[name=text]", "改造全部完成")
        await submit_form(shi, "#form-resolve", "resolve")

        # -- the province: the review form's default grade; another needs a reason.
        sup = await open_as(PROVINCE, "duchashi")
        await until(sup, url[PROVINCE], "#form-review", "按规则默认：优秀")
        assert await sup.input_value("#review-grade") == "excellent"
        await at_both_widths(sup, shots, "grade-review-form")
        await sup.select_option("#review-grade", "unqualified")
        error = await refused_form(sup, "#form-review", "button[value=accept]")
        assert error == "所选评价与按规则默认的评价不同，请填写理由。", error
        assert await sup.input_value("#review-grade") == "unqualified"  # the choice kept
        await sup.fill("#form-review textarea[name=reason]", "台账资料不全")
        await submit_form(sup, "#form-review", "review", "button[value=accept]")
        assert "不合格" in await text_of(sup, "#grade")
        assert "台账资料不全" in await text_of(sup, "#grade")
        await sup.wait_for_selector("#points")
        assert "不合格" in await text_of(sup, "#history")
        await at_both_widths(sup, shots, "grade-province")

        # -- the city sees the grade after sync.
        await until(shi, url[CITY], "#grade", "不合格")
        await at_both_widths(shi, shots, "grade-city")
    finally:
        for ctx in contexts:
            await ctx.close()
        await fed.stop()
