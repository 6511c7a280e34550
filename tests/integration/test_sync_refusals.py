"""Bad input on the sync endpoints is refused with a reason, logged, and changes nothing.

A province (14) with two cities (1401, 1402) and one county (140101) under the
first city, each a real aiohttp server on loopback with its own SQLite file. The
county is stopped and its requests are made by hand with its own key (exactly
the header SyncClient sends), so every refusal is checked alone against the
city: the HTTP status and the JSON reason code, a warning in the log, the city's
database unchanged (or the refused events kept for audit, as designed), and a
normal sync still working afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from hierarchy.keys import revoke
from node.clock import SystemClock
from node.context import NodeContext, open_node
from node.demo.localtree import LocalTree, RunningNode, Shape
from node.storage import keyfile
from node.storage import schema as t
from node.storage.events import PARENT, SELF
from node.sync.auth import AUTH_TYPE, make_header
from node.sync.client import REPLY_LIMITS
from node.workflow.drafts import assign
from protocol import codec, envelope, errors
from protocol.events import decode_event, encode_event
from protocol.keys import SigningKey
from tests.federation import build, eventually, folded, settled

SHAPE: Shape = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("1402", "14", "大同市", "city"),
    ("140101", "1401", "太原市第1县", "county"),
]
CITY, COUNTY, SIBLING = "1401", "140101", "1402"
BATCH_BYTES = 100_000  # the city's client_max_size is then 2 * 100 kB + 1 MiB
SKEW_MS = 300_000  # sync.clock_skew_seconds default


@dataclass(frozen=True)
class Reply:
    status: int
    error: str | None
    detail: str
    value: Any  # the decoded msgpack answer of a 200


async def send(
    session: aiohttp.ClientSession,
    to: RunningNode,
    method: str,
    target: str,
    body: bytes = b"",
    header: str | None = None,
) -> Reply:
    headers = {"Content-Type": "application/msgpack"}
    if header is not None:
        headers["Duban-Auth"] = header
    async with session.request(method, to.url + target, data=body or None, headers=headers) as r:
        raw = await r.read()
        if r.status == 200:
            return Reply(200, None, "", codec.decode(raw, REPLY_LIMITS))
        assert r.content_type == "application/json", (r.status, raw[:200])
        answer = json.loads(raw)
        assert set(answer) == {"error", "detail"}, answer
        return Reply(r.status, answer["error"], answer["detail"], None)


@dataclass
class As:
    """Signs sync requests as ``node`` (with ``key``) to the node ``to``, like SyncClient."""

    session: aiohttp.ClientSession
    to: RunningNode
    node: str
    key: SigningKey

    def header(
        self, method: str, target: str, body: bytes = b"", *, at: int | None = None,
        parent: str | None = None,
    ) -> str:
        return make_header(
            self.key, node=self.node, parent=parent or self.to.id, method=method,
            target=target, body=body, now_ms=self.to.clock.now_ms() if at is None else at,
        )

    async def call(self, method: str, target: str, body: bytes = b"", **kw: Any) -> Reply:
        return await send(
            self.session, self.to, method, target, body, self.header(method, target, body, **kw)
        )

    async def push(self, raws: list[bytes], through: int) -> Reply:
        body = codec.encode({"through": through, "events": list(raws)})
        return await self.call("POST", "/sync/v1/up", body)


async def db_state(node: RunningNode) -> dict[str, Any]:
    """What a refusal must not change: the counts and the county's link row at ``node``."""
    store = node.ctx.store
    await folded(node)
    return {"counts": await store.counts(), "link": await node.ctx.outbox.link_row(COUNTY)}


async def refused_rows(node: RunningNode) -> list[tuple[str, bytes | None]]:
    async with node.ctx.db.read() as conn:
        rows = await conn.execute(select(t.refused.c.reason, t.refused.c.event_id))
        return [(r[0], r[1]) for r in rows]


async def seqs_of(node: RunningNode, origin: str) -> list[int]:
    async with node.ctx.db.read() as conn:
        rows = await conn.execute(
            select(t.events.c.origin_seq)
            .where(t.events.c.origin == origin)
            .order_by(t.events.c.origin_seq)
        )
        return [r[0] for r in rows]


