"""Urges (催办), instructions (批示) and extensions (延期申请) through a real tree.

Province 14 above counties 140105 and 140106; township 140105001 below 140105. The
county assigns an item to the township; the province, two levels above the township,
urges and instructs; the township is notified once through a real local SMS gateway,
SMTP server and webhook, answers the instruction, asks for an extension that the
county approves, and is refused a second one once the deadline has passed. A sibling
county's forged urge is refused at every node it reaches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from node.clock import ManualClock
from node.storage.events import PARENT
from protocol import envelope, errors
from protocol.events import Urged, encode_event
from tests.api_client import Api
from tests.federation import build, eventually, folded
from tests.integration.test_reminders import (
    CHINA,
    Channels,
    add_people,
    api_for,
    channels,
    tick,
)

__all__ = ["channels"]  # the fixture, used by name

PROVINCE, COUNTY, SIBLING, TOWNSHIP = "14", "140105", "140106", "140105001"
SHAPE = [
    (PROVINCE, None, "山西省", "province"),
    (COUNTY, PROVINCE, "小店区", "county"),
    (SIBLING, PROVINCE, "迎泽区", "county"),
    (TOWNSHIP, COUNTY, "坞城街道", "township"),
]
T0 = 1_772_413_200_000  # 2026-03-02 09:00 China time
DAY = 86_400_000
T_HEAD = ("t_head", "unit_head", "office", "13900000001", "t_head@example.gov.cn")
T_OP = ("t_op", "operator", "office", "13900000002", "t_op@example.gov.cn")
T_SUP = ("t_sup", "supervisor", None, "13900000003", "t_sup@example.gov.cn")


async def _item_at(api: Api, item: str) -> dict[str, Any]:
    return await api.call("GET", f"/api/v1/items/{item}", expect=None)  # type: ignore[no-any-return]


async def _until(api: Api, item: str, check: Any, what: str) -> dict[str, Any]:
    got: dict[str, Any] = {}

    async def ok() -> bool:
        nonlocal got
        got = await _item_at(api, item)
        return "item" in got and bool(check(got))

    await eventually(ok, what=what)
    return got


async def test_urge_instruction_and_extension_through_three_levels(
    tmp_path: Path, channels: Channels
) -> None:
    clock = ManualClock(T0)
    fed = await build(tmp_path, clock, SHAPE, extra_for={TOWNSHIP: channels.settings()})
    province, county, township = fed[PROVINCE], fed[COUNTY], fed[TOWNSHIP]
    try:
        await add_people(township, T_HEAD, T_OP, T_SUP)
        await add_people(province, ("gov", "leader", None, "13700000001", "gov@14.gov.cn"),
                         ("p_sup", "supervisor", None, "13700000002", "p_sup@14.gov.cn"))
        await add_people(county, ("c_sup", "supervisor", None, "13600000001", "c@x.gov.cn"))
        async with aiohttp.ClientSession() as session:
            gov = await api_for(session, province, "gov")
            p_sup = await api_for(session, province, "p_sup")
            c_sup = await api_for(session, county, "c_sup")
            t_op = await api_for(session, township, "t_sup")  # reports for the township
            item = (await c_sup.post("/api/v1/items", {
                "title": "整治背街小巷环境", "assignee": TOWNSHIP, "board": "daily",
                "source": "executive",
            }, expect=201))["id"]
            await _until(t_op, item, lambda g: g["status"] == "assigned", "item at township")
            await t_op.post(f"/api/v1/items/{item}/deploy", {})
            await _until(p_sup, item, lambda g: g["status"] == "deployed", "deploy at province")

            # -- the province, two levels above the township, urges and instructs.
            urged = await p_sup.post(f"/api/v1/items/{item}/urge", {"text": "请加快整治进度"})
            assert urged["event"] == "item.urged"
            said = await gov.post(f"/api/v1/items/{item}/instruct",
                                  {"text": "务必在雨季前完成,群众满意为准。"})
            assert said["event"] == "item.instructed"
            # Who may not: the township urging itself, a province supervisor instructing.
            assert await t_op.refused("POST", f"/api/v1/items/{item}/urge",
                                      {"text": "自己催"}, 403) == "not_supervisor"
            assert await p_sup.refused("POST", f"/api/v1/items/{item}/instruct",
                                       {"text": "批示"}, 403) == "role_forbidden"

            got = await _until(t_op, item, lambda g: len(g["item"]["instructions"]) == 1,
                               "the instruction at the township")
            [urge] = got["item"]["urges"]
            assert (urge["by"], urge["author"], urge["text"]) == (PROVINCE, "p_sup",
                                                                  "请加快整治进度")
            instruction = got["item"]["instructions"][0]
            assert (instruction["by"], instruction["author"]) == (PROVINCE, "gov")
            for node_api in (c_sup,):  # the county holds both too
                await _until(node_api, item,
                             lambda g: len(g["item"]["urges"]) == 1
                             and len(g["item"]["instructions"]) == 1, "both at the county")

            # -- the ledger says how often and when it was urged, at every node holding it.
            for api in (t_op, c_sup, p_sup):
                await folded(api.node)
                listed = await api.get("/api/v1/items")
                [row] = [r for r in listed["items"] if r["id"] == item]
                assert row["urges"]["count"] == 1 and row["urges"]["last_by"] == PROVINCE
                assert row["urges"]["last_at"] is not None

            # -- the township's head and operator are told at once (the fold wakes the
            # reminder pass: tests/integration/test_notice_now.py), each exactly once.
            async def all_sent() -> bool:
                return (len(channels.sms.accepted), len(channels.mail.accepted),
                        len(channels.webhook.accepted)) == (4, 4, 2)

            await eventually(all_sent, what="two notices by SMS, mail and webhook")
            again = await tick(township)
            assert (again.recorded, again.sent) == (0, 0)
            texts = sorted(e["text"] for e in channels.sms.accepted)
            assert len(texts) == 4
            assert sum("【督办催办】p_sup（14）催办事项《整治背街小巷环境》：请加快整治进度" in t
                       for t in texts) == 2
            assert sum("【领导批示】gov（14）" in t and "群众满意为准" in t for t in texts) == 2
            assert {e["phone"] for e in channels.sms.accepted} == {T_HEAD[3], T_OP[3]}
            assert sorted(m["to"] for m in channels.mail.accepted) == sorted(
                [T_HEAD[4], T_OP[4]] * 2)
            assert sorted(h["kind"] for h in channels.webhook.accepted) == [
                "instruction", "urge"]
            log = await t_op.get(f"/api/v1/items/{item}/messages")
            assert sorted(r["kind"] for r in log["reminders"]) == ["instruction", "urge"]

            # -- the township answers the instruction; the province sees the answer.
            await t_op.post(f"/api/v1/items/{item}/feedback", {
                "text": "已按批示要求制定雨季前整治计划", "progress": 30,
                "answers": instruction["event_id"],
            })
            got = await _until(gov, item,
                               lambda g: g["item"]["instructions"][0]["answered_by"],
                               "the answer at the province")
            answer = got["item"]["feedback"][0]
            assert answer["answers"] == instruction["event_id"]
            assert got["item"]["instructions"][0]["answered_by"] == [answer["event_id"]]
            assert await t_op.refused("POST", f"/api/v1/items/{item}/feedback", {
                "text": "x", "progress": 40, "answers": "ab" * 32}, 409) == "invalid_transition"

            # -- an extension asked at the township, approved at the county.
            old_due = got["deadlines"]["resolve_ms"]
            new_due = "2026-03-31T18:00"
            asked = await t_op.post(f"/api/v1/items/{item}/request_extension", {
                "text": "雨季提前,施工受阻", "deadline": new_due, "progress": "已完成三条小巷",
            })
            assert asked["event"] == "item.extension_requested"
            assert await t_op.refused("POST", f"/api/v1/items/{item}/request_extension", {
                "text": "再申请", "deadline": "2026-04-30", "progress": "同上",
            }, 409) == "invalid_transition"  # one pending at a time
            await _until(c_sup, item, lambda g: g["item"]["extensions"], "request at county")
            assert await p_sup.refused("POST", f"/api/v1/items/{item}/decide_extension",
                                       {"approve": True}, 403) == "not_assigner"
            await c_sup.post(f"/api/v1/items/{item}/decide_extension",
                             {"approve": True, "text": "同意"})
            moved = int(__import__("datetime").datetime(2026, 3, 31, 18, tzinfo=CHINA)
                        .timestamp() * 1000)
            for api in (t_op, c_sup, p_sup):
                got = await _until(api, item,
                                   lambda g: g["deadlines"]["resolve_ms"] == moved,
                                   f"the new deadline at {api.node.id}")
                [ext] = got["item"]["extensions"]
                assert (ext["status"], ext["old_due"], ext["deadline"]) == (
                    "approved", old_due, moved)

            # -- after the (new) deadline, a request is refused with its reason.
            clock.set(moved + DAY)
            assert await t_op.refused("POST", f"/api/v1/items/{item}/request_extension", {
                "text": "还需时间", "deadline": "2026-05-30", "progress": "大部分完成",
            }, 409) == errors.EXTENSION_TOO_LATE
    finally:
        await fed.stop()


async def test_a_forged_urge_from_a_sibling_is_refused_at_every_hop(tmp_path: Path) -> None:
    """The sibling county 140106 signs an urge on the county 140105's item: the province
    (its parent, where it would first arrive) refuses it ``not_supervisor``, and the
    county and the township, were it handed to them from above, ``not_from_ancestor``."""
    clock = ManualClock(T0)
    fed = await build(tmp_path, clock, SHAPE)
    province, county, sibling, township = (fed[n] for n in (PROVINCE, COUNTY, SIBLING, TOWNSHIP))
    try:
        await add_people(county, ("c_sup", "supervisor", None, "13600000009", "c@x.gov.cn"))
        await add_people(township, T_SUP)
        async with aiohttp.ClientSession() as session:
            c_sup = await api_for(session, county, "c_sup")
            t_op = await api_for(session, township, "t_sup")
            item = (await c_sup.post("/api/v1/items", {
                "title": "修缮老旧管网", "assignee": TOWNSHIP, "board": "daily",
                "source": "executive",
            }, expect=201))["id"]
            await _until(t_op, item, lambda g: g["status"] == "assigned", "item at township")
            for node in (province, county, township):
                await eventually(lambda node=node: _holds(node, item), what=f"{node.id} holds")

            forged = Urged(item=item, origin=SIBLING, seq=1000, lamport=5, at=clock.now_ms(),
                           to=TOWNSHIP, author="冒充者", text="伪造的催办")
            raw = envelope.sign(sibling.ctx.key, *encode_event(forged)).raw
            at_province = await province.ctx.ingestor.receive(SIBLING, [raw])
            at_county = await county.ctx.ingestor.receive(PARENT, [raw])
            at_township = await township.ctx.ingestor.receive(PARENT, [raw])
            assert [r for _, r, _ in at_province.refused] == [errors.NOT_SUPERVISOR]
            assert [r for _, r, _ in at_county.refused] == ["not_from_ancestor"]
            assert [r for _, r, _ in at_township.refused] == ["not_from_ancestor"]
            for result in (at_province, at_county, at_township):
                assert result.accepted == 0
            # The real one, by the province, passes every hop.
            await add_people(province, ("p_sup", "supervisor", None, "13600000008", "p@x.gov.cn"))
            p_sup = await api_for(session, province, "p_sup")
            await p_sup.post(f"/api/v1/items/{item}/urge", {"text": "请尽快部署"})
            got = await _until(t_op, item, lambda g: g["item"]["urges"], "the real urge")
            assert [u["by"] for u in got["item"]["urges"]] == [PROVINCE]
            # The sibling's people cannot even see the item, let alone urge it.
            await add_people(sibling, ("s_sup", "supervisor", None, "13600000007", "s@x.gov.cn"))
            s_sup = await api_for(session, sibling, "s_sup")
            await s_sup.call("POST", f"/api/v1/items/{item}/urge", {"text": "x"}, expect=404)
    finally:
        await fed.stop()


async def _holds(node: Any, item: str) -> bool:
    await folded(node)
    async with node.ctx.db.read() as conn:
        from node.items.projection import load_state

        return await load_state(conn, item) is not None
