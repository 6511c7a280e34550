"""A node whose disk fills up keeps running and says so, and resumes by itself.

Province 14 -> city 1401 -> county 140101 on loopback; the city's data directory
lives on a small tmpfs mounted for the test (root only: skipped with the reason
elsewhere), which the test fills with a file until the kernel says ENOSPC. While
it is full:

- the city's sync loop keeps trying (it used to die on the first database error,
  silently), and its link status shows the error from memory, since the database
  cannot record it — over HTTP and in `duban status`;
- an API write on the city answers 503 ``storage_full`` with Retry-After, not 500;
- the county's pushes to the city get 503 ``storage_full`` (the child backs off);
- nothing logs a traceback per retry.

When the file is removed, everything resumes without a restart: the assignment
reaches the city, the county's report goes up, the link's error clears, the
recovery is logged, and the city can write again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from yarl import URL

from node.clock import ManualClock, SystemClock
from node.demo.localtree import LocalTree, RunningNode, Shape
from node.storage import schema
from node.storage.events import PARENT
from node.workflow.drafts import act, assign
from protocol import envelope
from protocol.events import Deployed
from tests.api_client import Api, person
from tests.federation import build, eventually

SHAPE: Shape = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140101", "1401", "小店区", "county"),
]
PROVINCE, CITY, COUNTY = "14", "1401", "140101"
REPO = Path(__file__).resolve().parents[2]
FAST_BACKGROUND = {
    "background.retry_initial_seconds": 0.05,
    "background.retry_max_seconds": 0.3,
}


@contextlib.contextmanager
def small_disk(where: Path, size: str = "24m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` for the block; skips the test when the
    machine does not allow mounting (not root, no tmpfs, a container without the
    capability)."""
    where.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small filesystem here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def fill(disk: Path) -> Path:
    """Write a file on ``disk`` until the filesystem is full; returns it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 65536, 4096, 1):  # big writes first, then the last bytes
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def truncate_wal(db: Path) -> None:
    """Fold the write-ahead log into the database and cut it to 0 bytes, so the next
    write must grow it (a WAL that keeps its size would take a few writes in the
    space it already holds)."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "the WAL could not be truncated"
    finally:
        conn.close()


async def http_status(node: RunningNode) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(node.url + "/api/v1/status") as r:
        assert r.status == 200
        payload: dict[str, Any] = await r.json()
    return payload


def link(payload: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [entry for entry in payload["links"] if entry["link"] == name]
    return found


async def holds(node: RunningNode, env: envelope.Envelope) -> bool:
    events = schema.events
    async with node.ctx.db.read() as conn:
        found = await conn.scalar(
            select(events.c.pos).where(events.c.event_id == bytes.fromhex(env.event_id))
        )
    return found is not None


async def cli_status(node: RunningNode) -> str:
    args = [sys.executable, "-m", "node.cli", "status", "--data", str(node.data),
            "--url", node.url]
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_a_full_disk_is_survived_shown_and_recovered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="node")
    with small_disk(tmp_path / "disk") as disk:
        (disk / CITY).mkdir()
        (tmp_path / "tree").mkdir()
        (tmp_path / "tree" / CITY).symlink_to(disk / CITY)
        clock = ManualClock(time.time_ns() // 1_000_000)
        fed: LocalTree = await build(tmp_path / "tree", clock, SHAPE, extra=FAST_BACKGROUND)
        try:
            province, city, county = fed[PROVINCE], fed[CITY], fed[COUNTY]
            async with aiohttp.ClientSession() as session:
                officer = Api(session, city, await person(city, "officer", "leader"))
                [(first, first_env)] = await city.ctx.store.append_own(
                    [assign(me=CITY, assignee=COUNTY, title="市交办")]
                )

                async def county_has_it() -> bool:
                    return await holds(county, first_env)

                await eventually(county_has_it, what="the city's item at the county")
                await asyncio.sleep(0.3)  # let the city's background work settle
                truncate_wal(city.data / "node.db")
                filler = fill(disk)

                # Work for the city from above, and from below.
                [(_, down)] = await province.ctx.store.append_own(
                    [assign(me=PROVINCE, assignee=CITY, title="省交办")]
                )
                [(_, report)] = await county.ctx.store.append_own(
                    [act(Deployed, me=COUNTY, item=first.item, to=CITY, note="已部署")]
                )

                async def failing(node: RunningNode, times: int, text: str) -> bool:
                    entry = link(await http_status(node), PARENT)
                    return entry["failures"] >= times and text in (entry["last_error"] or "")

                # The city's sync loop survives and keeps trying; its status says why.
                await eventually(lambda: failing(city, 3, "storage_full"),
                                 what="the city's link failing on a full disk")
                # The county's pushes get a 503 storage_full, not a 500.
                await eventually(lambda: failing(county, 2, "HTTP 503"),
                                 what="the county's pushes refused 503")
                assert "storage_full" in link(await http_status(county), PARENT)["last_error"]

                # An API write: 503 storage_full with Retry-After.
                async with session.post(
                    city.url + "/api/v1/items", headers=officer.headers,
                    json={"title": "满盘时新建", "assignee": COUNTY},
                ) as resp:
                    assert resp.status == 503, await resp.text()
                    assert (await resp.json())["error"] == "storage_full"
                    assert int(resp.headers["Retry-After"]) > 0

                text = await cli_status(city)
                [row] = [line for line in text.splitlines() if line.startswith(PARENT)]
                assert "storage_full" in row and "failures in a row" in row

                os.unlink(filler)

                async def recovered() -> bool:
                    entry = link(await http_status(city), PARENT)
                    return (
                        entry["failures"] == 0
                        and entry["last_error"] is None
                        and await holds(city, down)
                        and await holds(city, report)
                    )

                await eventually(recovered, timeout=30, what="the city to resume by itself")
                await officer.post("/api/v1/items", {"title": "恢复后新建", "assignee": COUNTY},
                                   expect=201)
        finally:
            await fed.stop()

    messages = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    link_failing = [m for m in messages if "link to parent failing" in m[2]]
    assert link_failing and all(level == logging.WARNING for _, level, _ in link_failing)
    assert any("link to parent recovered after" in text for _, _, text in messages)
    tracebacks = [r for r in caplog.records if r.exc_info and r.name.startswith("node")]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]


