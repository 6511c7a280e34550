"""The evidence in the pages (headless Chromium, real nodes on loopback).

A township reports through its item page with a photo (JPEG) and a PDF and
resolves with a second photo; the files travel up four levels; the province's
supervisor opens the item and reviews it from the review form with the evidence
in it: the photos load as thumbnails, the PDF is framed with bytes equal to the
original, at 1366 px and at 390 px. The upload script shows its progress on a
throttled link and keeps the form as it was when the server refuses; without
script the form still posts and comes back with the text kept and the files
named to choose again. The attachment answer is inline only for images and PDFs.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any

import aiohttp
from fpdf import FPDF
from PIL import Image, ImageDraw

from node.clock import SystemClock
from node.http.web.item import size_text
from tests.api_client import Api, deployed_item, person
from tests.browser.test_pages import no_overflow, shot, sign_in, text_of
from tests.federation import build, eventually

TOWNSHIP, COUNTY, CITY, PROVINCE = "140105001", "140105", "1401", "14"
CHAIN = [
    (PROVINCE, None, "山西省", "province"),
    (CITY, PROVINCE, "太原市", "city"),
    (COUNTY, CITY, "小店区", "county"),
    (TOWNSHIP, COUNTY, "坞城街道", "township"),
]
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
TEXT = "已完成燃气管道排查，整改照片和检查报告见附件"


def photo(colour: str, label: str) -> bytes:
    image = Image.new("RGB", (640, 480), colour)
    ImageDraw.Draw(image).rectangle((80, 80, 560, 400), outline="white", width=12)
    ImageDraw.Draw(image).text((100, 100), label, fill="white")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def png(size: int) -> bytes:
    """A PNG of about ``size`` bytes (noise does not compress)."""
    side = max(8, int((size / 3) ** 0.5))
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def report_pdf() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=16)
    pdf.cell(0, 10, "Gas safety inspection report, Wucheng subdistrict")
    return bytes(pdf.output())


async def _assigned(session: aiohttp.ClientSession, fed: Any, title: str,
                    to: str = TOWNSHIP) -> str:
    """A province item assigned to ``to`` and deployed there: its id."""
    province = Api(session, fed[PROVINCE], await person(fed[PROVINCE], "gov", "leader"))
    town = Api(session, fed[to], await person(fed[to], "zhen", "supervisor"))
    return await deployed_item(province, town, to, title)


async def _submitted(page: Any, form: str, action: str) -> None:
    async with page.expect_navigation(url=re.compile(rf".*\?done={action}(#.*)?$")):
        await page.click(f"{form} button[type=submit]")


async def test_review_with_the_evidence_open(tmp_path: Path, browser: Any, shots: Path) -> None:
    fed = await build(tmp_path, SystemClock(), CHAIN)
    contexts = []
    try:
        async with aiohttp.ClientSession() as session:
            item = await _assigned(session, fed, "全省燃气安全排查整治")
        await person(fed[PROVINCE], "duchashi", "supervisor")
        before, after, pdf = photo("#8a3b2e", "before"), photo("#2e6b8a", "after"), report_pdf()
        files = {"整改前.jpg": before, "整改后.jpg": after, "检查报告.pdf": pdf}
        for name, data in files.items():
            (tmp_path / name).write_bytes(data)

        # -- the township reports through its page (the script sends the form)
        town_ctx = await browser.new_context(viewport=DESKTOP, locale="zh-CN")
        contexts.append(town_ctx)
        town = await town_ctx.new_page()
        await sign_in(town, fed[TOWNSHIP], "zhen")
        await town.goto(f"{fed[TOWNSHIP].url}/items/{item}")
        limits = await text_of(town, "#form-feedback .upload-limits")
        assert "每个文件不超过 9.5 MB，最多 32 个，合计不超过 47.7 MB" in limits, limits
        await town.fill("#form-feedback textarea[name=text]", TEXT)
        await town.fill("#form-feedback input[name=progress]", "80")
        await town.set_input_files("#form-feedback input[type=file]",
                                   [str(tmp_path / "整改前.jpg"), str(tmp_path / "检查报告.pdf")])
        await _submitted(town, "#form-feedback", "feedback")
        names = await town.locator("#history .file-open").all_inner_texts()
        assert set(names) == {"整改前.jpg", "检查报告.pdf"}, names
        await town.fill("#form-resolve textarea[name=text]", "整改完成，燃气管道全部更换")
        await town.set_input_files("#form-resolve input[type=file]", str(tmp_path / "整改后.jpg"))
        await _submitted(town, "#form-resolve", "resolve")

        # -- the province reviews with the evidence in the form, once every file is up
        for viewport, tag in ((DESKTOP, "desktop"), (PHONE, "phone")):
            ctx = await browser.new_context(viewport=viewport, locale="zh-CN")
            contexts.append(ctx)
            up = await ctx.new_page()
            await sign_in(up, fed[PROVINCE], "duchashi")
            item_url = f"{fed[PROVINCE].url}/items/{item}"
            evidence = up.locator("#review-evidence li.file-held")

            async def all_up(up: Any = up, evidence: Any = evidence, url: str = item_url) -> bool:
                await up.goto(url)
                return bool(await evidence.count() == 3)

            await eventually(all_up, timeout=30, what="the three files at the province")
            parts = up.locator("#review-evidence .evidence-part")
            assert await parts.count() == 2
            assert "整改完成" in await text_of(up, "#review-evidence [data-part=resolution]")
            assert TEXT in await text_of(up, "#review-evidence [data-part=feedback]")
            shown = await up.locator("#review-evidence .file-open").all_inner_texts()
            assert shown == ["整改后.jpg", "整改前.jpg", "检查报告.pdf"], shown
            meta = await text_of(up, "#review-evidence [data-part=feedback] li.file-pdf")
            assert "application/pdf" in meta and size_text(len(pdf)) in meta, meta
            assert not re.search(r"\b[0-9a-f]{12}…", await text_of(up, "#review-evidence"))

            for thumb in await up.locator("#review-evidence li.file-image img").all():
                await thumb.scroll_into_view_if_needed()
                await up.wait_for_function("img => img.complete && img.naturalWidth > 0",
                                           arg=await thumb.element_handle(), timeout=10_000)
                assert await thumb.evaluate("img => img.naturalWidth") == 640
            link = up.locator("#review-evidence li.file-image a.thumb").first
            assert await link.get_attribute("target") == "_blank"
            framed = up.locator("#review-evidence object.pdf-preview")
            assert await framed.get_attribute("type") == "application/pdf"
            src = str(await framed.get_attribute("data"))
            answer = await up.request.get(fed[PROVINCE].url + src)
            assert answer.ok
            assert hashlib.sha256(await answer.body()).digest() == hashlib.sha256(pdf).digest()
            assert answer.headers["content-disposition"].startswith("inline;")
            await no_overflow(up)
            await up.locator("#form-review").scroll_into_view_if_needed()
            await shot(up, shots, f"evidence-review-{tag}")

        # -- and decides from the form (at phone width): return without a reason is
        #    refused with the evidence still there, then accept
        await up.click("#form-review button[value=return]")
        assert await up.locator("#form-review .form-error").count() == 1
        assert await up.locator("#review-evidence li.file-held").count() == 3
        await _submitted(up, "#form-review", "review")
        assert await text_of(up, ".item-head .status") == "已通过"
    finally:
        for ctx in contexts:
            await ctx.close()
        await fed.stop()


TWO = CHAIN[:2]
PER_FILE, QUOTA = 1_000_000, 300_000


async def test_upload_progress_and_refusals_keep_the_form(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    """On a throttled link the script shows how far the upload is and how long is
    left; the server's refusal (the person's quota) leaves the form as it was, text
    and chosen file, and says why, as does a cut link; a file over the cap is refused
    before anything is sent; without script the refused form comes back with the text
    and the files to choose again named."""
    fed = await build(tmp_path, SystemClock(), TWO, extra_for={CITY: {
        "api.max_attachment_bytes": PER_FILE, "api.attachment_quota_user_bytes": QUOTA}})
    contexts = []
    try:
        async with aiohttp.ClientSession() as session:
            item = await _assigned(session, fed, "城区燃气安全排查", to=CITY)
        (tmp_path / "现场照片.png").write_bytes(png(600_000))
        (tmp_path / "航拍原图.png").write_bytes(png(1_300_000))
        item_url = f"{fed[CITY].url}/items/{item}"
        typed = "排查了 126 户，发现隐患 3 处，已整改 2 处"

        ctx = await browser.new_context(viewport=PHONE, locale="zh-CN")
        contexts.append(ctx)
        page = await ctx.new_page()
        await sign_in(page, fed[CITY], "zhen")
        await page.goto(item_url)
        assert "每个文件不超过 976.6 KB" in await text_of(page, "#form-feedback .upload-limits")
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

        # over the cap: refused at once, nothing sent
        await page.fill("#form-feedback textarea[name=text]", typed)
        await page.set_input_files("#form-feedback input[type=file]",
                                   str(tmp_path / "航拍原图.png"))
        await page.click("#form-feedback button[type=submit]")
        status = page.locator("#form-feedback .upload-status")
        said = await status.inner_text()
        assert "“航拍原图.png”有 1.2 MB，超过每个文件 976.6 KB 的上限" in said, said
        assert posts == [] and page.url == item_url

        # a throttled upload shows its progress; the server refuses (quota): all kept
        cdp = await ctx.new_cdp_session(page)
        await cdp.send("Network.enable")
        await cdp.send("Network.emulateNetworkConditions", {
            "offline": False, "latency": 20, "downloadThroughput": -1,
            "uploadThroughput": 150 * 1024})
        await page.set_input_files("#form-feedback input[type=file]",
                                   str(tmp_path / "现场照片.png"))
        await page.click("#form-feedback button[type=submit]")
        await page.wait_for_function(
            "el => /正在上传 \\d+%（约剩 \\d+ (秒|分钟)）/.test(el.textContent)",
            arg=await status.element_handle(), timeout=15_000)
        assert await page.locator("#form-feedback progress.upload-bar").count() == 1
        await shot(page, shots, "upload-progress-phone")
        await page.wait_for_function("el => el.classList.contains('form-error')",
                                     arg=await status.element_handle(), timeout=30_000)
        said = await status.inner_text()
        assert said.startswith("未能提交：") and "个人存储上限" in said, said
        assert "填写的内容和所选文件都还在" in said
        assert page.url == item_url
        assert await page.input_value("#form-feedback textarea[name=text]") == typed
        assert await page.eval_on_selector(
            "#form-feedback input[type=file]", "i => i.files.length && i.files[0].name"
        ) == "现场照片.png"
        assert await page.locator("#form-feedback button[type=submit]").is_enabled()
        await no_overflow(page)
        await shot(page, shots, "upload-refused-phone")
        # the link is cut: the form stays, and says so
        await cdp.send("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        await page.click("#form-feedback button[type=submit]")
        await page.wait_for_function("el => el.textContent.includes('网络中断')",
                                     arg=await status.element_handle(), timeout=15_000)
        assert page.url == item_url
        assert await page.input_value("#form-feedback textarea[name=text]") == typed
        await cdp.send("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})

        # without script: the server reads the form part by part, refuses the big
        # file and re-renders the text, naming the file to choose again
        plain = await browser.new_context(viewport=PHONE, locale="zh-CN",
                                          java_script_enabled=False)
        contexts.append(plain)
        page = await plain.new_page()
        await sign_in(page, fed[CITY], "zhen")
        await page.goto(item_url)
        await page.fill("#form-feedback textarea[name=text]", typed)
        await page.fill("#form-feedback input[name=progress]", "30")
        await page.set_input_files("#form-feedback input[type=file]",
                                   [str(tmp_path / "现场照片.png"), str(tmp_path / "航拍原图.png")])
        await page.click("#form-feedback button[type=submit]")
        await page.wait_for_load_state()
        assert await page.input_value("#form-feedback textarea[name=text]") == typed
        assert await page.input_value("#form-feedback input[name=progress]") == "30"
        again = await text_of(page, "#form-feedback .choose-again")
        assert "请重新选择" in again and "“现场照片.png”" in again, again
        assert "“航拍原图.png”（超过 976.6 KB）" in again, again
        assert "“附件”太大" in await text_of(page, "#form-feedback .form-error")
        await no_overflow(page)
        await shot(page, shots, "upload-choose-again-phone")
        async with aiohttp.ClientSession() as session:
            town = Api(session, fed[CITY], await fed[CITY].ctx.accounts.token_for(
                "zhen", fed[CITY].ctx.clock.now_ms()))
            state = await town.get(f"/api/v1/items/{item}")
        assert state["status"] == "deployed", state["status"]  # nothing was reported
    finally:
        for ctx in contexts:
            await ctx.close()
        await fed.stop()


async def test_attachment_answers_inline_only_images_and_pdfs(tmp_path: Path) -> None:
    """HTML, SVG and anything else come as downloads, sandboxed, never sniffed; images
    and PDFs inline, framed by this site only; a second fetch is a 304 by ETag."""
    fed = await build(tmp_path, SystemClock(), CHAIN[:1])
    try:
        async with aiohttp.ClientSession() as session:
            me = Api(session, fed[PROVINCE], await person(fed[PROVINCE], "clerk", "supervisor"))
            cases = [
                ("text/html", b"<script>alert(1)</script>", "attachment"),
                ("image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg' onload='x()'/>",
                 "attachment"),
                ("text/html; charset=utf-8", b"<b>x</b>", "attachment"),
                ("application/octet-stream", b"\x00\x01", "attachment"),
                ("image/png", png(100), "inline"),
                ("IMAGE/JPEG", photo("#000000", "x"), "inline"),
                ("application/pdf", report_pdf(), "inline"),
            ]
            for content_type, data, disposition in cases:
                async with session.post(
                    fed[PROVINCE].url + "/api/v1/attachments", data=data,
                    headers={**me.headers, "Content-Type": content_type,
                             "X-Filename": "evidence 1.bin"},
                ) as resp:
                    assert resp.status == 201, await resp.text()
                    digest = (await resp.json())["digest"]
                url = f"{fed[PROVINCE].url}/api/v1/attachments/{digest}"
                async with session.get(url, headers=me.headers) as resp:
                    assert resp.status == 200
                    assert await resp.read() == data
                    h = resp.headers
                    assert h["Content-Disposition"] == (
                        f"{disposition}; filename*=UTF-8''evidence%201.bin"
                    ), (content_type, h["Content-Disposition"])
                    assert h["X-Content-Type-Options"] == "nosniff"
                    assert "frame-ancestors 'self'" in h["Content-Security-Policy"]
                    assert "default-src 'none'" in h["Content-Security-Policy"]
                    assert h["X-Frame-Options"] == "SAMEORIGIN"
                    if "pdf" not in content_type:
                        assert "sandbox" in h["Content-Security-Policy"], content_type
                    etag = h["ETag"]
                async with session.get(url, headers={**me.headers, "If-None-Match": etag}) as resp:
                    assert resp.status == 304
                    assert await resp.read() == b""
    finally:
        await fed.stop()
