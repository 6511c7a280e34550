"""The pages in headless Chromium over a real four-level chain of nodes.

The walk-through of the issue, all through the pages: sign in at the province,
assign to a township, sign in at the township, deploy, report (with an
attachment) and resolve, back at the province return-without-reason (a clear
error), accept and close; then the tree and the command board show the
change. Every page is saved as a screenshot at desktop (1280 px) and phone
(390 px) width under tests/artifacts/screenshots/, and at phone width nothing
may overflow horizontally.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from node.clock import OffsetClock, SystemClock
from node.demo.localtree import RunningNode, four_levels
from node.demo.play import CASCADE_TITLE, DAY_MS, add_people, seed
from tests.federation import build

CHAIN = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140105", "1401", "小店区", "county"),
    ("140105001", "140105", "坞城街道", "township"),
]
PROVINCE, TOWNSHIP = "14", "140105001"
PASSWORD = "password-123"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TITLE = "推进农村人居环境整治"


async def add_person(node: RunningNode, name: str, role: str, display: str) -> None:
    accounts = node.ctx.accounts
    now = node.ctx.clock.now_ms()
    if "office" not in await accounts.units():
        await accounts.add_unit("office", "办公室", office=True, now=now)
    await accounts.add_user(
        name, role=role, unit="office", password=PASSWORD, display_name=display, now=now
    )


async def sign_in(page: Any, node: RunningNode, name: str, shots: Path | None = None) -> None:
    await page.goto(node.url + "/ledger")
    assert "/login" in page.url, page.url
    if shots is not None:
        await shot(page, shots, f"login-{node.id}")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("main form button[type=submit]")
    await page.wait_for_url(re.compile(r".*/ledger$"))


async def shot(page: Any, shots: Path, name: str) -> None:
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


async def text_of(page: Any, selector: str) -> str:
    return str(await page.locator(selector).first.inner_text())


async def until(page: Any, url: str, selector: str, want: str, timeout: float = 30.0) -> None:
    """Reload ``url`` until ``selector`` shows ``want`` (sync between nodes is asynchronous)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        await page.goto(url)
        if await page.locator(selector).count() and want in await text_of(page, selector):
            return
        if loop.time() > end:
            raise AssertionError(f"{url}: {selector} never showed {want!r}")
        await asyncio.sleep(0.2)


async def no_overflow(page: Any) -> None:
    width, inner = await page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert width <= inner, f"{page.url}: {width}px wide in a {inner}px viewport"


WIDTHS = ({"width": 1366, "height": 900}, {"width": 390, "height": 844})
"""Desktop and phone, the widths every page is checked at."""


async def submit_form(
    page: Any, form: str, action: str, button: str = "button[type=submit]"
) -> None:
    """Submit ``form`` and wait for the item page to come back with ``?done=action``."""
    async with page.expect_navigation(url=re.compile(rf".*\?done={action}(#.*)?$")):
        await page.click(f"{form} {button}")


async def refused_form(page: Any, form: str, button: str = "button[type=submit]") -> str:
    """Submit ``form``, expecting it back refused: the text of its error."""
    async with page.expect_navigation():
        await page.click(f"{form} {button}")
    return await text_of(page, f"{form} .form-error")


async def no_raw_labels(page: Any) -> None:
    """No catalogue text left unformatted ("{deadline}") and no code doubled in place
    of a label ("urgeurge") on the page."""
    text = str(await page.locator("body").inner_text())
    assert not re.search(r"\{[a-z_]+\}", text), f"{page.url}: an unformatted label"
    assert not re.search(r"\b([a-z_]{3,})\1\b", text), f"{page.url}: a code shown twice"


async def at_both_widths(page: Any, shots: Path, name: str) -> None:
    """The page fits, shows no raw label, and a screenshot of it, at each of
    :data:`WIDTHS`."""
    await no_raw_labels(page)
    for viewport in WIDTHS:
        await page.set_viewport_size(viewport)
        await no_overflow(page)
        await shot(page, shots, f"{name}-{viewport['width']}")


