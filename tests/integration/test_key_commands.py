"""``duban key rotate`` and ``duban revoke`` on a real tree on loopback.

Province 14 -> city 1401 -> county 140101 -> township 140101001, each a real
aiohttp server with its own SQLite file. The commands run as the CLI runs them
(node/keys.py), on a stopped node's data directory, while the rest of the tree
serves.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from hierarchy import errors as herrors
from hierarchy.errors import HierarchyError
from hierarchy.keys import make_rotation_request
from node import keys as node_keys
from node.clock import Clock, SystemClock
from node.config import Config
from node.context import NodeContext, open_node
from node.demo.localtree import LocalTree, RunningNode, Shape
from node.errors import NodeError
from node.http import keys as node_http_keys
from node.http.enroll import issue_code
from node.keys import next_from_seq, revoke_child, rotate_key
from node.setup import join_parent
from node.storage import keyfile
from node.storage import schema as t
from node.storage.db import Database
from node.storage.events import Draft
from node.sync.auth import make_header
from node.workflow.drafts import assign
from protocol import errors
from protocol.keys import SigningKey
from tests.federation import build, eventually, settled

SHAPE: Shape = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140101", "1401", "小店区", "county"),
    ("140101001", "140101", "坞城街道", "township"),
]
PROVINCE, CITY, COUNTY, TOWNSHIP = "14", "1401", "140101", "140101001"
ROOT = Path(__file__).resolve().parents[2]


async def seqs_of(node: RunningNode, origin: str) -> list[int]:
    async with node.ctx.db.read() as conn:
        rows = await conn.execute(
            select(t.events.c.origin_seq)
            .where(t.events.c.origin == origin)
            .order_by(t.events.c.origin_seq)
        )
        return [r[0] for r in rows]


async def refused(node: RunningNode) -> list[str]:
    async with node.ctx.db.read() as conn:
        return list((await conn.scalars(select(t.refused.c.reason))).all())


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[LocalTree]:
    tree = await build(tmp_path, SystemClock(), SHAPE)
    try:
        await eventually(lambda: settled(tree, len(SHAPE)), what="the tree to settle")
        yield tree
    finally:
        await tree.stop()


def to_township(title: str) -> list[Draft]:
    return [assign(me=COUNTY, assignee=TOWNSHIP, title=title)]


# ------------------------------------------------------------------ rotation


async def test_a_rotated_key_signs_what_reaches_the_province(fed: LocalTree) -> None:
    """The county rotates while stopped; the city certifies the new key. Its next
    item verifies at the city, the province and the township; its events signed
    before still verify everywhere; the old key file is kept."""
    county, province = fed[COUNTY], fed[PROVINCE]
    [(before, _)] = await county.ctx.store.append_own(to_township("轮换前"))
    old = county.ctx.key

    async def first_up() -> bool:
        return await seqs_of(province, COUNTY) == [before.seq]

    await eventually(first_up, what="the first item at the province")
    with pytest.raises(keyfile.KeyFileError, match="running"):
        await rotate_key(county.config, fed.clock)
    await county.stop()

    rotated = await rotate_key(county.config, fed.clock)
    cert = rotated.certificate
    assert (cert.node, cert.version, cert.from_seq) == (COUNTY, 2, before.seq + 1)
    assert keyfile.load(county.config.key_path).key_id == cert.key_id != old.key_id
    assert keyfile.load(rotated.kept_as).key_id == old.key_id == rotated.old_key_id
    assert not keyfile.pending_path(county.config.key_path).exists()

    await county.start()
    [(after, env)] = await county.ctx.store.append_own(to_township("轮换后"))
    assert env.key_id == cert.key_id

    async def everywhere() -> bool:
        return (
            await seqs_of(province, COUNTY) == [before.seq, after.seq]
            and await seqs_of(fed[TOWNSHIP], COUNTY) == [before.seq, after.seq]
        )

    await eventually(everywhere, what="the new key's item at the province and the township")
    now = fed.clock.now_ms()
    for node in fed.nodes.values():
        trust = node.ctx.trust
        assert trust.current(COUNTY).key_id == cert.key_id, node.id
        trust.check_event_signer(old.key_id, COUNTY, before.seq, now)
        trust.check_event_signer(cert.key_id, COUNTY, after.seq, now)
        assert await refused(node) == [], node.id
    # The township's own certificate, signed by the county's old key, still holds:
    # its link to the county works.
    await fed[TOWNSHIP].ctx.store.append_own(
        [assign(me=TOWNSHIP, assignee=TOWNSHIP, assignee_unit="office", title="镇自办")]
    )

    async def township_up() -> bool:
        return len(await seqs_of(province, TOWNSHIP)) == 1

    await eventually(township_up, what="the township's item at the province")


async def test_a_rotation_cut_short_is_finished_by_running_it_again(
    fed: LocalTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The city certifies the new key but its answer is lost (the county stops before
    storing it): the node refuses to start, and the same command finishes — the city
    answers the repeated request (signed with the new key, the old one being retired
    there) with the same certificate, no new version."""
    county, city = fed[COUNTY], fed[CITY]
    await county.stop()
    # A parent not reachable certified nothing: the new key is dropped, nothing waits.
    await city.stop()
    with pytest.raises(node_keys.NotCertified, match="not reachable"):
        await rotate_key(county.config, fed.clock)
    assert not keyfile.pending_path(county.config.key_path).exists()
    await city.start()

    def lost(*_args: object) -> list[bytes]:
        raise OSError("connection reset before the answer was stored")

    with monkeypatch.context() as patch:
        patch.setattr(node_keys, "_checked_records", lost)
        with pytest.raises(OSError):
            await rotate_key(county.config, fed.clock)
    pending = keyfile.pending_path(county.config.key_path)
    assert pending.exists()
    new_key_id = keyfile.load(pending).key_id
    assert city.ctx.trust.current(COUNTY).key_id == new_key_id  # certified there
    with pytest.raises(keyfile.KeyFileError, match="did not finish"):
        await county.start()

    rotated = await rotate_key(county.config, fed.clock)
    assert rotated.certificate.key_id == new_key_id
    assert city.ctx.trust.version_of(COUNTY) == 2
    await county.start()
    [(event, _)] = await county.ctx.store.append_own(to_township("补完轮换"))

    async def up() -> bool:
        return await seqs_of(fed[PROVINCE], COUNTY) == [event.seq]

    await eventually(up, what="the county's item at the province")


