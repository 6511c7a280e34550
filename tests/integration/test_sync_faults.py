"""Sync under ordinary network faults: no false alarms, no long stalls, no tracebacks.

A child reaches its parent through a small TCP proxy of the test's own on
loopback, which can cut a response or stall one:

- a kept-alive connection dropped while the parent answers a GET makes aiohttp
  send it again on a new connection — each attempt is signed afresh, so the
  parent does not refuse the second as ``replayed`` and the link never fails;
- a stalled connection fails by the read (progress) timeout, not after the whole
  request timeout, and the link resumes;
- a link that keeps failing says so at WARNING (once, then a summary) and logs
  its recovery, so an outage of minutes is not only in INFO lines;
- a client cut mid-body is one INFO line on the parent, not an ERROR traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.app import CLIENT
from node.clock import ManualClock
from node.demo.localtree import LocalTree, RunningNode, Shape
from node.storage.events import PARENT
from node.sync.auth import make_header
from node.workflow.drafts import assign
from tests.federation import build, eventually

SHAPE: Shape = [("14", None, "山西省", "province"), ("1401", "14", "太原市", "city")]
PROVINCE, CITY = "14", "1401"


class Proxy:
    """Forwards loopback TCP to ``upstream``; does to one GET /sync/v1/down what
    ``fault`` says: ``"cut"`` closes the child's connection as the answer begins
    (only a request after the first on its connection: a kept-alive one), ``"stall"``
    holds the answer back for ever (the connection stays open)."""

    def __init__(self, upstream_port: int, fault: str) -> None:
        self.upstream_port = upstream_port
        self.fault = fault
        self.done = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.writers += [writer, up_writer]
        armed = asyncio.Event()  # the fault's request went up: act on its answer
        down = asyncio.ensure_future(self._down(up_reader, writer, armed))
        self.tasks.add(down)
        requests = 0
        try:
            while data := await reader.read(65536):
                if data.startswith((b"GET ", b"POST ")):
                    requests += 1
                    wanted = self.fault == "stall" or requests > 1
                    if data.startswith(b"GET /sync/v1/down") and wanted and not self.done.is_set():
                        self.done.set()
                        armed.set()
                up_writer.write(data)
                await up_writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            up_writer.transport.abort()
            writer.transport.abort()

    async def _down(
        self, up: asyncio.StreamReader, writer: asyncio.StreamWriter, armed: asyncio.Event
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await up.read(65536):
                if armed.is_set():
                    if self.fault == "cut":
                        writer.transport.abort()
                        return
                    await asyncio.Event().wait()  # stall: never forward, never close
                writer.write(data)
                await writer.drain()


async def holding(root: Path, fault: str, extra: dict[str, Any]) -> tuple[LocalTree, Proxy]:
    """Province and city, the city's link going through a proxy doing ``fault``."""
    clock = ManualClock(time.time_ns() // 1_000_000)
    fed = await build(root, clock, SHAPE, extra_for={CITY: extra})
    city = fed[CITY]
    proxy = Proxy(fed[PROVINCE].port, fault)
    url = await proxy.start()
    await city.stop()
    city.config = city.config.with_values(node__parent_url=url)
    await city.start()
    return fed, proxy


async def link_status(node: RunningNode) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(node.url + "/api/v1/status") as r:
        payload: dict[str, Any] = await r.json()
    [entry] = [e for e in payload["links"] if e["link"] == PARENT]
    return entry


async def assigned_and_received(fed: LocalTree, title: str) -> None:
    province, city = fed[PROVINCE], fed[CITY]
    [(event, _)] = await province.ctx.store.append_own(
        [assign(me=PROVINCE, assignee=CITY, title=title)]
    )

    async def arrived() -> bool:
        return await city.ctx.store.max_seq_of(PROVINCE) >= event.seq

    await eventually(arrived, timeout=20, what=f"{title} at the city")


async def test_a_get_resent_on_a_new_connection_is_not_a_replay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="node")
    fed, proxy = await holding(tmp_path, "cut", {"sync.long_poll_seconds": 1})
    try:
        await asyncio.wait_for(proxy.done.wait(), timeout=20)
        await assigned_and_received(fed, "断线后交办")
        entry = await link_status(fed[CITY])
        assert entry["failures"] == 0 and entry["last_error"] is None, entry
    finally:
        await proxy.stop()
        await fed.stop()
    refusals = [r.getMessage() for r in caplog.records if "replayed" in r.getMessage()]
    assert refusals == []


