"""The to-do page, the message centre and the counts in the navigation (headless Chromium,
a real node on loopback with a local SMS gateway and SMTP server), at 1366 and 390 px.

A unit operator signs in: the navigation says 2 things wait and the to-do lists both
items to deploy, oldest deadline first, with their colour and deadline; deploying one
from its page takes it off the list (and the count). After the deadline a reminder
arrives: the navigation shows 1 unread, the message centre lists it with its channels,
"标为已读" clears it. A viewer's to-do says their role has nothing to do. The item page
lists the reminders sent. Nothing is wider than a phone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp

from node.clock import ManualClock
from tests.api_client import person
from tests.browser.test_pages import no_overflow, shot, sign_in, text_of
from tests.federation import build
from tests.integration.test_reminders import (  # noqa: F401  (channels: a fixture)
    ENV_OP,
    HOUR,
    ROOT,
    SUP,
    T0,
    Channels,
    add_people,
    api_for,
    channels,
    tick,
)

WIDTHS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
FIRST = "整治汾河流域污染（第一批）"
SECOND = "排查城中村燃气隐患"


async def count_in(page: Any, selector: str) -> str:
    found = page.locator(f"{selector} .count")
    return str(await found.inner_text()) if await found.count() else ""


async def test_todo_and_messages_pages(
    tmp_path: Path, browser: Any, shots: Path, channels: Channels  # noqa: F811
) -> None:
    clock = ManualClock(T0)
    settings = channels.settings()
    settings["webhook.enabled"] = False
    fed = await build(tmp_path, clock, ROOT, extra=settings)
    node = fed["14"]
    try:
        await add_people(node, ENV_OP, SUP)
        await person(node, "guest", "viewer")
        async with aiohttp.ClientSession() as session:
            sup = await api_for(session, node, "sup")
            second = (await sup.post("/api/v1/items", {
                "title": SECOND, "assignee": "env", "deadline": "2026-03-20",
            }, expect=201))["id"]
            clock.set(T0 + HOUR)
            first = (await sup.post("/api/v1/items", {
                "title": FIRST, "assignee": "env", "class": "general",
            }, expect=201))["id"]

        for width, viewport in WIDTHS.items():
            context = await browser.new_context(viewport=viewport, locale="zh-CN")
            page = await context.new_page()
            await sign_in(page, node, "env_op")
            assert await count_in(page, "#nav-todo") == "2"
            await page.click("#nav-todo")
            await page.wait_for_url(re.compile(r".*/todo$"))
            assert "我的待办" in await text_of(page, "h1")
            section = page.locator("#todo-deploy")
            assert "待研究部署" in await section.locator("h2").inner_text()
            ids = await section.locator("li.todo-item").evaluate_all(
                "els => els.map(e => e.dataset.item)")
            # Oldest deadline first: the item assigned an hour earlier is due first.
            assert ids == [second, first], ids
            row = await section.locator("li.todo-item").first.inner_text()
            assert SECOND in row and "时限" in row and "还剩" in row
            await no_overflow(page)
            await shot(page, shots, f"todo-{width}")
            await page.goto(node.url + "/todo?lang=en")
            assert "To deploy" in await text_of(page, "#todo-deploy h2")
            await page.goto(node.url + "/todo?lang=zh-CN")
            await context.close()

        # Deploy the first from its page: it leaves the to-do and the count.
        context = await browser.new_context(viewport=WIDTHS["phone"], locale="zh-CN")
        page = await context.new_page()
        await sign_in(page, node, "env_op")
        await page.goto(node.url + "/todo")
        await page.click(f"#todo-deploy li[data-item='{first}'] a.todo-title")
        await page.wait_for_url(re.compile(rf".*/items/{first}$"))
        await page.click("#form-deploy button[type=submit]")
        await page.wait_for_url(re.compile(r".*\?done=deploy(#.*)?$"))
        await page.goto(node.url + "/todo")
        assert await count_in(page, "#nav-todo") == "2"  # deployed: first feedback owed
        assert await page.locator(f"#todo-deploy li[data-item='{first}']").count() == 0
        assert await page.locator(f"#todo-feedback li[data-item='{first}']").count() == 1

        # The second's deploy deadline passes: a reminder reaches the message centre.
        clock.set(T0 + 24 * HOUR + 1)
        await tick(node)
        await sign_in(page, node, "env_op")  # the session of yesterday has ended
        for width, viewport in WIDTHS.items():
            await page.set_viewport_size(viewport)
            await page.goto(node.url + "/todo")
            unread = await count_in(page, "#nav-messages")
            assert unread != "", "the navigation shows unread messages"
            late = page.locator(f"#todo-deploy li[data-item='{second}'] .due")
            assert "已逾期" in await late.inner_text()
            assert "c-red" in (await page.locator(
                f"#todo-deploy li[data-item='{second}'] .badge").get_attribute("class") or "")
            await page.click("#nav-messages")
            await page.wait_for_url(re.compile(r".*/messages$"))
            assert await page.locator("li.message.unread").count() == int(unread)
            text = await page.locator("li.message").first.inner_text()
            assert SECOND in text and "短信" in text and "已送达" in text
            await no_overflow(page)
            await shot(page, shots, f"messages-{width}")
        await page.locator("li.message.unread form.mark-read button").first.click()
        await page.wait_for_url(re.compile(r".*/messages$"))
        left = await page.locator("li.message.unread").count()
        assert left == int(unread) - 1
        if left:
            await page.click("#read-all button")
            await page.wait_for_url(re.compile(r".*/messages$"))
        assert await page.locator("li.message.unread").count() == 0
        assert await count_in(page, "#nav-messages") == ""
        await page.goto(node.url + "/messages?unread=true")
        assert "没有未读消息" in await text_of(page, "#messages-empty")

        # The item page lists the reminders sent for it.
        await page.goto(f"{node.url}/items/{second}")
        reminders = await text_of(page, "#reminders")
        assert "env_op" in reminders and "短信" in reminders and "逾期提醒" in reminders
        await no_overflow(page)
        await shot(page, shots, "item-reminders-phone")
        await context.close()

        # A viewer has nothing to do, and the page says why.
        context = await browser.new_context(viewport=WIDTHS["phone"], locale="zh-CN")
        page = await context.new_page()
        await sign_in(page, node, "guest")
        assert await count_in(page, "#nav-todo") == ""
        await page.goto(node.url + "/todo")
        assert "没有待办事项" in await text_of(page, "#todo-none")
        await context.close()
    finally:
        await fed.stop()
