"""The whole 13710 life of a major item through the HTTP API over a real tree."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import aiohttp

from node.clock import SystemClock
from tests.api_client import Api, person
from tests.federation import build, eventually

CHAIN = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140105", "1401", "小店区", "county"),
    ("140105001", "140105", "坞城街道", "township"),
]
TOWNSHIP = "140105001"


async def test_major_item_whole_life(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock(), CHAIN)
    try:
        async with aiohttp.ClientSession() as session:
            leader = Api(session, fed["14"], await person(fed["14"], "governor", "leader"))
            county = Api(session, fed["140105"], await person(fed["140105"], "dc", "viewer"))
            town = Api(session, fed[TOWNSHIP], await person(fed[TOWNSHIP], "town", "supervisor"))

            created = await leader.post("/api/v1/items", {
                "title": "推进重点招商项目落地", "description": "年底前签约开工",
                "assignee": TOWNSHIP, "board": "investment", "source": "executive",
                "class": "major",
            }, expect=201)
            item = created["id"]
            assert created["deadlines"]["resolve"] > created["deadlines"]["deploy"]

            async def status_at(api: Api, want: str) -> bool:
                data = await api.call("GET", f"/api/v1/items/{item}", expect=None)
                return data.get("status") == want

            async def seen(want: str) -> None:
                for api in (town, county, leader):
                    await eventually(lambda a=api: status_at(a, want), what=f"{want} everywhere")

            await seen("assigned")
            await town.post(f"/api/v1/items/{item}/deploy", {"note": "已召开专题会议"})
            await seen("deployed")
            await town.post(f"/api/v1/items/{item}/feedback",
                            {"text": "已完成项目洽谈", "progress": 20})
            await seen("reporting")
            soon = (datetime.now() + timedelta(days=20)).date().isoformat()
            later = (datetime.now() + timedelta(days=60)).date().isoformat()
            await town.post(f"/api/v1/items/{item}/plan", {
                "milestones": [{"title": "完成签约", "due": soon},
                               {"title": "项目开工", "due": later}],
                "note": "一个月内难以完成",
            })

            async def plan_pending() -> bool:
                data = await leader.get(f"/api/v1/items/{item}")
                return (data["item"]["plan"] or {}).get("status") == "submitted"

            await eventually(plan_pending, what="plan at the province")
            await leader.post(f"/api/v1/items/{item}/approve", {})
            await seen("planned")
            await town.post(f"/api/v1/items/{item}/resolve", {"text": "项目已签约开工"})
            await seen("resolved")
            await leader.post(f"/api/v1/items/{item}/review",
                              {"outcome": "return", "reason": "缺少开工证明材料"})
            await seen("returned")
            await town.post(f"/api/v1/items/{item}/resolve", {"text": "已补充开工证明"})
            await seen("resolved")
            await leader.post(f"/api/v1/items/{item}/review", {"outcome": "accept"})
            await seen("accepted")
            await leader.post(f"/api/v1/items/{item}/close", {"note": "销号"})
            await seen("closed")

            final = await leader.get(f"/api/v1/items/{item}")
            kinds = [h["type"] for h in final["history"]]
            assert kinds == [
                "item.assigned", "item.deployed", "item.feedback", "item.plan_submitted",
                "item.plan_decided", "item.resolved", "item.reviewed", "item.resolved",
                "item.reviewed", "item.closed",
            ]
            assert final["verified"] is True
            assert all(h["verified"] for h in final["history"])
            assert final["item"]["returns"] == 1
            assert final["colour"] == "grey"
            # The county's mirror holds the same signed history.
            mirror = await county.get(f"/api/v1/items/{item}")
            assert [h["event_id"] for h in mirror["history"]] == [
                h["event_id"] for h in final["history"]
            ]
            ledger = await leader.get(f"/api/v1/items?scope={TOWNSHIP}&status=closed")
            assert [i["id"] for i in ledger["items"]] == [item]
            assert TOWNSHIP in ledger["nodes"]
    finally:
        await fed.stop()