# ---------------------------------------------------------------- revocation


def township_own(title: str) -> list[Draft]:
    return [assign(me=TOWNSHIP, assignee=TOWNSHIP, assignee_unit="office", title=title)]


async def test_revoke_refuses_late_events_of_the_key_and_the_child_joins_again(
    fed: LocalTree, tmp_path: Path
) -> None:
    """The county revokes the township's key (after its last event held there). A
    late event signed by the old key is refused at the county and at the city; the
    township's history still verifies; the township, enrolled again in a new data
    directory as the command says, gets its history back and writes on."""
    county, township, city = fed[COUNTY], fed[TOWNSHIP], fed[CITY]
    written = await township.ctx.store.append_own(township_own("撤销前1") + township_own("撤销前2"))
    old = township.ctx.key

    async def both_up() -> bool:
        return await seqs_of(fed[PROVINCE], TOWNSHIP) == [1, 2]

    await eventually(both_up, what="the township's items at the province")
    await township.stop()

    with pytest.raises(keyfile.KeyFileError, match="running"):
        await revoke_child(county.config, fed.clock, TOWNSHIP)
    await county.stop()
    for child, reason in (
        ("140101099", herrors.UNKNOWN_NODE),
        (CITY, herrors.WRONG_CHILD),  # the parent
        (COUNTY, herrors.WRONG_CHILD),  # itself
    ):
        with pytest.raises(HierarchyError) as info:
            await revoke_child(county.config, fed.clock, child)
        assert info.value.reason == reason, child
    with pytest.raises(NodeError, match="held here already"):
        await revoke_child(county.config, fed.clock, TOWNSHIP, last_seq=1)

    done = await revoke_child(county.config, fed.clock, TOWNSHIP, reason="钥匙遗失")
    assert (done.last_seq, done.from_seq, done.signed_below) == (2, 3, ())
    with pytest.raises(HierarchyError) as info:
        await revoke_child(county.config, fed.clock, TOWNSHIP)
    assert info.value.reason == herrors.ALREADY_REVOKED
    await county.start()

    async def travelled() -> bool:
        return all(bool(fed[n].ctx.trust.revocations(TOWNSHIP)) for n in (CITY, PROVINCE))

    await eventually(travelled, what="the revocation at the city and the province")

    # The stolen key signs seq 3 (the township is stopped; its store is opened by hand).
    thief = await open_node(township.config, fed.clock)
    try:
        [(_, late)] = await thief.store.append_own(township_own("伪造"))
    finally:
        await thief.close()
    assert late.key_id == old.key_id
    at_county = await county.ctx.ingestor.receive(TOWNSHIP, [late.raw])
    at_city = await city.ctx.ingestor.receive(COUNTY, [late.raw])
    for result in (at_county, at_city):
        assert result.accepted == 0
        assert [reason for _, reason, _ in result.refused] == [errors.KEY_REVOKED]
    now = fed.clock.now_ms()
    for node in (county, city, fed[PROVINCE]):
        for event, _ in written:
            node.ctx.trust.check_event_signer(old.key_id, TOWNSHIP, event.seq, now)
        assert await seqs_of(node, TOWNSHIP) == [1, 2]

    # A revoked key cannot rotate itself: refused, and the new key is dropped.
    with pytest.raises(node_keys.NotCertified, match="key_revoked"):
        await rotate_key(township.config, fed.clock)
    assert not keyfile.pending_path(township.config.key_path).exists()

    # Enrolled again, as `duban revoke` prints: a code with from_seq 3, a new directory.
    from_seq = await next_from_seq(county.ctx, TOWNSHIP)
    assert from_seq == done.from_seq
    code = await issue_code(
        *_inviter(county.ctx), child=TOWNSHIP, name="坞城街道", level="township",
        from_seq=from_seq,
    )
    again = tmp_path / "township-again"
    config = await join_parent(
        again, parent_url=county.url, code=code,
        root=str(county.config["node.root_fingerprint"]), clock=fed.clock,
    )
    back = RunningNode(TOWNSHIP, again, config, fed.clock)
    fed.nodes["township-again"] = back
    await back.start()

    async def recovered() -> bool:
        return await back.ctx.store.own_seq() == 2

    await eventually(recovered, what="the township's history back from the county")
    [(event, env)] = await back.ctx.store.append_own(township_own("重新入网后"))
    assert (event.seq, env.key_id) == (3, back.ctx.key.key_id)

    async def accepted() -> bool:
        return await seqs_of(fed[PROVINCE], TOWNSHIP) == [1, 2, 3]

    await eventually(accepted, what="the new key's event at the province")
    assert await refused(fed[PROVINCE]) == []
    assert await refused(city) == [errors.KEY_REVOKED]  # the forgery, kept for audit