def forge_body(raw: bytes) -> bytes:
    """The same envelope (signature, Merkle path) with its event's title altered."""
    env = envelope.parse(raw)
    event = decode_event(env.type, env.body)
    _, body = encode_event(dataclasses.replace(event, title="篡改过的标题"))  # type: ignore[call-arg]
    wire = codec.decode(raw, envelope.ENVELOPE_LIMITS)
    assert isinstance(wire, dict)
    wire["b"] = body
    return codec.encode(wire)


def self_assignments(me: str, n: int, title: str) -> list[Any]:
    return [
        assign(me=me, assignee=me, assignee_unit="office", title=f"{title}{i}") for i in range(n)
    ]


@contextlib.asynccontextmanager
async def county_stopped(root: Path, extra: dict[str, Any]) -> AsyncIterator[LocalTree]:
    """The tree, settled, with the county stopped (its requests are made by hand)."""
    tree = await build(root, SystemClock(), SHAPE, extra=extra)
    try:
        await eventually(lambda: settled(tree, len(SHAPE)), what="the tree to settle")
        await tree[COUNTY].stop()
        yield tree
    finally:
        await tree.stop()


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[LocalTree]:
    async with county_stopped(tmp_path, {"sync.batch_bytes": BATCH_BYTES}) as tree:
        yield tree


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def offline_county(fed: LocalTree) -> NodeContext:
    """The stopped county's own store, to write events that have not been synced."""
    return await open_node(fed[COUNTY].config, fed.clock)


async def assert_sync_still_works(fed: LocalTree) -> None:
    """Restart the county: it reconnects and a new event of its reaches the province."""
    county = fed[COUNTY]
    await county.start()
    [(event, _)] = await county.ctx.store.append_own(self_assignments(COUNTY, 1, "恢复后"))

    async def arrived() -> bool:
        return event.seq in await seqs_of(fed["14"], COUNTY)

    await eventually(arrived, what="a normal sync after the refusals")


# --------------------------------------------------------------------- requests


