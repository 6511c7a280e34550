"""A 1 MiB file from a township's item page over a 20 KiB/s line (headless Chromium).

The form states the limits before anything is sent; once sent, the upload script
(static/upload.js) shows how far the upload is, with a bar, and about how long is
left (about 50 s on this line). Leaving the page mid-way loses nothing already
kept and reports nothing half-done: the item is still only deployed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp

from node.clock import SystemClock
from tests.api_client import Api, deployed_item, person
from tests.browser.test_pages import shot, sign_in, text_of
from tests.federation import build

COUNTY, TOWNSHIP = "140105", "140105001"
TWO = [(COUNTY, None, "小店区", "county"), (TOWNSHIP, COUNTY, "坞城街道", "township")]
PHONE = {"width": 390, "height": 844}
RATE = 20 * 1024
PROGRESS = re.compile(r"正在上传 (\d+)%（约剩 (\d+) (秒|分钟)）")


async def test_one_mib_at_20_kib_s_states_limits_and_shows_progress(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    fed = await build(tmp_path, SystemClock(), TWO)
    ctx = None
    try:
        async with aiohttp.ClientSession() as session:
            county = Api(session, fed[COUNTY], await person(fed[COUNTY], "gov", "leader"))
            town = Api(session, fed[TOWNSHIP], await person(fed[TOWNSHIP], "zhen", "supervisor"))
            item = await deployed_item(county, town, TOWNSHIP, "燃气安全排查")
            file = tmp_path / "排查报告.pdf"
            file.write_bytes(b"%PDF-1.4\n" + b"\x00" * (1024 * 1024 - 16) + b"\n%%EOF\n")

            ctx = await browser.new_context(viewport=PHONE, locale="zh-CN")
            page = await ctx.new_page()
            await sign_in(page, fed[TOWNSHIP], "zhen")
            await page.goto(f"{fed[TOWNSHIP].url}/items/{item}")
            # The limits, before anything is sent (the defaults: 10,000,000 B a file).
            limits = await text_of(page, "#form-feedback .upload-limits")
            assert "每个文件不超过 9.5 MB" in limits, limits
            assert await page.locator("#form-feedback .upload-status").is_hidden()

            cdp = await ctx.new_cdp_session(page)
            await cdp.send("Network.enable")
            await cdp.send("Network.emulateNetworkConditions", {
                "offline": False, "latency": 50, "downloadThroughput": RATE,
                "uploadThroughput": RATE})
            await page.fill("#form-feedback textarea[name=text]", "已完成排查，报告见附件")
            await page.set_input_files("#form-feedback input[type=file]", str(file))
            await page.click("#form-feedback button[type=submit]")
            status = page.locator("#form-feedback .upload-status")
            await page.wait_for_function(
                "el => /正在上传 \\d+%（约剩 \\d+ (秒|分钟)）/.test(el.textContent)",
                arg=await status.element_handle(), timeout=20_000)
            said = await status.inner_text()
            found = PROGRESS.search(said)
            assert found is not None, said
            percent, left, unit = int(found[1]), int(found[2]), found[3]
            # Part way, with a sensible estimate: a 1 MiB file on this line takes ~50 s,
            # so what is left is never under 20 s this early (a loaded machine only
            # makes it longer).
            assert 0 <= percent < 60, said
            assert unit == "分钟" or left > 20, said
            assert await page.locator("#form-feedback progress.upload-bar").count() == 1
            assert await page.locator("#form-feedback button[type=submit]").is_disabled()
            await shot(page, shots, "upload-slow-1mib-phone")
            await ctx.close()  # leave mid-way
            ctx = None
            state = await town.get(f"/api/v1/items/{item}")
            assert state["status"] == "deployed", state["status"]
            assert state["files"] == []
    finally:
        if ctx is not None:
            await ctx.close()
        await fed.stop()
