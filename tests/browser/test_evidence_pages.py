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
import re
from pathlib import Path
from typing import Any

import aiohttp
from fpdf import FPDF
from PIL import Image, ImageDraw

from node.clock import SystemClock
from node.http.web.item import size_text
from tests.api_client import Api, person
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
    image = Image.frombytes("RGB", (side, side), bytes(
        hashlib.sha256(str(i).encode()).digest()[i % 32] for i in range(side * side * 3)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def report_pdf() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=16)
    pdf.cell(0, 10, "Gas safety inspection report, Wucheng subdistrict")
    return bytes(pdf.output())


async def _assigned(session: aiohttp.ClientSession, fed: Any, title: str) -> str:
    """A province item assigned to the township and deployed there: its id."""
    province = Api(session, fed[PROVINCE], await person(fed[PROVINCE], "gov", "leader"))
    town = Api(session, fed[TOWNSHIP], await person(fed[TOWNSHIP], "zhen", "supervisor"))
    created = await province.post("/api/v1/items", {
        "title": title, "assignee": TOWNSHIP, "board": "daily", "source": "executive",
    }, expect=201)
    item = str(created["id"])

    async def arrived() -> bool:
        data = await town.call("GET", f"/api/v1/items/{item}", expect=None)
        return data.get("id") == item

    await eventually(arrived, what="the item at the township")
    await town.post(f"/api/v1/items/{item}/deploy", {"note": "已部署"})
    return item


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