async def test_bad_requests_are_refused_logged_and_change_nothing(
    fed: LocalTree, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    city = fed[CITY]
    now = fed.clock.now_ms
    county_key = keyfile.load(fed[COUNTY].config.key_path)
    me = As(session, city, COUNTY, county_key)
    outsider = SigningKey.generate()
    ok_body = codec.encode({"through": 0, "events": []})
    up = "/sync/v1/up"

    def wire_header(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(codec.encode(value)).decode()

    def claim(**changes: Any) -> bytes:
        value: dict[str, Any] = {
            "node": COUNTY, "parent": CITY, "method": "POST", "target": up,
            "body": hashlib.sha256(ok_body).digest(), "at": now(), "nonce": os.urandom(16),
        }
        return codec.encode({**value, **changes})

    # An outsider's signature presented under the county's key id.
    forged = codec.decode(envelope.sign(outsider, AUTH_TYPE, claim()).raw)
    assert isinstance(forged, dict)
    forged["k"] = county_key.key_id

    cases: list[tuple[str, str | None, bytes, int, str]] = [
        ("no header", None, ok_body, 401, "auth_required"),
        ("not base64", "%%% not base64 %%%", ok_body, 401, "bad_auth"),
        ("random bytes", base64.urlsafe_b64encode(os.urandom(90)).decode(), ok_body, 401,
         "bad_auth"),
        ("wrong envelope type",
         base64.urlsafe_b64encode(envelope.sign(county_key, "item.assigned", claim()).raw)
         .decode(), ok_body, 401, "bad_auth"),
        ("wrong claim fields",
         base64.urlsafe_b64encode(
             envelope.sign(county_key, AUTH_TYPE, codec.encode({"node": COUNTY})).raw
         ).decode(), ok_body, 401, "bad_auth"),
        ("signature by another key", wire_header(forged), ok_body, 401, errors.BAD_SIGNATURE),
        ("unknown key",
         As(session, city, COUNTY, outsider).header("POST", up, ok_body), ok_body, 401,
         errors.UNKNOWN_KEY),
        ("signed for another path", me.header("GET", "/sync/v1/hello"), ok_body, 401,
         "bad_auth"),
        ("body differs from the signed one", me.header("POST", up, b"other"), ok_body, 401,
         "bad_auth"),
        ("addressed to another parent", me.header("POST", up, ok_body, parent="14"), ok_body,
         403, "wrong_parent"),
        ("stale", me.header("POST", up, ok_body, at=now() - SKEW_MS - 60_000), ok_body, 401,
         "stale_request"),
        ("from the future", me.header("POST", up, ok_body, at=now() + SKEW_MS + 60_000),
         ok_body, 401, "stale_request"),
        # A sibling city (whose key the city does not even hold: trust records stay in
        # their subtree), and the province itself, posing as the city's child.
        ("sibling", As(session, city, SIBLING, fed[SIBLING].ctx.key).header("POST", up, ok_body),
         ok_body, 401, errors.UNKNOWN_KEY),
        ("ancestor", As(session, city, "14", fed["14"].ctx.key).header("POST", up, ok_body),
         ok_body, 403, "not_my_child"),
        ("someone else's key", As(session, city, COUNTY, fed["14"].ctx.key).header(
            "POST", up, ok_body), ok_body, 403, errors.SIGNER_MISMATCH),
    ]
    garbage_bodies: list[tuple[str, bytes, str]] = [
        ("empty body", b"", errors.MALFORMED),
        ("not msgpack", b"\xc1 garbage", errors.MALFORMED),
        ("truncated", ok_body[:-3], errors.MALFORMED),
        ("trailing bytes", ok_body + b"\x00", errors.TRAILING_BYTES),
        ("extension type", b"\xd6\x01abcd", errors.EXTENSION_TYPE),
        ("not a map", codec.encode([0, []]), errors.MALFORMED),
        ("missing events", codec.encode({"through": 0}), errors.MALFORMED),
        ("extra field", codec.encode({"through": 0, "events": [], "x": 1}), errors.MALFORMED),
        ("negative cursor", codec.encode({"through": -1, "events": []}), errors.MALFORMED),
        ("events not bytes", codec.encode({"through": 0, "events": [1, "x"]}), errors.MALFORMED),
        ("too deep", codec.encode({"through": 0, "events": [[[[b"x"]]]]}), errors.TOO_DEEP),
    ]
    for name, body, reason in garbage_bodies:
        cases.append((name, me.header("POST", up, body), body, 400, reason))

    before = await db_state(city)
    for name, header, body, status, reason in cases:
        caplog.clear()
        reply = await send(session, city, "POST", up, body, header)
        assert (reply.status, reply.error) == (status, reason), name
        assert reason in caplog.text, f"{name}: refusal not logged"
        assert await db_state(city) == before, f"{name} changed the database"

    # Bad query parameters on a correctly signed request.
    caplog.clear()
    reply = await me.call("GET", "/sync/v1/down?after=abc")
    assert (reply.status, reply.error) == (400, "bad_param")
    assert "bad_param" in caplog.text
    assert await db_state(city) == before

    # A body over the limit: 413, before anything is parsed.
    caplog.clear()
    huge = codec.encode({"through": 1, "events": [os.urandom(1024 * 1024)] * 2})
    reply = await send(session, city, "POST", up, huge, me.header("POST", up, huge))
    assert (reply.status, reply.error) == (413, errors.TOO_LARGE)
    assert errors.TOO_LARGE in caplog.text
    assert await db_state(city) == before

    # The same request twice: the second is a replay.
    header = me.header("GET", "/sync/v1/hello")
    first = await send(session, city, "GET", "/sync/v1/hello", b"", header)
    assert first.status == 200 and first.value["node"] == CITY
    before = await db_state(city)
    caplog.clear()
    again = await send(session, city, "GET", "/sync/v1/hello", b"", header)
    assert (again.status, again.error) == (401, "replayed")
    assert "replayed" in caplog.text
    assert await db_state(city) == before
    assert await refused_rows(city) == []

    await assert_sync_still_works(fed)


# ---------------------------------------------------------------------- batches


async def test_one_refused_event_does_not_block_the_rest_and_pushes_are_idempotent(
    fed: LocalTree, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    city, province = fed[CITY], fed["14"]
    county = await offline_county(fed)
    try:
        made = await county.store.append_own(self_assignments(COUNTY, 3, "县自办事项"))
        through = await county.outbox.max_route_pos(PARENT)
        key = county.key
    finally:
        await county.close()
    raws = [env.raw for _, env in made]
    me = As(session, city, COUNTY, key)
    start = await db_state(city)

    # A forged body inside a valid batch: refused alone, the other two apply.
    forged = forge_body(raws[1])
    reply = await me.push([raws[0], forged, raws[2]], through)
    assert reply.status == 200
    assert (reply.value["accepted"], reply.value["duplicates"]) == (2, 0)
    assert [r[:2] for r in reply.value["refused"]] == [[1, errors.BAD_SIGNATURE]]
    assert "bad_signature" in caplog.text
    after_forged = await db_state(city)
    assert after_forged["counts"] == {
        "events": start["counts"]["events"] + 2,
        "items": start["counts"]["items"] + 2,
        "refused": 1,
    }
    assert after_forged["link"]["applied_pos"] == through
    assert await refused_rows(city) == [
        (errors.BAD_SIGNATURE, hashlib.sha256(forged).digest())
    ]

    # The genuine middle event still applies; the others are recognised.
    reply = await me.push(raws, through)
    assert (reply.value["accepted"], reply.value["duplicates"], reply.value["refused"]) == (
        1, 2, [])
    applied = await db_state(city)
    assert applied["counts"]["events"] == start["counts"]["events"] + 3

    # The same batch again, and a batch repeating one event: applied exactly once.
    for batch in (raws, [raws[0], raws[0], raws[2]]):
        reply = await me.push(batch, through)
        assert reply.status == 200
        assert (reply.value["accepted"], reply.value["duplicates"], reply.value["refused"]) == (
            0, 3, [])
        assert (await db_state(city))["counts"] == applied["counts"]
    assert await seqs_of(city, COUNTY) == [1, 2, 3]

    # Events the county may not forward, each refused alone and kept for audit.
    [(_, sibling_env)] = await fed[SIBLING].ctx.store.append_own(
        self_assignments(SIBLING, 1, "邻市事项"))
    [(_, province_env)] = await province.ctx.store.append_own(
        [assign(me="14", assignee=SIBLING, title="省交办邻市")])
    draft = self_assignments(COUNTY, 1, "冒名")[0](4, 100, fed.clock.now_ms())
    impostor = envelope.sign(SigningKey.generate(), *encode_event(draft)).raw
    signed_by_other = envelope.sign(province.ctx.key, *encode_event(draft)).raw
    garbage = b"\x93not an envelope"
    reply = await me.push(
        [sibling_env.raw, province_env.raw, impostor, signed_by_other, garbage], through)
    assert reply.status == 200 and reply.value["accepted"] == 0
    reasons = [r[1] for r in sorted(reply.value["refused"])]
    assert reasons == ["not_in_subtree", "not_in_subtree", errors.UNKNOWN_KEY,
                       errors.SIGNER_MISMATCH, errors.TRAILING_BYTES]
    final = await db_state(city)
    assert final["counts"] == {**applied["counts"], "refused": 1 + 5}
    assert "not_in_subtree" in caplog.text
    assert sorted(r for r, _ in await refused_rows(city)) == sorted(
        [errors.BAD_SIGNATURE, *reasons])

    # The province mirrors exactly the three genuine events, once each.
    async def mirrored() -> bool:
        return await seqs_of(province, COUNTY) == [1, 2, 3]

    await eventually(mirrored, what="the county's events at the province")
    assert await refused_rows(province) == []

    await assert_sync_still_works(fed)
    assert await seqs_of(province, COUNTY) == [1, 2, 3, 4]


# -------------------------------------------------------------------- revocation


async def test_revoked_key_is_refused_after_last_seq(
    fed: LocalTree, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """The city revokes the county's key after seq 3. The record travels the tree;
    requests signed by the key are refused (403 key_revoked); events by it with
    seq > 3 are refused at the city and at the province, earlier ones still verify.

    A revoked key can open no sync request, so its later events are handed to
    each node's ingestor directly: the very call the up endpoint makes."""
    caplog.set_level(logging.WARNING)
    city, province, sibling = fed[CITY], fed["14"], fed[SIBLING]
    county = await offline_county(fed)
    try:
        first = await county.store.append_own(self_assignments(COUNTY, 2, "撤销前"))
        through_first = await county.outbox.max_route_pos(PARENT)
        later = await county.store.append_own(self_assignments(COUNTY, 3, "离线"))
        through = await county.outbox.max_route_pos(PARENT)
        key = county.key
    finally:
        await county.close()
    me = As(session, city, COUNTY, key)
    reply = await me.push([env.raw for _, env in first], through_first)
    assert reply.value["accepted"] == 2

    async def province_has_first() -> bool:
        return await seqs_of(province, COUNTY) == [1, 2]

    await eventually(province_has_first, what="seq 1-2 at the province")

    now = fed.clock.now_ms()
    record = revoke(
        city.ctx.trust, city.ctx.key, node=COUNTY, key_id=key.key_id, last_seq=3, now=now,
        reason="钥匙遗失",
    )
    await city.ctx.store.store_trust_records([record], SELF)

    async def travelled() -> bool:
        return bool(province.ctx.trust.revocations(COUNTY))

    await eventually(travelled, what="the revocation at the province")
    # Not to the other city, which never held the county's certificate.
    assert not sibling.ctx.trust.has_node(COUNTY)

    # Requests signed by the revoked key.
    before = await db_state(city)
    later_raws = [env.raw for _, env in later]
    for reply in (
        await me.call("GET", "/sync/v1/hello"),
        await me.push(later_raws, through),
        await me.call("GET", "/sync/v1/down?after=0"),
    ):
        assert (reply.status, reply.error) == (403, errors.KEY_REVOKED)
    assert "key_revoked" in caplog.text
    assert await db_state(city) == before

    # Events: seq 3 is vouched for, 4 and 5 are not.
    result = await city.ctx.ingestor.receive(COUNTY, later_raws)
    assert result.accepted == 1
    assert [(i, reason) for i, reason, _ in result.refused] == [
        (1, errors.KEY_REVOKED), (2, errors.KEY_REVOKED)]
    assert await seqs_of(city, COUNTY) == [1, 2, 3]

    async def province_has_third() -> bool:
        return await seqs_of(province, COUNTY) == [1, 2, 3]

    await eventually(province_has_third, what="seq 3 forwarded after the revocation")
    assert await refused_rows(province) == []
    result = await province.ctx.ingestor.receive(CITY, later_raws)
    assert (result.accepted, result.duplicates) == (0, 1)
    assert [reason for _, reason, _ in result.refused] == [errors.KEY_REVOKED] * 2
    assert await seqs_of(province, COUNTY) == [1, 2, 3]
    # The history signed before the revocation still verifies everywhere.
    for node in (city, province):
        node.ctx.trust.check_event_signer(key.key_id, COUNTY, 3, fed.clock.now_ms())


async def test_a_revocation_inside_a_batch_applies_from_where_it_stands(fed: LocalTree) -> None:
    """Trust records in a batch take effect in batch order: an event of the revoked key
    after its last seq is accepted before the revocation in the batch and refused after
    it. (The ingestor works out each key's checks once per batch: a trust record in the
    batch must start that over.)"""
    city, province = fed[CITY], fed["14"]
    county = await offline_county(fed)
    try:
        own = await county.store.append_own(self_assignments(COUNTY, 3, "批内"))
        key = county.key
    finally:
        await county.close()
    (first, first_env), (second, second_env), (_third, third_env) = own
    record = revoke(
        city.ctx.trust, city.ctx.key, node=COUNTY, key_id=key.key_id, last_seq=first.seq - 1,
        now=fed.clock.now_ms(), reason="钥匙遗失",
    )
    result = await province.ctx.ingestor.receive(
        CITY, [first_env.raw, second_env.raw, record, third_env.raw]
    )
    assert result.accepted == 3  # the first two events and the record
    assert [(i, reason) for i, reason, _ in result.refused] == [(3, errors.KEY_REVOKED)]
    assert await seqs_of(province, COUNTY) == [first.seq, second.seq]
