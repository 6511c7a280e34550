"""Urges and instructions reach the handling unit at once, not at the next reminder pass.

The reminder scheduler's tick is an hour here (``Channels.settings``); its first pass
runs at start. The province urges and instructs on an item a county assigned to a
township two levels down, and the county urges an item of its own unit: each time the
unit head and operator get their SMS and mail while the next tick is still an hour
away, so the pass that sent them was started by the event itself. Each notice is
sent exactly once: passes after it record and send nothing more, and the item's
reminder log holds one record per notice.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from node.clock import ManualClock
from tests.federation import build, eventually
from tests.integration.test_acts import (
    COUNTY,
    PROVINCE,
    SHAPE,
    T0,
    T_HEAD,
    T_OP,
    T_SUP,
    _until,
)
from tests.integration.test_reminders import Channels, add_people, api_for, channels, tick

__all__ = ["channels"]  # the fixture, used by name

TOWNSHIP = "140105001"
TICK_SECONDS = 3600.0


async def test_an_urge_and_an_instruction_notify_before_the_tick(
    tmp_path: Path, channels: Channels
) -> None:
    clock = ManualClock(T0)
    settings = channels.settings(reminders__tick_seconds=TICK_SECONDS)
    fed = await build(tmp_path, clock, SHAPE, extra_for={TOWNSHIP: settings, COUNTY: settings})
    province, county, township = fed[PROVINCE], fed[COUNTY], fed[TOWNSHIP]
    loop_started = asyncio.get_running_loop().time()
    try:
        await add_people(township, T_HEAD, T_OP, T_SUP)
        await add_people(province, ("gov", "leader", None, "13700000001", "gov@14.gov.cn"),
                         ("p_sup", "supervisor", None, "13700000002", "p_sup@14.gov.cn"))
        await add_people(county, ("c_sup", "supervisor", None, "13600000001", "c@x.gov.cn"),
                         ("c_head", "unit_head", "office", "13600000002", "ch@x.gov.cn"))
        async with aiohttp.ClientSession() as session:
            gov = await api_for(session, province, "gov")
            p_sup = await api_for(session, province, "p_sup")
            c_sup = await api_for(session, county, "c_sup")
            t_sup = await api_for(session, township, "t_sup")
            item = (await c_sup.post("/api/v1/items", {
                "title": "整治背街小巷环境", "assignee": TOWNSHIP,
            }, expect=201))["id"]
            await _until(t_sup, item, lambda g: g["status"] == "assigned", "item at township")
            await t_sup.post(f"/api/v1/items/{item}/deploy", {})
            await _until(p_sup, item, lambda g: g["status"] == "deployed", "deploy at province")
            assert channels.sms.accepted == []

            def sms_to(phone: str, marker: str) -> list[str]:
                return [e["text"] for e in channels.sms.accepted
                        if e["phone"] == phone and marker in e["text"]]

            # The urge: received at the township two hops down, sent by the pass it woke.
            await p_sup.post(f"/api/v1/items/{item}/urge", {"text": "请加快整治进度"})

            async def urge_sent() -> bool:
                return all(len(sms_to(p[3], "【督办催办】")) == 1 for p in (T_HEAD, T_OP))

            await eventually(urge_sent, what="the urge's SMS to the head and the operator")
            # The instruction likewise.
            await gov.post(f"/api/v1/items/{item}/instruct", {"text": "务必在雨季前完成"})

            async def instruction_sent() -> bool:
                return all(len(sms_to(p[3], "【领导批示】")) == 1 for p in (T_HEAD, T_OP))

            await eventually(instruction_sent, what="the instruction's SMS")

            async def mailed() -> bool:
                return len(channels.mail.accepted) == 4

            await eventually(mailed, what="the four mails")
            # Sent before the tick: the loop has not run for an hour since its start pass.
            waited = asyncio.get_running_loop().time() - loop_started
            assert waited < TICK_SECONDS
            # Exactly once: a pass now finds nothing new, and the log has one each.
            again = await tick(township)
            assert (again.recorded, again.sent) == (0, 0)
            assert len(channels.sms.accepted) == 4
            assert sorted(m["to"] for m in channels.mail.accepted) == sorted(
                [T_HEAD[4], T_OP[4]] * 2)
            log = await t_sup.get(f"/api/v1/items/{item}/messages")
            assert sorted(r["kind"] for r in log["reminders"]) == ["instruction", "urge"]

            # Signed here: the county urges its own unit's item; its head is told at once.
            own = (await c_sup.post("/api/v1/items", {
                "title": "本级整改事项", "assignee": "office",
            }, expect=201))["id"]
            await c_sup.post(f"/api/v1/items/{own}/deploy", {})
            await c_sup.post(f"/api/v1/items/{own}/urge", {"text": "本周内完成"})

            async def own_sent() -> bool:
                return len(sms_to("13600000002", "本周内完成")) == 1

            await eventually(own_sent, what="the county unit head's SMS")
            assert (await tick(county)).sent == 0
    finally:
        await fed.stop()
