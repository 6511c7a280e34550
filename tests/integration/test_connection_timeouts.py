"""Slowloris: a connection that never finishes its request is closed; a slow one is not.

One real node on loopback, its connection timeouts shortened to fractions of a
second; raw sockets play the clients. Each check waits for the server to close
the connection with a bound far above the timeout (the test asserts that it
closes, not how fast).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from node.clock import ManualClock, SystemClock
from node.demo.localtree import LocalTree, RunningNode, Shape
from node.storage import schema as t
from node.storage.events import PARENT
from tests.api_client import person
from tests.federation import build, eventually

SHAPE: Shape = [("14", None, "山西省", "province")]
SHORT = {
    "server.head_timeout_seconds": 0.5,
    "server.body_idle_timeout_seconds": 0.5,
    "server.keepalive_timeout_seconds": 1.0,
    "server.body_min_bytes_per_second": 5,
}
CLOSED_WITHIN = 15.0


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    fed: LocalTree = await build(
        tmp_path, ManualClock(time.time_ns() // 1_000_000), SHAPE, extra=SHORT
    )
    try:
        yield fed["14"]
    finally:
        await fed.stop()


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    async with asyncio.timeout(CLOSED_WITHIN):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def test_half_a_request_head_is_closed_with_408(node: RunningNode) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    try:
        writer.write(b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
        received = await until_closed(reader)
        assert received.startswith(b"HTTP/1.1 408"), received
    finally:
        writer.transport.abort()


async def test_a_head_sent_a_byte_at_a_time_is_closed_too(node: RunningNode) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    head = b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: a\r\n" * 200

    async def dribble() -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)

    sending = asyncio.ensure_future(dribble())
    try:
        received = await until_closed(reader)
        assert not sending.done(), "the whole head went through"
        assert received.startswith(b"HTTP/1.1 408"), received
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.transport.abort()


async def test_a_body_that_stops_coming_is_closed(node: RunningNode) -> None:
    token = await person(node, "clerk", "supervisor")
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    try:
        writer.write(
            b"POST /api/v1/me/contact HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"phone\""
        )
        await writer.drain()
        received = await until_closed(reader)
        assert b"200 OK" not in received
    finally:
        writer.transport.abort()


async def test_a_body_that_trickles_below_the_minimum_rate_is_closed(node: RunningNode) -> None:
    """A byte every 0.2 s never leaves the body idle for 0.5 s, so the idle timer
    alone let it hold the connection for ever (R.U.D.Y.); below the minimum rate
    (5 bytes/s here, after a grace of one idle timeout) it is closed."""
    token = await person(node, "clerk", "supervisor")
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)

    async def trickle() -> None:
        while True:
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.2)

    writer.write(
        b"POST /api/v1/me/contact HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    sending = asyncio.ensure_future(trickle())
    try:
        received = await until_closed(reader)
        assert b"200 OK" not in received
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.transport.abort()


async def test_a_connection_that_sends_nothing_is_closed(node: RunningNode) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    try:
        assert await until_closed(reader) == b""
    finally:
        writer.transport.abort()


async def test_a_slow_but_progressing_request_succeeds(node: RunningNode) -> None:
    """Head and body each take several timeouts in all, but a byte comes every
    fraction of one: nothing is cut."""
    token = await person(node, "clerk", "supervisor")
    body = json.dumps({"phone": "13800000000", "email": "clerk@example.org"}).encode()
    head = (
        b"POST /api/v1/me/contact HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
        + b"\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    try:
        writer.write(head[:20])  # the head's start; its end below, within the head timeout
        await asyncio.sleep(0.2)
        writer.write(head[20:])
        started = asyncio.get_running_loop().time()
        for byte in body:  # ~60 bytes, 0.1 s apart: the body takes 12 idle timeouts
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)
        assert asyncio.get_running_loop().time() - started > 2 * SHORT[
            "server.body_idle_timeout_seconds"
        ]
        received = await until_closed(reader)
        assert received.startswith(b"HTTP/1.1 200"), received
        assert b"13800000000" in received
    finally:
        writer.transport.abort()


async def test_a_long_poll_outlives_every_timeout(tmp_path: Path) -> None:
    """A child's pull waits ``sync.long_poll_seconds`` (5 s) for news, ten times the
    timeouts here: nothing is expected from the child meanwhile, so it is not cut, and
    an assignment made during the wait reaches the child through it."""
    shape: Shape = [*SHAPE, ("1401", "14", "太原市", "city")]
    fed: LocalTree = await build(tmp_path, SystemClock(), shape, extra=SHORT)
    try:
        province, city = fed["14"], fed["1401"]
        api = {"Authorization": f"Bearer {await person(province, 'sup', 'supervisor', 'u1')}"}
        await asyncio.sleep(3.0)  # the city's pull is waiting on the province now
        async with aiohttp.ClientSession() as http:
            async with http.post(province.url + "/api/v1/items", headers=api,
                                 json={"title": "长轮询中交办", "assignee": "1401"}) as resp:
                assert resp.status == 201, await resp.text()
                item = (await resp.json())["id"]

            async def arrived() -> bool:
                async with city.ctx.db.read() as conn:
                    found = await conn.scalar(
                        select(t.items.c.item_id).where(t.items.c.item_id == item)
                    )
                return found is not None

            await eventually(arrived, timeout=10.0, what="the assignment at the city")
            async with http.get(city.url + "/api/v1/status") as resp:
                [link] = [x for x in (await resp.json())["links"] if x["link"] == PARENT]
            assert not link.get("last_error"), link
    finally:
        await fed.stop()


async def test_a_request_the_parser_refuses_is_one_line_not_a_traceback(
    node: RunningNode, caplog: pytest.LogCaptureFixture
) -> None:
    """Too many headers, or a line too long: aiohttp answers 400 and logged an ERROR
    with a traceback for each (anyone may send thousands); now one INFO line."""
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    heads = [
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(1000)) + b"\r\n",
        b"GET / HTTP/1.1\r\nHost: " + b"a" * 20_000 + b"\r\n\r\n",
    ]
    for head in heads:
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        try:
            writer.write(head)
            await writer.drain()
            assert (await until_closed(reader)).startswith(b"HTTP/1.0 400"), head[:40]
        finally:
            writer.transport.abort()
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [r.levelno for r in server] == [logging.INFO] * 2, [r.getMessage() for r in server]
    assert not any(r.exc_info for r in server)
    assert "Too many headers" in server[0].getMessage()