async def test_a_node_with_children_enrolls_again_in_place(fed: LocalTree) -> None:
    """The city revokes the county's key; the township's certificate, which that key
    signed, stops verifying. The county enrolls again in its own data directory with
    a code (`duban key replace`): its new key signs on from the code's from_seq, it
    certifies the township again, and both write events that reach the province.
    Its event written with the revoked key after the revocation is refused by the
    city (the township, which learns of the revocation from the county, took it
    before: a revoked node's subtree hears of it last)."""
    city, county, township, province = fed[CITY], fed[COUNTY], fed[TOWNSHIP], fed[PROVINCE]
    await county.ctx.store.append_own(to_township("撤销前"))
    old = county.ctx.key

    async def first_up() -> bool:
        return await seqs_of(province, COUNTY) == [1]

    await eventually(first_up, what="the county's item at the province")
    await county.stop()
    await city.stop()
    done = await revoke_child(city.config, fed.clock, COUNTY)
    assert (done.last_seq, done.from_seq, done.signed_below) == (1, 2, (TOWNSHIP,))
    await city.start()

    async def travelled() -> bool:
        return bool(province.ctx.trust.revocations(COUNTY))

    await eventually(travelled, what="the revocation at the province")
    now = fed.clock.now_ms()
    with pytest.raises(errors.ProtocolError) as info:
        province.ctx.trust.check_event_signer(township.ctx.key.key_id, TOWNSHIP, 1, now)
    assert info.value.reason == errors.KEY_REVOKED

    # Written with the revoked key while the county did not know: refused later.
    offline = await open_node(county.config, fed.clock)
    try:
        await offline.store.append_own(to_township("撤销后旧钥匙"))
    finally:
        await offline.close()
    code = await issue_code(*_inviter(city.ctx), child=COUNTY, name="小店区", level="county",
                            from_seq=await next_from_seq(city.ctx, COUNTY))
    replaced = await node_keys.replace_key(county.config, fed.clock, code)
    cert = replaced.certificate
    assert (cert.from_seq, replaced.old_key_id) == (2, old.key_id)
    await county.start()
    [(event, env)] = await county.ctx.store.append_own(to_township("重新入网后"))
    assert (event.seq, env.key_id) == (3, cert.key_id)
    await township.ctx.store.append_own(
        [assign(me=TOWNSHIP, assignee=TOWNSHIP, assignee_unit="office", title="镇自办")]
    )

    async def both_up() -> bool:
        return (
            await seqs_of(province, COUNTY) == [1, 3]
            and await seqs_of(province, TOWNSHIP) == [1]
            and 3 in await seqs_of(township, COUNTY)
        )

    await eventually(both_up, what="the county's and the township's new events up")
    now = fed.clock.now_ms()
    for node in (city, province, township):
        trust = node.ctx.trust
        assert trust.current(TOWNSHIP).version == 2
        trust.check_event_signer(township.ctx.key.key_id, TOWNSHIP, 1, now)
        trust.check_event_signer(old.key_id, COUNTY, 1, now)
    # Seq 2, the old key's after the revocation, out of its range once the new key
    # signs from 2 (retired, and revoked too).
    assert await refused(city) == [errors.KEY_RETIRED]