async def test_walk_through_assign_report_review_close(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    fed = await build(tmp_path, SystemClock(), CHAIN)
    try:
        province, township = fed[PROVINCE], fed[TOWNSHIP]
        await add_person(province, "duchashi", "supervisor", "省政府督查室")
        await add_person(province, "viewer", "viewer", "省政府查阅")
        await add_person(township, "zhen", "supervisor", "街道督查员")
        up_ctx = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
        town_ctx = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
        up = await up_ctx.new_page()
        town = await town_ctx.new_page()

        # -- the province assigns to the township
        await sign_in(up, province, "duchashi", shots)
        await shot(up, shots, "ledger-empty-desktop")
        await up.click("header nav a[href='/items/new']")
        await up.click("#assign button[type=submit]")  # nothing filled in
        assert "请填写“事项名称”" in await text_of(up, "#page-error")
        await up.fill("input[name=title]", TITLE)
        await up.fill("textarea[name=description]", "7天内完成垃圾清运点整改，反馈整改照片。")
        await up.select_option("select[name=board]", "key_task")
        await up.select_option("select[name=class]", "explicit")
        await up.click("#assign button[type=submit]")  # explicit without a date
        assert "请填写“办结时限”" in await text_of(up, "#page-error")
        await shot(up, shots, "new-error-desktop")
        await up.select_option("select[name=class]", "general")
        await up.select_option("select[name=assignee]", TOWNSHIP)
        await up.click("#assign button[type=submit]")
        await up.wait_for_url(re.compile(r".*/items/14-\d+\?done=assign(#.*)?$"))
        item_url = up.url.split("?")[0].split("#")[0]
        item = item_url.rsplit("/", 1)[1]
        assert await text_of(up, ".item-head .status") == "已交办"
        assert "坞城街道" in await text_of(up, "#fields")
        await shot(up, shots, "item-assigned-desktop")

        # -- the township deploys, reports and resolves
        await sign_in(town, township, "zhen", shots)
        town_item = f"{township.url}/items/{item}"
        await until(town, township.url + "/ledger", "table.ledger", TITLE)
        await shot(town, shots, "ledger-township-desktop")
        await town.click(f"tr[data-item='{item}'] a")
        assert await text_of(town, ".item-head .status") == "已交办"
        await town.click("#form-deploy button[type=submit]")
        await town.wait_for_url(re.compile(r".*\?done=deploy(#.*)?$"))
        assert await text_of(town, ".item-head .status") == "已部署"
        await town.fill("#form-feedback textarea[name=text]", "已完成清运点排查，正在整改")
        await town.fill("#form-feedback input[name=progress]", "120")
        await town.click("#form-feedback button[type=submit]")
        error = await text_of(town, "#form-feedback .form-error")
        assert "“进度（%）”填写不正确" in error, error
        photo = tmp_path / "整改照片.txt"
        photo.write_text("照片说明：清运点已整改", encoding="utf-8")
        await town.fill("#form-feedback input[name=progress]", "50")
        await town.set_input_files("#form-feedback input[type=file]", str(photo))
        await town.click("#form-feedback button[type=submit]")
        await town.wait_for_url(re.compile(r".*\?done=feedback(#.*)?$"))
        assert await text_of(town, ".item-head .status") == "办理中"
        assert "整改照片.txt" in await text_of(town, "#history")
        await town.fill("#form-resolve textarea[name=text]", "清运点全部整改到位")
        await town.click("#form-resolve button[type=submit]")
        await town.wait_for_url(re.compile(r".*\?done=resolve(#.*)?$"))
        assert await text_of(town, ".item-head .status") == "待审核"
        assert await town.locator("#actions form").count() == 0  # nothing left to do
        await shot(town, shots, "item-township-resolved-desktop")

        # -- back at the province: review (a return needs a reason), accept, close
        await until(up, item_url, ".item-head .status", "待审核")
        history = await text_of(up, "#history")
        assert "签名已验证" in history and "签名验证失败" not in history
        await up.click("#form-review button[value=return]")
        error = await text_of(up, "#form-review .form-error")
        assert "请填写“审核意见（退回或改变默认评价时必填）”" in error, error
        await shot(up, shots, "item-review-error-desktop")
        await up.click("#form-review button[value=accept]")
        await up.wait_for_url(re.compile(r".*\?done=review(#.*)?$"))
        assert await text_of(up, ".item-head .status") == "已通过"
        await up.click("#form-close button[type=submit]")
        await up.wait_for_url(re.compile(r".*\?done=close(#.*)?$"))
        assert await text_of(up, ".item-head .status") == "已销号"
        assert await up.locator("#actions form").count() == 0
        await shot(up, shots, "item-closed-desktop")
        await until(town, town_item, ".item-head .status", "已销号")

        # -- the tree and the board show it
        await up.click("header nav a[href='/tree']")
        row = f"li[data-node='{TOWNSHIP}']"  # .first: the node's own row comes first
        assert await text_of(up, f"{row} .n-done b") == "1"
        assert await text_of(up, f"{row} .n-open b") == "0"
        assert await text_of(up, "li[data-node='14'] .n-done b") == "1"
        await shot(up, shots, "tree-desktop")
        await up.locator("li[data-node='1401'] .node-name a").first.click()  # drill down
        assert "/tree?node=1401" in up.url
        assert "太原市" in await text_of(up, ".crumbs")
        await up.click("header nav a[href='/board']")
        assert await text_of(up, "#kpi-done") == "1"
        assert await text_of(up, "#kpi-completion") == "100%"
        assert await text_of(up, "#kpi-on-time") == "100%"
        assert "坞城街道" in await text_of(up, "#ranking")
        assert "太原市" in await up.locator("#by-node svg").inner_html()
        assert "重点工作任务" in await up.locator("#by-board svg").inner_html()
        await shot(up, shots, "board-desktop")
        await up.click("header nav a[href='/links']")
        assert "太原市" in await text_of(up, "#links")
        await shot(up, shots, "links-desktop")
        await town.goto(township.url + "/links")
        assert "小店区" in await text_of(town, "#links")
        await shot(town, shots, "links-township-desktop")

        # -- the ledger's filters, paging and the export link
        await up.goto(province.url + "/ledger?status=closed&board=key_task")
        assert "共 1 项" in await text_of(up, "#total")
        assert "已销号" in await text_of(up, "table.ledger")
        href = await up.get_attribute("#export", "href")
        assert href == "/api/v1/export/ledger.xlsx?status=closed&board=key_task", href
        export = await up.request.get(province.url + href)
        if export.status != 404:  # the export is another module's; the link is ours
            assert export.status == 200
            assert "spreadsheetml" in export.headers["content-type"]
        await up.goto(province.url + "/ledger?status=assigned")
        assert "共 0 项" in await text_of(up, "#total")
        await up.goto(province.url + "/ledger")
        await shot(up, shots, "ledger-desktop")
        await up.goto(province.url + "/ledger?colour=purple")
        assert "“预警”填写不正确" in await text_of(up, "#page-error")

        # -- English, remembered by a cookie
        await up.goto(item_url + "?lang=en")
        assert await text_of(up, ".item-head .status") == "Closed"
        await up.goto(province.url + "/tree")
        assert "Tree" in await text_of(up, "h1")
        await shot(up, shots, "tree-en-desktop")
        await up.goto(province.url + "/board?lang=zh-CN")
        assert "挂图作战" in await text_of(up, "h1")

        # -- a viewer sees the item but no forms
        viewer_ctx = await browser.new_context(viewport=DESKTOP)
        viewer = await viewer_ctx.new_page()
        await sign_in(viewer, province, "viewer")
        await viewer.goto(item_url)
        assert "您当前没有可办理的操作" in await text_of(viewer, "#actions")
        await viewer.goto(province.url + "/items/new")
        assert "您的角色不能交办事项" in await text_of(viewer, "main")
        await viewer_ctx.close()

        # -- every page at a phone's width (掌上办公)
        phone_ctx = await browser.new_context(
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
            locale="zh-CN",
        )
        phone = await phone_ctx.new_page()
        await phone.goto(province.url + "/login")
        await no_overflow(phone)
        await shot(phone, shots, "login-phone")
        await sign_in(phone, province, "duchashi")
        pages = {
            "ledger": "/ledger",
            "item": f"/items/{item}",
            "new": "/items/new",
            "tree": "/tree",
            "board": "/board",
            "links": "/links",
            "logout": "/logout",
        }
        for name, path in pages.items():
            await phone.goto(province.url + path)
            await no_overflow(phone)
            await shot(phone, shots, f"{name}-phone")
        # Tables turn into cards: no header row shows on a phone.
        await phone.goto(province.url + "/ledger")
        assert not await phone.locator("table.ledger thead").is_visible()
        await phone.click("form[action='/logout'] button")
        await phone.wait_for_url(re.compile(r".*/login\?bye=1$"))
        assert "已退出登录" in await text_of(phone, "main")
        await phone.goto(province.url + "/ledger")
        assert "/login" in phone.url
        await phone_ctx.close()
        for name, path in (("new", "/items/new"), ("board", "/board")):
            await up.goto(province.url + path)
            await shot(up, shots, f"{name}-desktop")
        await up_ctx.close()
        await town_ctx.close()
    finally:
        await fed.stop()


async def test_forms_refuse_cross_site_posts_and_links_show_errors(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    fed = await build(tmp_path, SystemClock(), CHAIN[:2])
    try:
        province = fed[PROVINCE]
        await add_person(province, "duchashi", "supervisor", "省政府督查室")
        context = await browser.new_context(viewport=DESKTOP)
        page = await context.new_page()
        await sign_in(page, province, "duchashi")
        form = {"title": "伪造的事项", "assignee": "1401"}
        # No token: refused, and nothing is assigned.
        answer = await page.request.post(province.url + "/items/new", form=form)
        assert answer.status == 403
        assert "表单已失效或来源不明" in await answer.text()
        # The right token from another site: refused too.
        await page.goto(province.url + "/items/new")
        token = await page.get_attribute("input[name=csrf_token]", "value")
        answer = await page.request.post(
            province.url + "/items/new",
            form={**form, "csrf_token": token},
            headers={"Origin": "http://evil.example"},
        )
        assert answer.status == 403
        # Signing in needs the sign-in form's own token.
        answer = await page.request.post(
            province.url + "/login", form={"name": "duchashi", "password": PASSWORD}
        )
        assert answer.status == 403
        await page.goto(province.url + "/ledger")
        assert "共 0 项" in await text_of(page, "#total")
        # With the token from the page, the same form works.
        answer = await page.request.post(
            province.url + "/items/new", form={**form, "csrf_token": token}
        )
        assert answer.ok
        await page.goto(province.url + "/ledger")
        assert "共 1 项" in await text_of(page, "#total")
        await context.close()

        # While the province is down, the city's link page shows the lag and the error.
        city = fed["1401"]
        await add_person(city, "shi", "supervisor", "市政府督查室")
        context = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
        page = await context.new_page()
        await sign_in(page, city, "shi")
        await province.stop()
        await page.goto(city.url + "/links")
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while not await page.locator("tr.bad-row").count():
            assert loop.time() < end, "the link error never showed"
            await asyncio.sleep(0.3)
            await page.reload()
        assert "上行" in await text_of(page, "tr.bad-row")
        await shot(page, shots, "links-error-desktop")
        await context.close()
    finally:
        await fed.stop()


async def test_sign_in_errors_and_limiter(tmp_path: Path, browser: Any) -> None:
    fed = await build(tmp_path, SystemClock(), CHAIN[:1])
    try:
        province = fed[PROVINCE]
        await add_person(province, "duchashi", "supervisor", "省政府督查室")
        context = await browser.new_context(viewport=DESKTOP)
        page = await context.new_page()
        await page.goto(province.url + "/login?lang=en")
        for _ in range(5):
            await page.fill("input[name=name]", "duchashi")
            await page.fill("input[name=password]", "wrong-password")
            await page.click("main form button[type=submit]")
            assert "Wrong name or password" in await text_of(page, "#page-error")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("main form button[type=submit]")
        assert "Too many failed sign-ins" in await text_of(page, "#page-error")
        assert "/login" in page.url
        # An unknown item and a node outside the subtree are pages, not stack traces.
        await context.close()
    finally:
        await fed.stop()


async def test_every_page_on_the_demo_tree(tmp_path: Path, browser: Any, shots: Path) -> None:
    """The demo's sample items (red, returned, on a plan, awaiting review...) on every page,
    at desktop and phone width: screenshots to look at, and nothing overflows on a phone."""
    clock = OffsetClock(-10 * DAY_MS)
    fed = await build(tmp_path, clock, four_levels())
    try:
        await add_people(fed, four_levels())
        shown = await seed(fed, clock)
        province = fed[PROVINCE]
        await add_person(province, "duchashi", "supervisor", "省政府督查室")
        planned = next(item for item, what in shown if "approved plan" in what)
        returned = next(item for item, what in shown if "returned" in what)
        cascaded = next(item for item, what in shown if "every township" in what)
        pages = {
            "ledger": "/ledger",
            "ledger-red": "/ledger?colour=red",
            "item-plan": f"/items/{planned}",
            "item-returned": f"/items/{returned}",
            "item-cascade": f"/items/{cascaded}",
            "new": "/items/new",
            "tree": "/tree",
            "board": "/board",
            "links": "/links",
        }
        for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            context = await browser.new_context(
                viewport=viewport, device_scale_factor=2 if size == "phone" else 1,
                is_mobile=size == "phone", locale="zh-CN",
            )
            page = await context.new_page()
            await sign_in(page, province, "duchashi")
            for name, path in pages.items():
                await page.goto(province.url + path)
                assert await page.locator("#page-error").count() == 0, name
                if size == "phone":
                    await no_overflow(page)
                await shot(page, shots, f"demo-{name}-{size}")
            await context.close()
        # The figures agree with the demo's story.
        context = await browser.new_context(viewport=DESKTOP)
        page = await context.new_page()
        await sign_in(page, province, "duchashi")
        await page.goto(province.url + "/tree")
        assert await text_of(page, "li[data-node='140201001'] .badge") == "逾期"
        assert int(await text_of(page, "li[data-node='14'] .n-overdue b")) >= 1
        await page.goto(province.url + "/board")
        assert int(await text_of(page, "#kpi-overdue")) >= 1
        await page.goto(province.url + f"/items/{planned}")
        assert "完成土地供应" in await text_of(page, "#timeline")
        assert "已批准" in await text_of(page, "#plan")
        await page.goto(province.url + f"/items/{returned}")
        assert "缺少书面协议和回访记录" in await text_of(page, "#fields")
        # The one province item: its roll-up over the eight townships below.
        await page.goto(province.url + f"/items/{cascaded}")
        assert CASCADE_TITLE in await page.content()
        assert "8个乡镇" in await page.locator("body").inner_text()
        assert "办公室" in await text_of(page, "#fields")  # the unit's name, not its code
        await context.close()
    finally:
        await fed.stop()
