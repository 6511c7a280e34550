"""What anyone on the network can do to a node's enrollment endpoints.

``/enroll/v1/lookup`` and ``/enroll/v1/join`` take requests from nodes that have no
certificate yet: no ``Duban-Auth``, and a join request is signed only by the key it
presents. So whatever such a request carries must not forge a log line, and a
request that cannot enroll anything (no valid proof, another parent, a code never
issued) must not wait for, or hold, the node's write lock, which sync batches and
every API write need.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from hierarchy import errors as herrors
from hierarchy.enrollment import make_join_request
from node.demo.localtree import LocalTree
from protocol import envelope
from protocol.keys import SigningKey
from tests.integration.test_sync_refusals import CITY, fed, session  # noqa: F401

FORGED = "1401\nWARNING forged: enrollment is fine"


def bad_signature(raw: bytes) -> bytes:
    env = envelope.parse(raw)
    return envelope._wire(env.type, env.body, env.key_id, bytes(64), None)


async def post(client: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, dict]:
    async with client.post(url, data=body) as r:
        return r.status, await r.json()


async def test_a_join_request_never_forges_a_log_line(
    fed: LocalTree,  # noqa: F811
    session: aiohttp.ClientSession,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    city = fed[CITY]
    now = fed.clock.now_ms()
    for parent, node in ((FORGED, "140199"), (CITY, FORGED)):
        join = make_join_request(
            SigningKey.generate(), parent=parent, node=node, code="AAAA-BBBB", now=now
        )
        status, answer = await post(session, city.url + "/enroll/v1/join", join)
        assert status in (400, 403, 404), answer
    for record in caplog.records:
        assert "\n" not in record.getMessage(), record.getMessage()
    assert any("join refused" in r.getMessage() for r in caplog.records)


async def test_a_join_that_cannot_enroll_anything_never_waits_for_the_write_lock(
    fed: LocalTree, session: aiohttp.ClientSession  # noqa: F811
) -> None:
    city = fed[CITY]
    now = fed.clock.now_ms()
    requests = {
        herrors.BAD_REQUEST: b"\x93garbage",
        herrors.BAD_PROOF: bad_signature(
            make_join_request(SigningKey.generate(), parent=CITY, node="140199", code="A", now=now)
        ),
        herrors.WRONG_PARENT: make_join_request(
            SigningKey.generate(), parent="1402", node="140199", code="AAAA", now=now
        ),
        herrors.CODE_UNKNOWN: make_join_request(
            SigningKey.generate(), parent=CITY, node="140199", code="AAAA-BBBB", now=now
        ),
    }
    held = asyncio.Event()
    release = asyncio.Event()

    async def hold_the_writer() -> None:
        async with city.ctx.db.write():
            held.set()
            await release.wait()

    holder = asyncio.ensure_future(hold_the_writer())
    try:
        await held.wait()
        for reason, body in requests.items():
            began = time.monotonic()
            status, answer = await asyncio.wait_for(
                post(session, city.url + "/enroll/v1/join", body), timeout=5
            )
            assert answer["error"] == reason and 400 <= status < 500, answer
            assert time.monotonic() - began < 1.0, reason
    finally:
        release.set()
        await holder
