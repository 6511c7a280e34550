"""Slowloris: a connection that never finishes its request is closed; a slow one is not.

One real node on loopback, its connection timeouts shortened to fractions of a
second; raw sockets play the clients. Each check waits for the server to close
the connection with a bound far above the timeout (the test asserts that it
closes, not how fast).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.clock import ManualClock
from node.localtree import LocalTree, RunningNode, Shape
from tests.api_client import person
from tests.federation import build

SHAPE: Shape = [("14", None, "山西省", "province")]
SHORT = {
    "server.head_timeout_seconds": 0.5,
    "server.body_idle_timeout_seconds": 0.5,
    "server.keepalive_timeout_seconds": 1.0,
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