async def test_a_full_disk_answers_every_writer_503_and_pages_in_words(tmp_path: Path) -> None:
    """Every way people write — the API, the sign-in page (a session row), the item
    forms — answers 503 ``storage_full`` with Retry-After on a full disk; a page says
    it in the person's language (it answered the API's JSON to the form)."""
    with small_disk(tmp_path / "disk") as disk:
        fed: LocalTree = await build(disk / "tree", SystemClock(), SHAPE[:1])
        try:
            node = fed[PROVINCE]
            token = await person(node, "officer", "supervisor", "u1")
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http, \
                    aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as anon:
                async with anon.get(node.url + "/login?lang=en"):
                    pass
                login_token = anon.cookie_jar.filter_cookies(URL(node.url))["duban_login_csrf"]
                async with http.post(node.url + "/api/v1/login",
                                     json={"name": "officer", "password": "password-123"}) as r:
                    assert r.status == 200
                async with http.get(node.url + "/items/new") as r:
                    assert r.status == 200
                    form_token = re.search(r'name="csrf_token" value="([0-9a-f]+)"',
                                           await r.text())
                    assert form_token is not None
                await asyncio.sleep(0.3)
                truncate_wal(node.data / "node.db")
                fill(disk)

                async with http.post(node.url + "/api/v1/items",
                                     headers={"Authorization": f"Bearer {token}"},
                                     json={"title": "满盘时新建", "assignee": "u1"}) as r:
                    assert r.status == 503 and (await r.json())["error"] == "storage_full"
                async with anon.post(node.url + "/api/v1/login",
                                     json={"name": "officer", "password": "password-123"}) as r:
                    assert r.status == 503 and (await r.json())["error"] == "storage_full"
                    assert int(r.headers["Retry-After"]) > 0
                pages = [
                    ("/items/new", {"csrf_token": form_token[1], "title": "满盘时新建",
                                    "assignee": "u1", "class": "general"}, "服务器磁盘已满"),
                    ("/login?lang=en", {"csrf_token": login_token.value, "name": "officer",
                                        "password": "password-123"}, "disk is full"),
                ]
                for (path, form, words), client in zip(pages, (http, anon), strict=True):
                    async with client.post(node.url + path, data=form, allow_redirects=False,
                                         headers={"Origin": node.url}) as r:
                        page = await r.text()
                        assert r.status == 503, (path, r.status, page[:300])
                        assert r.content_type == "text/html", (path, page[:300])
                        assert int(r.headers["Retry-After"]) > 0
                        assert words in page, (path, page[:2000])
        finally:
            await fed.stop()
