"""The cascade in the pages (headless Chromium, real nodes on loopback).

A province supervisor assigns an item "下达到：所有县级" on the new-item page; the
province's policy is off, so the item page says it waits and offers
"向下级转办（全部下级）"; the button passes it down, the city passes it on by
itself, a county reports, and the province's roll-up panel shows
"2个县：1个已反馈，0个逾期，0个红灯" with links down to the sub-items, in
Chinese and English, and fits a phone's width.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from node.clock import SystemClock
from node.storage import schema as t
from tests.browser.test_pages import (
    DESKTOP,
    PHONE,
    add_person,
    no_overflow,
    shot,
    sign_in,
    text_of,
    until,
)
from tests.federation import build, eventually

SHAPE = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140105", "1401", "小店区", "county"),
    ("140106", "1401", "迎泽区", "county"),
]
TITLE = "全省各县开展燃气安全排查"


async def test_pass_down_button_and_rollup_panel(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    fed = await build(tmp_path, SystemClock(), SHAPE, extra_for={"14": {"cascade.auto": False}})
    try:
        province, county = fed["14"], fed["140105"]
        await add_person(province, "duchashi", "supervisor", "省政府督查室")
        context = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
        page = await context.new_page()
        await sign_in(page, province, "duchashi")

        await page.goto(province.url + "/items/new")
        labels = await page.locator("select[name=cascade] option").all_inner_texts()
        assert labels == ["本级（不逐级下达）", "所有市级", "所有县级", "所有乡镇"]
        await page.fill("input[name=title]", TITLE)
        await page.select_option("select[name=assignee]", "office")
        await page.select_option("select[name=cascade]", "county")
        await page.click("#assign button[type=submit]")
        await page.wait_for_url(re.compile(r".*/items/14-\d+\?done=assign(#.*)?$"))
        item_url = page.url.split("?")[0]
        assert "本事项逐级下达到：所有县级" in await text_of(page, "#rollup")
        assert "尚未向下级转办" in await text_of(page, "#cascade-waiting")
        await shot(page, shots, "cascade-waiting-desktop")

        await page.click("#form-pass_down button[type=submit]")
        await page.wait_for_url(re.compile(r".*\?done=pass_down(#.*)?$"))
        assert await page.locator("#form-pass_down").count() == 0
        await until(page, item_url, "#rollup-lines", "2个县：0个已反馈，0个逾期，0个红灯")

        # A county reports; the province's panel counts it.
        async def holds() -> bool:
            async with county.ctx.db.read() as conn:
                return bool(await conn.scalar(
                    select(t.items.c.item_id).where(t.items.c.assignee == "140105")))

        await eventually(holds, what="the county's sub-item")
        await add_person(county, "xian", "supervisor", "区督查员")
        async with county.ctx.db.read() as conn:
            sub = await conn.scalar(
                select(t.items.c.item_id).where(t.items.c.assignee == "140105"))
        county_page = await (await browser.new_context(viewport=DESKTOP)).new_page()
        await sign_in(county_page, county, "xian")
        await county_page.goto(f"{county.url}/items/{sub}")
        await county_page.click("#form-deploy button[type=submit]")
        await county_page.fill("#form-feedback textarea[name=text]", "已完成排查")
        await county_page.fill("#form-feedback input[name=progress]", "60")
        await county_page.click("#form-feedback button[type=submit]")
        await county_page.wait_for_url(re.compile(r".*\?done=feedback(#.*)?$"))

        await until(page, item_url, "#rollup-lines", "2个县：1个已反馈，0个逾期，0个红灯")
        assert "1个市：0个已反馈" in await text_of(page, "#rollup-lines")
        # 1401's rolled-up progress: the mean of its counties (60 and 0).
        assert "30%" in await text_of(page, "#rollup-children")
        assert "30%" in await text_of(page, "#rollup-rolled")
        await shot(page, shots, "cascade-rollup-desktop")
        await page.click("#rollup-slowest a")  # drill down to the slowest county
        await page.wait_for_url(re.compile(r".*/items/1401-\d+$"))
        assert TITLE in await text_of(page, ".item-head h1")

        await page.goto(item_url + "?lang=en")
        assert "2 county: 1 feedback in, 0 late, 0 red" in await text_of(page, "#rollup-lines")
        await page.goto(item_url + "?lang=zh-CN")

        phone = await (await browser.new_context(viewport=PHONE)).new_page()
        await sign_in(phone, province, "duchashi")
        await phone.goto(item_url)
        assert "2个县" in await text_of(phone, "#rollup-lines")
        await no_overflow(phone)
        await shot(phone, shots, "cascade-rollup-phone")
    finally:
        await fed.stop()
