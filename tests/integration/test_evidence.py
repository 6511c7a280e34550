"""The evidence travels up: files attached at a township reach every ancestor.

Real nodes over loopback (a four-level tree of tests/federation.py): the reports
name each file (signed), the files follow the events up link by link in chunks,
each hop checks them, and any ancestor that may read the item opens them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from node.clock import SystemClock
from node.demo.localtree import RunningNode
from node.http.blobs import STATS
from node.storage import schema as t
from node.storage.events import PARENT
from node.sync import blobs
from node.sync.auth import make_header
from node.workflow.drafts import act
from protocol import codec
from protocol.events import Feedback, FileRef
from tests.api_client import Api, deployed_item, person
from tests.federation import build, eventually, folded

TOWNSHIP, COUNTY, CITY, PROVINCE = "140101001", "140101", "1401", "14"
CHAIN = [
    (PROVINCE, None, "山西省", "province"),
    (CITY, PROVINCE, "太原市", "city"),
    (COUNTY, CITY, "小店区", "county"),
    (TOWNSHIP, COUNTY, "坞城街道", "township"),
]

# A real (tiny) PNG and a PDF-looking file, padded so they take several chunks.
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
    b"\x00\x00\x00\x00IEND\xaeB`\x82" + os.urandom(20_000)
)
PDF = b"%PDF-1.4\n" + os.urandom(70_000) + b"\n%%EOF\n"


async def _setup(session: aiohttp.ClientSession, fed: Any) -> tuple[Api, Api, str]:
    """A province item assigned to the township, deployed there: (province, township, id)."""
    leader = Api(session, fed[PROVINCE], await person(fed[PROVINCE], "gov", "leader"))
    town = Api(session, fed[TOWNSHIP], await person(fed[TOWNSHIP], "clerk", "supervisor"))
    item = await deployed_item(leader, town, TOWNSHIP, "燃气安全排查")
    return leader, town, item


async def _report(town: Api, item: str, files: list[tuple[str, str, bytes]]) -> None:
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("text", "已完成排查，照片和报告见附件")
    form.add_field("progress", "60")
    for name, content_type, data in files:
        form.add_field("attachments", data, filename=name, content_type=content_type)
    await town.call("POST", f"/api/v1/items/{item}/feedback", data=form)


async def _fetch(api: Api, digest: str) -> tuple[int, bytes, dict[str, str]]:
    async with api.session.get(
        api.node.url + f"/api/v1/attachments/{digest}", headers=api.headers
    ) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def _held(node: RunningNode, digest: bytes) -> bool:
    async with node.ctx.db.read() as conn:
        return await blobs.held_size(conn, digest) is not None


async def test_photo_and_pdf_reach_the_province_and_hash(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock(), CHAIN, extra={"sync.blob_chunk_bytes": 16_384})
    try:
        async with aiohttp.ClientSession() as session:
            leader, town, item = await _setup(session, fed)
            await _report(town, item, [("现场照片.png", "image/png", PNG),
                                       ("排查报告.pdf", "application/pdf", PDF)])
            digests = [hashlib.sha256(PNG).hexdigest(), hashlib.sha256(PDF).hexdigest()]

            # The signed report names both files, in order, at the township.
            data = await town.get(f"/api/v1/items/{item}")
            names = [(f["name"], f["size"], f["type"]) for f in data["files"]]
            assert names == [("现场照片.png", len(PNG), "image/png"),
                             ("排查报告.pdf", len(PDF), "application/pdf")]
            feedback = next(h for h in data["history"] if h["type"] == "item.feedback")
            assert [f["digest"] for f in feedback["fields"]["files"]] == digests

            async def all_held() -> bool:
                for node in (COUNTY, CITY, PROVINCE):
                    for d in digests:
                        if not await _held(fed[node], bytes.fromhex(d)):
                            return False
                return True

            await eventually(all_held, timeout=30, what="both files at every ancestor")
            for digest, original, kind in zip(digests, (PNG, PDF), ("image/png",
                                                                 "application/pdf"), strict=True):
                status, body, headers = await _fetch(leader, digest)
                assert status == 200
                assert hashlib.sha256(body).hexdigest() == digest and body == original
                assert headers["Content-Type"] == kind
            data = await leader.get(f"/api/v1/items/{item}")
            assert [(f["name"], f["status"]) for f in data["files"]] == [
                ("现场照片.png", "held"), ("排查报告.pdf", "held")]
            # Each hop kept where the file came from; the queues are empty.
            async with fed[PROVINCE].ctx.db.read() as conn:
                sources = dict((await conn.execute(
                    select(t.attachments.c.digest, t.attachments.c.source))).all())
            assert set(sources.values()) == {CITY}
            for node in (TOWNSHIP, COUNTY, CITY):
                files = await blobs.link_files(fed[node].ctx.db, PARENT)
                assert files["files_waiting"] == 0 and files["files_refused"] == []
    finally:
        await fed.stop()


async def test_offline_township_uploads_after_reconnecting(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock(), CHAIN)
    try:
        async with aiohttp.ClientSession() as session:
            leader, town, item = await _setup(session, fed)
            await folded(fed[COUNTY])
            await fed[COUNTY].stop()  # the township's link is down
            await _report(town, item, [("整改照片.png", "image/png", PNG)])
            digest = hashlib.sha256(PNG).digest()
            files = await blobs.link_files(fed[TOWNSHIP].ctx.db, PARENT)
            assert files["files_waiting"] == 1
            # The province knows nothing yet: the page says the file is awaited once the
            # report arrives; before that there is no report at all.
            await fed[COUNTY].start()

            async def at_province() -> bool:
                return await _held(fed[PROVINCE], digest)

            await eventually(at_province, timeout=40, what="the file at the province")
            status, body, _ = await _fetch(leader, digest.hex())
            assert status == 200 and hashlib.sha256(body).digest() == digest
    finally:
        await fed.stop()


async def test_cut_upload_resumes_without_resending(tmp_path: Path) -> None:
    size = 600_000
    big = os.urandom(size)
    fed = await build(tmp_path, SystemClock(), CHAIN, extra={"sync.blob_chunk_bytes": 2048})
    try:
        async with aiohttp.ClientSession() as session:
            leader, town, item = await _setup(session, fed)
            county = fed[COUNTY]
            await _report(town, item, [("录像.bin", "application/octet-stream", big)])
            digest = hashlib.sha256(big).digest()

            async def partly() -> bool:
                async with county.ctx.db.read() as conn:
                    return await blobs.parts_held(conn, digest) >= 20 * 2048

            await eventually(partly, timeout=30, what="part of the file at the county")
            await fed[TOWNSHIP].stop()
            async with county.ctx.db.read() as conn:
                held = await blobs.parts_held(conn, digest)
            assert 0 < held < size

            # Meanwhile the county's page says how far the upload is.
            county_api = Api(session, county, await person(county, "cv", "viewer"))
            async with session.get(county.url + f"/items/{item}",
                                   headers=county_api.headers) as resp:
                page = await resp.text()
            assert resp.status == 200
            assert "录像.bin" in page
            assert f"正在上传（已到 {held * 100 // size}%）" in page
            data = await county_api.get(f"/api/v1/items/{item}")
            [entry] = data["files"]
            assert (entry["status"], entry["received"]) == ("receiving", held)
            # The province has the report but not the file: it waits.
            await eventually(lambda: _named_at(fed[PROVINCE], digest), what="report named")
            async with session.get(fed[PROVINCE].url + f"/items/{item}",
                                   headers=leader.headers) as resp:
                page = await resp.text()
            assert "录像.bin" in page and "等待下级上传" in page

            await fed[TOWNSHIP].start()

            async def complete() -> bool:
                return await _held(county, digest)

            await eventually(complete, timeout=60, what="the file complete at the county")
            # Every byte reached the county once: what arrived before the cut was not
            # sent again.
            assert county.app[STATS].bytes_received == size
            assert county.app[STATS].bytes_received - held == size - held
            await eventually(lambda: _held(fed[PROVINCE], digest), timeout=60,
                             what="the file at the province")
    finally:
        await fed.stop()


async def _named_at(node: RunningNode, digest: bytes) -> bool:
    async with node.ctx.db.read() as conn:
        return bool(await conn.scalar(
            select(t.item_files.c.item_id).where(t.item_files.c.digest == digest)))


async def _push(
    session: aiohttp.ClientSession, child: RunningNode, parent: RunningNode, method: str,
    target: str, body: bytes = b"",
) -> tuple[int, Any]:
    """A request of the file endpoints signed by ``child``'s own key, as a hostile or
    broken child would send it."""
    header = make_header(
        child.ctx.key, node=child.id, parent=parent.id, method=method, target=target,
        body=body, now_ms=child.ctx.clock.now_ms(),
    )
    async with session.request(method, parent.url + target, data=body or None,
                               headers={"Duban-Auth": header}) as resp:
        raw = await resp.read()
        return resp.status, codec.decode(raw) if resp.status == 200 else json.loads(raw)


async def test_parent_refuses_unnamed_mismatched_and_oversized_files(tmp_path: Path) -> None:
    cap = 50_000
    fed = await build(tmp_path, SystemClock(), CHAIN,
                      extra_for={COUNTY: {"api.max_attachment_bytes": cap}})
    try:
        async with aiohttp.ClientSession() as session:
            _, town, item = await _setup(session, fed)
            township, county = fed[TOWNSHIP], fed[COUNTY]
            # No report names it.
            stray = os.urandom(1000)
            target = f"/sync/v1/blobs/{hashlib.sha256(stray).hexdigest()}"
            status, answer = await _push(session, township, county, "GET", target)
            assert (status, answer["error"]) == (403, "not_named")
            status, answer = await _push(session, township, county, "PUT",
                                         f"{target}?offset=0&size=1000", stray)
            assert (status, answer["error"]) == (403, "not_named")

            # A report names a file the township never held; the bytes sent differ.
            claimed = os.urandom(4000)
            ref = FileRef(digest=hashlib.sha256(claimed).digest(), name="伪造.pdf",
                          size=len(claimed), type="application/pdf")
            await township.ctx.store.append_own([act(
                Feedback, me=TOWNSHIP, item=item, to=PROVINCE, text="附件", progress=10,
                attachments=(ref.digest,), files=(ref,),
            )])
            await eventually(lambda: _named_at(county, ref.digest), what="named at the county")
            target = f"/sync/v1/blobs/{ref.digest.hex()}"
            status, answer = await _push(session, township, county, "PUT",
                                         f"{target}?offset=100&size=4000", os.urandom(100))
            assert (status, answer["error"], answer["held"]) == (409, "wrong_offset", 0)
            status, answer = await _push(session, township, county, "PUT",
                                         f"{target}?offset=0&size=4000", os.urandom(4000))
            assert (status, answer["error"]) == (400, "hash_mismatch")
            status, answer = await _push(session, township, county, "GET", target)
            assert (status, answer["held"], answer["complete"]) == (200, 0, False)
            assert not await _held(county, ref.digest)

            # Over the county's cap: refused for good, and the township shows it.
            big = os.urandom(cap + 1)
            await _report(town, item, [("大文件.bin", "application/octet-stream", big)])

            async def refused() -> bool:
                files = await blobs.link_files(township.ctx.db, PARENT)
                return any(r["reason"] == "too_large" for r in files["files_refused"])

            await eventually(refused, timeout=30, what="the big file refused")
            assert not await _held(county, hashlib.sha256(big).digest())
            # The township's links page and status say so.
            status_body = await town.get("/api/v1/status")
            [up] = [link for link in status_body["links"] if link["link"] == PARENT]
            assert [r["reason"] for r in up["files_refused"]] == ["too_large"]
            async with session.get(township.url + "/links", headers=town.headers) as resp:
                page = await resp.text()
            assert resp.status == 200 and "too_large" in page
            assert hashlib.sha256(big).hexdigest()[:12] in page
    finally:
        await fed.stop()