async def test_a_stalled_connection_fails_by_its_read_timeout_and_the_link_resumes(
    tmp_path: Path,
) -> None:
    extra = {"sync.long_poll_seconds": 1, "sync.read_timeout_seconds": 1.0,
             "sync.request_timeout_seconds": 600.0}
    fed, proxy = await holding(tmp_path, "stall", extra)
    try:
        await asyncio.wait_for(proxy.done.wait(), timeout=20)

        async def timed_out() -> bool:
            return "Timeout" in ((await link_status(fed[CITY]))["last_error"] or "")

        await eventually(timed_out, timeout=20, what="the stalled request to time out")
        await assigned_and_received(fed, "停滞后交办")
    finally:
        await proxy.stop()
        await fed.stop()


async def test_a_failing_link_warns_once_and_logs_its_recovery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="node")
    clock = ManualClock(time.time_ns() // 1_000_000)
    fed = await build(tmp_path, clock, SHAPE, extra_for={CITY: {"sync.long_poll_seconds": 1}})
    try:
        province, city = fed[PROVINCE], fed[CITY]
        await province.stop()  # the city's parent is down for a while

        async def failing(times: int) -> bool:
            return int((await link_status(city))["failures"]) >= times

        await eventually(lambda: failing(6), timeout=30, what="six failures in a row")
        await province.start()
        await assigned_and_received(fed, "恢复后交办")

        async def recovered() -> bool:
            # The link counts as working once what came is stored and the link row
            # says so (a write: a full disk still passes hello): a moment after the
            # event is visible at the city.
            return city.app[CLIENT].watch.health.failures == 0

        await eventually(recovered, timeout=20, what="the link to count as recovered")
    finally:
        await fed.stop()
    link_lines = [(r.levelno, r.getMessage()) for r in caplog.records
                  if r.name == "node.sync.client" and "link to parent" in r.getMessage()]
    warnings = [m for level, m in link_lines if level == logging.WARNING]
    assert len([m for m in warnings if "link to parent failing: 3 attempts" in m]) == 1
    assert [m for m in warnings if "link to parent recovered after" in m], link_lines
    assert all(level <= logging.WARNING for level, _ in link_lines)


async def test_a_request_cut_mid_body_is_one_line_not_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = ManualClock(time.time_ns() // 1_000_000)
    fed = await build(tmp_path, clock, SHAPE)
    try:
        province, city = fed[PROVINCE], fed[CITY]
        body = b"\x82" + b"\0" * 99_999  # what the child signs: never all sent
        header = make_header(city.ctx.key, node=CITY, parent=PROVINCE, method="POST",
                             target="/sync/v1/up", body=body, now_ms=clock.now_ms())
        caplog.clear()
        _, writer = await asyncio.open_connection("127.0.0.1", province.port)
        writer.write(
            b"POST /sync/v1/up HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
            b"Duban-Auth: " + header.encode() + b"\r\nContent-Length: 100000\r\n\r\n"
            + body[:1000]
        )
        await writer.drain()

        await asyncio.sleep(0.2)  # the parent authenticates and starts reading the body
        writer.transport.abort()

        async def logged() -> bool:  # the request's end: its access line
            return any(r.name == "aiohttp.access" for r in caplog.records)

        await eventually(logged, timeout=10, what="the parent to notice the cut")
        await asyncio.sleep(0.2)
    finally:
        await fed.stop()
    cut = [r for r in caplog.records if "/sync/v1/up" in r.getMessage()
           and r.name.startswith(("node", "aiohttp.server", "aiohttp.web"))]
    assert cut and all(r.levelno <= logging.INFO and not r.exc_info for r in cut), [
        (r.name, r.levelname, r.getMessage()) for r in cut
    ]
    assert not [r for r in caplog.records if r.exc_info], "no traceback"
