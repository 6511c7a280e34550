"""The item page's supervision forms (headless Chromium, real nodes on loopback).

County 140105 assigns an item to township 140105001; province 14 is above both. A
provincial leader writes an instruction and a provincial supervisor urges from the
item page; the township sees the instruction at the top of its page, answers it in
a feedback and asks for an extension; the county decides it; the province sees the
answer, the urge count and the moved deadline. Each refusal comes back in its form
with what was typed kept. Every page is checked at 1366 px and at 390 px.
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
from tests.federation import build

PROVINCE, COUNTY, TOWNSHIP = "14", "140105", "140105001"
SHAPE = [
    (PROVINCE, None, "山西省", "province"),
    (COUNTY, PROVINCE, "小店区", "county"),
    (TOWNSHIP, COUNTY, "坞城街道", "township"),
]
CHINA = timezone(timedelta(hours=8))
INSTRUCTION = "务必在汛期前完成排水改造，确保群众安全。"


async def test_urge_instruct_and_extend_from_the_item_page(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    fed = await build(tmp_path, SystemClock(), SHAPE)
    contexts = []
    try:
        await add_person(fed[PROVINCE], "gov", "leader", "王副省长")
        await add_person(fed[PROVINCE], "duchashi", "supervisor", "省政府督查室")
        await add_person(fed[COUNTY], "xian", "supervisor", "区督查室")
        await add_person(fed[TOWNSHIP], "zhen", "supervisor", "街道督查员")
        async with aiohttp.ClientSession() as session:
            county = Api(session, fed[COUNTY], await person(fed[COUNTY], "c_api", "supervisor"))
            town = Api(session, fed[TOWNSHIP], await person(fed[TOWNSHIP], "t_api", "supervisor"))
            item = await deployed_item(county, town, TOWNSHIP, "老旧小区雨污分流改造")

        async def open_as(node: str, name: str) -> Any:
            ctx = await browser.new_context(viewport=WIDTHS[0], locale="zh-CN")
            contexts.append(ctx)
            page = await ctx.new_page()
            await sign_in(page, fed[node], name)
            return page

        # -- the provincial leader: the instruction form (not the urge: a leader may,
        #    both are offered); an empty one is refused, a valid one is shown on top.
        url = {n: f"{fed[n].url}/items/{item}" for n in (PROVINCE, COUNTY, TOWNSHIP)}
        gov = await open_as(PROVINCE, "gov")
        await until(gov, url[PROVINCE], "#fields", "坞城街道")
        assert await gov.locator("#form-instruct").count() == 1
        assert await gov.locator("#form-urge").count() == 1
        assert await gov.locator("#form-decide_extension").count() == 0
        await gov.fill("#form-instruct textarea[name=text]", "  ")
        error = await refused_form(gov, "#form-instruct")
        assert error == "请填写“批示内容”。", error  # the form's own label, not "办理情况"
        await gov.fill("#form-instruct textarea[name=text]", INSTRUCTION)
        await submit_form(gov, "#form-instruct", "instruct")
        assert INSTRUCTION in await text_of(gov, "#instructions")
        assert "王副省长" in await text_of(gov, "#instructions")

        # -- the provincial supervisor urges; too long a text comes back kept.
        sup = await open_as(PROVINCE, "duchashi")
        await sup.goto(url[PROVINCE])
        assert await sup.locator("#form-instruct").count() == 0  # a supervisor does not instruct
        long_text = "请加快进度" * 401
        await sup.fill("#form-urge textarea[name=text]", long_text)
        await refused_form(sup, "#form-urge")
        assert await sup.input_value("#form-urge textarea[name=text]") == long_text
        await sup.fill("#form-urge textarea[name=text]", "请本周内反馈整改进展")
        await submit_form(sup, "#form-urge", "urge")
        summary = await text_of(sup, "#urges")
        assert "已催办 1 次" in summary and "省政府督查室" in summary, summary
        assert "请本周内反馈整改进展" in await text_of(sup, "#timeline")
        await at_both_widths(sup, shots, "acts-province-urged")
        await sup.goto(f"{fed[PROVINCE].url}/ledger")
        assert "已催办1次" in await text_of(sup, f"tr[data-item='{item}']")

        # -- the township: the instruction on top; it answers it and asks for more time.
        zhen = await open_as(TOWNSHIP, "zhen")
        await until(zhen, url[TOWNSHIP], "#instructions", INSTRUCTION)
        assert "待反馈落实情况" in await text_of(zhen, "#instructions")
        await until(zhen, url[TOWNSHIP], "#urges", "已催办 1 次")
        assert await zhen.locator("#form-urge").count() == 0
        await zhen.fill("#form-feedback textarea[name=text]", "已按批示制定汛期前改造计划")
        await zhen.fill("#form-feedback input[name=progress]", "30")
        await zhen.select_option("#form-feedback select[name=answers]", index=1)
        await submit_form(zhen, "#form-feedback", "feedback")
        assert "已反馈落实情况（1次）" in await text_of(zhen, "#instructions")

        today = datetime.now(CHINA)
        too_early = (today + timedelta(days=2)).strftime("%Y-%m-%d")
        later = today + timedelta(days=30)
        new_day = later.strftime("%Y-%m-%d")
        form = "#form-request_extension"
        await zhen.fill(f"{form} textarea[name=text]", "汛期提前，施工受阻")
        await zhen.fill(f"{form} input[name=deadline]", too_early)
        await zhen.fill(f"{form} textarea[name=progress]", "完成三个小区")
        error = await refused_form(zhen, form)
        assert "状态" in error, error  # earlier than the current deadline: refused
        assert await zhen.input_value(f"{form} textarea[name=text]") == "汛期提前，施工受阻"
        assert await zhen.input_value(f"{form} textarea[name=progress]") == "完成三个小区"
        await zhen.fill(f"{form} input[name=deadline]", new_day)
        await submit_form(zhen, form, "request_extension")
        assert "待交办单位审批" in await text_of(zhen, "#extension-pending")
        assert await zhen.locator(form).count() == 0  # one pending at a time
        await at_both_widths(zhen, shots, "acts-township")

        # -- the county decides: refusing needs a reason; then it approves.
        xian = await open_as(COUNTY, "xian")
        await until(xian, url[COUNTY], "#extension-request", "汛期提前")
        assert await xian.locator("#form-urge").count() == 1  # the assigner urges too
        await at_both_widths(xian, shots, "acts-county-decide")
        error = await refused_form(xian, "#form-decide_extension", "button[value=false]")
        assert error == "请填写“审批意见（不同意时必填）”。", error
        await xian.fill("#form-decide_extension textarea[name=text]", "同意，务必按期完成")
        await submit_form(xian, "#form-decide_extension", "decide_extension",
                      "button[value=true]")
        timeline = await text_of(xian, "#timeline")
        assert "同意延期" in timeline and "→" in timeline, timeline

        # -- the province sees the answer, the urge and the new deadline.
        await until(gov, url[PROVINCE], "#timeline", "同意延期")
        assert "已反馈落实情况（1次）" in await text_of(gov, "#instructions")
        moved = f"{later.year}年{later.month}月{later.day}日 23:59"
        assert moved in await text_of(gov, "#timeline")
        history = await text_of(gov, "#history")
        for word in ("领导批示", "催办", "申请延期", "审批延期"):
            assert word in history, word
        await at_both_widths(gov, shots, "acts-province-after")
        # English is available.
        await gov.goto(url[PROVINCE] + "?lang=en")
        assert "Leaders' instructions" in await text_of(gov, "#instructions")
        assert "Extension request" in await text_of(gov, "#timeline")
    finally:
        for ctx in contexts:
            await ctx.close()
        await fed.stop()
