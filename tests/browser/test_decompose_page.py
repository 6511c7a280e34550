"""A county passes an item down through the pages, in headless Chromium.

A real chain (province, city, county, two townships). The townships' unit lists
have come up the tree, so the county's pickers offer them. At desktop (1366 px)
and phone (390 px) width the county opens the province's item, adds "全部下级"
(one part per township), picks a lead unit and a co-unit, sets one deadline later
than the item's own (the error shows beside that field, everything else as
typed), fixes it and passes the item down: the sub-items are on the item page.
Screenshots under tests/artifacts/screenshots/.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from node.clock import SystemClock
from node.demo.localtree import Shape
from node.storage import unit_lists
from tests.api_client import Api, person
from tests.browser.test_pages import PASSWORD, add_person, no_overflow, shot, text_of, until
from tests.federation import build, eventually

SHAPE: Shape = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140105", "1401", "小店区", "county"),
    ("140105001", "140105", "坞城街道", "township"),
    ("140105002", "140105", "营盘街道", "township"),
]
COUNTY, TOWNS = "140105", ("140105001", "140105002")
VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


async def test_county_passes_an_item_down_with_the_pickers(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    import aiohttp

    fed = await build(tmp_path, SystemClock(), SHAPE)
    try:
        county = fed[COUNTY]
        for town in TOWNS:
            ctx = fed[town].ctx
            now = ctx.clock.now_ms()
            await ctx.accounts.add_unit("office", "党政办", office=True, now=now)
            await ctx.accounts.add_unit("safety", "应急办", office=False, now=now)
            await ctx.accounts.add_unit("env", "环保所", office=False, now=now)
        await add_person(county, "xian", "supervisor", "区政府督查室")

        async def lists_up() -> bool:
            return len(await unit_lists.held(county.ctx.db, list(TOWNS))) == 2

        await eventually(lists_up, what="the townships' unit lists at the county")
        async with aiohttp.ClientSession() as s:
            leader = Api(s, fed["14"], await person(fed["14"], "leader", "leader"))
            items = {}
            for name in VIEWPORTS:
                got = await leader.post("/api/v1/items", {
                    "title": f"燃气安全排查（{name}）", "assignee": COUNTY, "class": "general",
                    "description": "全面排查餐饮场所燃气隐患。"}, expect=201)
                items[name] = got["id"]

        for name, viewport in VIEWPORTS.items():
            item = items[name]
            context = await browser.new_context(viewport=viewport, locale="zh-CN")
            page = await context.new_page()
            await page.goto(county.url + "/ledger")
            await page.fill("input[name=name]", "xian")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("main form button[type=submit]")
            await page.wait_for_url(re.compile(r".*/ledger$"))
            await until(page, f"{county.url}/items/{item}", ".item-head", "燃气安全排查")
            await page.click("#decompose-link")
            await page.wait_for_url(re.compile(rf".*/items/{item}/decompose$"))
            assert "还没有分项" in await text_of(page, "#no-parts")

            await page.click("#add-children")
            assert await page.locator("fieldset.part").count() == 2
            legends = [await text_of(page, f"#part-{i} legend") for i in (0, 1)]
            assert "坞城街道" in legends[0] and "营盘街道" in legends[1]
            # The pickers hold the township's published units.
            await page.select_option("#part-0 select[name=p0_lead_unit]", "safety")
            await page.check("#part-0 input[name=p0_co][value=env]")
            await page.fill("#part-0 input[name=p0_title]", "坞城街道燃气排查")
            # One deliberate error: part 2 due after the item's own deadline.
            own = await page.locator("#part-1 input[name=p1_deadline]").get_attribute("max")
            assert own is not None
            too_late = (datetime.fromisoformat(own) + timedelta(days=3)).date().isoformat()
            await page.fill("#part-1 input[name=p1_deadline]", too_late)
            await page.click("#submit-parts")
            error = await text_of(page, "#part-1 .form-error")
            assert "不能晚于本事项的办结时限" in error, error
            assert "1 处需要修改" in await text_of(page, "#page-error")
            # Everything typed is still there.
            assert await page.locator("#part-0 .form-error").count() == 0
            assert await page.input_value("#part-0 select[name=p0_lead_unit]") == "safety"
            assert await page.is_checked("#part-0 input[name=p0_co][value=env]")
            assert not await page.is_checked("#part-0 input[name=p0_co][value=office]")
            assert await page.input_value("#part-0 input[name=p0_title]") == "坞城街道燃气排查"
            assert await page.input_value("#part-1 input[name=p1_deadline]") == too_late
            assert "餐饮场所" in await page.input_value("#part-1 textarea")
            if name == "phone":
                await no_overflow(page)
            await shot(page, shots, f"decompose-error-{name}")

            # Fixed: the item's own last day is allowed; both parts are signed.
            await page.fill("#part-1 input[name=p1_deadline]", own)
            await page.click("#submit-parts")
            await page.wait_for_url(re.compile(rf".*/items/{item}\?done=decompose(#.*)?$"))
            subs = await text_of(page, "#subs")
            assert "坞城街道燃气排查" in subs and "营盘街道" in subs, subs
            if name == "phone":
                await no_overflow(page)
            await shot(page, shots, f"decompose-done-{name}")
            await context.close()

        # The English page speaks English.
        context = await browser.new_context(viewport=VIEWPORTS["desktop"], locale="en")
        page = await context.new_page()
        await page.goto(county.url + "/login?lang=en")
        await page.fill("input[name=name]", "xian")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("main form button[type=submit]")
        await page.goto(f"{county.url}/items/{items['desktop']}/decompose?lang=en")
        assert "All children" in await text_of(page, "#add-children")
        await context.close()
        # Signed as picked: the lead unit and co-unit of the township's part, and the
        # item's own deadline for the part whose date was its last day.
        async with aiohttp.ClientSession() as s:
            api = Api(s, county, await county.ctx.accounts.token_for("xian", now))
            for item in items.values():
                parent = await api.get(f"/api/v1/items/{item}")
                first, second = [
                    (await api.get(f"/api/v1/items/{sub['id']}"))
                    for sub in parent["sub_items"]
                ]
                assert first["item"]["assignee"] == TOWNS[0]
                assert first["item"]["lead_unit"] == "safety"
                assert first["item"]["co_units"] == ["env"]
                assert second["deadlines"]["resolve"] == parent["deadlines"]["resolve"]
    finally:
        await fed.stop()
