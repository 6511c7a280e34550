"""Every rule and role refuses with its reason code, and a refusal changes nothing."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from node.clock import SystemClock
from node.demo.localtree import LocalTree, RunningNode
from node.storage import schema as t
from tests.api_client import Api, person
from tests.federation import build, eventually

SHAPE = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("1402", "14", "大同市", "city"),
    ("140101", "1401", "小店区", "county"),
    ("140101001", "140101", "坞城街道", "township"),
]
TOWN = "140101001"


async def event_count(node: RunningNode) -> int:
    async with node.ctx.db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(t.events)) or 0)


@pytest.fixture
async def tree(tmp_path: Path):  # type: ignore[no-untyped-def]
    fed = await build(tmp_path, SystemClock(), SHAPE)
    yield fed
    await fed.stop()


async def test_refusals_by_rule_and_role(tree: LocalTree) -> None:
    async with aiohttp.ClientSession() as s:
        leader = Api(s, tree["14"], await person(tree["14"], "leader", "leader"))
        p_viewer = Api(s, tree["14"], await person(tree["14"], "pv", "viewer"))
        city = Api(s, tree["1401"], await person(tree["1401"], "city", "supervisor"))
        sibling = Api(s, tree["1402"], await person(tree["1402"], "sib", "supervisor"))
        town = Api(s, tree[TOWN], await person(tree[TOWN], "town", "supervisor"))
        t_op = Api(s, tree[TOWN], await person(tree[TOWN], "op", "operator", unit="agri"))
        t_viewer = Api(s, tree[TOWN], await person(tree[TOWN], "tv", "viewer"))

        item = (await leader.post("/api/v1/items", {"title": "农田水利建设", "assignee": TOWN},
                                  expect=201))["id"]

        async def at_town() -> bool:
            got = await town.call("GET", f"/api/v1/items/{item}", expect=None)
            return got.get("status") == "assigned"

        await eventually(at_town, what="item at the township")
        before = {n: await event_count(tree[n]) for n in ("14", "1401", "1402", TOWN)}

        # A sibling: cannot read another subtree (does not even know it: trust records
        # stay in their subtree), cannot assign into it, does not hold it.
        assert await sibling.refused("GET", "/api/v1/items?scope=1401", None, 404) == \
            "unknown_node"
        assert await sibling.refused("POST", "/api/v1/items",
                                     {"title": "越权", "assignee": "140101"}, 400) == \
            "unknown_assignee"
        assert await sibling.refused("GET", f"/api/v1/items/{item}", None, 404) == \
            "unknown_item"
        # Upward or sideways assignment is refused too.
        assert await town.refused("POST", "/api/v1/items",
                                  {"title": "反向交办", "assignee": "14"}, 403) == "not_ancestor"

        # Wrong role.
        assert await p_viewer.refused("POST", "/api/v1/items",
                                      {"title": "x", "assignee": TOWN}, 403) == "role_forbidden"
        assert await t_viewer.refused("POST", f"/api/v1/items/{item}/deploy", {}, 403) == \
            "role_forbidden"
        assert await t_op.refused("POST", f"/api/v1/items/{item}/deploy", {}, 403) == \
            "wrong_unit"

        # Only the assignee reports: an ancestor holding the mirror may not.
        assert await city.refused("POST", f"/api/v1/items/{item}/feedback",
                                  {"text": "代为反馈", "progress": 10}, 403) == "not_assignee"
        # Only the assigner reviews and closes: the township cannot close its own item.
        assert await town.refused("POST", f"/api/v1/items/{item}/close", {}, 403) == \
            "not_assigner"
        assert await town.refused("POST", f"/api/v1/items/{item}/review",
                                  {"outcome": "accept"}, 403) == "not_assigner"
        assert await city.refused("POST", f"/api/v1/items/{item}/withdraw",
                                  {"reason": "x"}, 403) == "not_assigner"

        # Out of order for the item's state: 409.
        assert await leader.refused("POST", f"/api/v1/items/{item}/close", {}, 409) == \
            "invalid_transition"
        assert await town.refused("POST", f"/api/v1/items/{item}/feedback",
                                  {"text": "未部署先反馈", "progress": 5}, 409) == \
            "invalid_transition"
        assert await leader.refused("POST", f"/api/v1/items/{item}/review",
                                    {"outcome": "accept"}, 409) == "invalid_transition"

        assert {n: await event_count(tree[n]) for n in before} == before

        # Acting on a withdrawn item.
        await leader.post(f"/api/v1/items/{item}/withdraw", {"reason": "任务调整"})

        async def withdrawn() -> bool:
            got = await town.get(f"/api/v1/items/{item}")
            return got["status"] == "withdrawn"

        await eventually(withdrawn, what="withdrawal at the township")
        assert await town.refused("POST", f"/api/v1/items/{item}/deploy", {}, 409) == \
            "item_withdrawn"
        assert await leader.refused("POST", f"/api/v1/items/{item}/update",
                                    {"title": "改"}, 409) == "item_withdrawn"


async def test_decomposition_rolls_up_and_the_province_sees_the_chain(tmp_path: Path) -> None:
    shape = [
        ("14", None, "山西省", "province"),
        ("1401", "14", "太原市", "city"),
        ("140101", "1401", "小店区", "county"),
        ("140102", "1401", "迎泽区", "county"),
    ]
    fed = await build(tmp_path, SystemClock(), shape)
    try:
        async with aiohttp.ClientSession() as s:
            leader = Api(s, fed["14"], await person(fed["14"], "leader", "leader"))
            city = Api(s, fed["1401"], await person(fed["1401"], "city", "supervisor"))
            c1 = Api(s, fed["140101"], await person(fed["140101"], "c1", "supervisor"))
            c2 = Api(s, fed["140102"], await person(fed["140102"], "c2", "supervisor"))
            item = (await leader.post("/api/v1/items", {
                "title": "大气污染防治攻坚", "assignee": "1401", "class": "major",
                "board": "key_task"}, expect=201))["id"]

            async def arrived(api: Api, ident: str) -> bool:
                got = await api.call("GET", f"/api/v1/items/{ident}", expect=None)
                return "status" in got

            await eventually(lambda: arrived(city, item), what="item at the city")
            await city.post(f"/api/v1/items/{item}/deploy", {"note": "分解到区县"})
            parts = await city.post(f"/api/v1/items/{item}/decompose", {"parts": [
                {"assignee": "140101", "title": "小店区燃煤锅炉改造"},
                {"assignee": "140102", "title": "迎泽区扬尘治理", "class": "general"},
            ]}, expect=201)
            subs = [p["id"] for p in parts["sub_items"]]
            assert [p["assignee"] for p in parts["sub_items"]] == ["140101", "140102"]
            # The inherited deadline is the parent's.
            parent = await city.get(f"/api/v1/items/{item}")
            assert parts["sub_items"][0]["deadlines"]["resolve"] == \
                parent["deadlines"]["resolve"]

            for api, sub, progress in ((c1, subs[0], 40), (c2, subs[1], 80)):
                await eventually(lambda a=api, i=sub: arrived(a, i), what="sub-item arrives")
                await api.post(f"/api/v1/items/{sub}/deploy", {})
                await api.post(f"/api/v1/items/{sub}/feedback",
                               {"text": "按计划推进", "progress": progress})

            async def rolled_up(api: Api) -> bool:
                got = await api.get(f"/api/v1/items/{item}")
                return got["rollup"] == {"count": 2, "done": 0, "progress": 60}

            await eventually(lambda: rolled_up(city), what="roll-up at the city")
            await eventually(lambda: rolled_up(leader), what="roll-up at the province")
            chain = await leader.get(f"/api/v1/items/{item}")
            assert [s["id"] for s in chain["sub_items"]] == subs
            sub = await leader.get(f"/api/v1/items/{subs[0]}")
            assert sub["item"]["parent_item"] == item
            assert sub["item"]["assigner"] == "1401"
            # A county may not decompose the province's item it does not hold.
            assert await c1.refused("POST", f"/api/v1/items/{item}/decompose",
                                    {"parts": [{"assignee": "140101", "title": "x"}]}, 404) == \
                "unknown_item"
    finally:
        await fed.stop()