async def duban(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "node.cli", *args], cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )


async def test_the_commands_as_an_operator_runs_them(fed: LocalTree) -> None:
    """What the CLI prints and refuses: one line for a mistake, the next commands to
    run after a revocation, and those commands working."""
    county, township = fed[COUNTY], fed[TOWNSHIP]
    running = await duban("revoke", "--data", str(county.data), TOWNSHIP)
    assert running.returncode == 2 and "is running" in running.stderr
    await township.stop()
    rotated = await duban("key", "rotate", "--data", str(township.data))
    assert rotated.returncode == 0, rotated.stderr
    assert "now signs with key" in rotated.stdout and "node.key.old-" in rotated.stdout

    await county.stop()
    unknown = await duban("revoke", "--data", str(county.data), "140101099")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("duban: unknown_node") and "Traceback" not in unknown.stderr
    revoked = await duban("revoke", "--data", str(county.data), TOWNSHIP, "--reason", "钥匙遗失")
    assert revoked.returncode == 0, revoked.stderr
    invite = (
        f"duban invite --data {county.data} --child {TOWNSHIP} --name 坞城街道 "
        "--level township --from-seq 1"
    )
    assert invite in revoked.stdout
    assert "duban key replace --data DIR --code CODE" in revoked.stdout
    assert "duban join --data NEW_DIR" in revoked.stdout

    code = (await duban(*invite.split()[1:])).stdout.strip()
    await county.start()
    replaced = await duban("key", "replace", "--data", str(township.data), "--code", code)
    assert replaced.returncode == 0, replaced.stderr
    assert "enrolled again" in replaced.stdout
    await township.start()
    [(event, env)] = await township.ctx.store.append_own(township_own("换钥匙后"))

    async def up() -> bool:
        return await seqs_of(fed[PROVINCE], TOWNSHIP) == [event.seq]

    await eventually(up, what="the township's event at the province")
    assert fed[PROVINCE].ctx.trust.current(TOWNSHIP).key_id == env.key_id


async def test_the_rotate_endpoint_refuses_and_changes_nothing(fed: LocalTree) -> None:
    """``POST /sync/v1/rotate`` at the city, by hand: a request for another node, a
    ``from_seq`` inside the history the city holds, a body too large, a header
    missing. Each is refused with its reason, and the county's certificate stays."""
    city, county = fed[CITY], fed[COUNTY]
    [(event, _)] = await county.ctx.store.append_own(to_township("轮换前"))

    async def held() -> bool:
        return await city.ctx.store.max_seq_of(COUNTY) == event.seq

    await eventually(held, what="the county's event at the city")
    await county.stop()
    key = keyfile.load(county.config.key_path)
    township_key = keyfile.load(fed[TOWNSHIP].config.key_path)
    now = fed.clock.now_ms()

    async def post(body: bytes, *, signed: bool = True) -> tuple[int, str]:
        headers = {"Content-Type": "application/msgpack"}
        if signed:
            headers["Duban-Auth"] = make_header(
                key, node=COUNTY, parent=CITY, method="POST", target="/sync/v1/rotate",
                body=body, now_ms=fed.clock.now_ms(),
            )
        async with aiohttp.ClientSession() as session, session.post(
            city.url + "/sync/v1/rotate", data=body, headers=headers
        ) as resp:
            return resp.status, (await resp.json(content_type=None))["error"]

    new = SigningKey.generate()
    behind = make_rotation_request(key, new, node=COUNTY, from_seq=event.seq, now=now)
    other = make_rotation_request(township_key, new, node=TOWNSHIP, from_seq=9, now=now)
    assert await post(behind) == (409, node_http_keys.FROM_SEQ_BEHIND)
    assert await post(other) == (403, herrors.WRONG_CHILD)
    assert await post(b"\x00" * (node_http_keys.MAX_REQUEST + 1)) == (413, errors.TOO_LARGE)
    assert await post(behind, signed=False) == (401, "auth_required")
    assert city.ctx.trust.version_of(COUNTY) == 1
    assert city.ctx.trust.current(COUNTY).key_id == key.key_id


def _inviter(ctx: NodeContext) -> tuple[Database, str, Clock, Config]:
    """What ``issue_code`` takes, from an opened node."""
    return ctx.db, ctx.me, ctx.clock, ctx.config
