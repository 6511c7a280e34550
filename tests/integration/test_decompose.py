"""Workflow.decompose over real nodes: deadlines no later than the item's own, and
lead and co-units checked against the child's published unit list."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from node.clock import SystemClock, iso
from node.demo.localtree import Shape
from node.errors import Invalid
from node.http.services import WORKFLOW
from node.storage import unit_lists
from node.workflow.actions import DEADLINE_AFTER_PARENT
from tests.api_client import Api, person
from tests.federation import build, eventually

SHAPE: Shape = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140101", "1401", "小店区", "county"),
]
DAY = 86_400_000


async def test_decompose_keeps_deadlines_within_the_items_own(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock(), SHAPE)
    try:
        province, city, county = fed["14"], fed["1401"], fed["140101"]
        now = county.ctx.clock.now_ms()
        await county.ctx.accounts.add_unit("fgw", "发改局", office=False, now=now)
        await county.ctx.accounts.add_unit("env", "生态环境分局", office=False, now=now)

        async def published() -> bool:
            return "140101" in await unit_lists.held(city.ctx.db, ["140101"])

        await eventually(published, what="the county's units at the city")
        async with aiohttp.ClientSession() as s:
            leader = Api(s, province, await person(province, "leader", "leader"))
            sup = Api(s, city, await person(city, "city", "supervisor"))
            item = (await leader.post("/api/v1/items", {
                "title": "燃气安全排查", "assignee": "1401", "class": "general"},
                expect=201))["id"]

            async def arrived() -> bool:
                got = await sup.call("GET", f"/api/v1/items/{item}", expect=None)
                return "status" in got

            await eventually(arrived, what="item at the city")
            parent = await sup.get(f"/api/v1/items/{item}")
            due = parent["deadlines"]["resolve"]
            later = iso(now + 30 * DAY)
            # One part too late: refused with the part and the field named; nothing signed.
            refused = await sup.call("POST", f"/api/v1/items/{item}/decompose", {"parts": [
                {"assignee": "140101", "title": "小店区排查", "lead_unit": "fgw"},
                {"assignee": "140101", "title": "小店区复查", "deadline": later},
            ]}, expect=400)
            assert refused["error"] == DEADLINE_AFTER_PARENT
            assert refused["field"] == "parts[1].deadline"
            assert f"later than the item's own deadline {due}" in refused["detail"]
            assert (await sup.get(f"/api/v1/items/{item}"))["sub_items"] == []

            # Every problem of the parts at once, for the page.
            user = (await city.ctx.accounts.user_by_name("city"))
            assert user is not None
            wf = city.app[WORKFLOW]
            problems = await wf.decompose_problems(user[0], item, [
                {"assignee": "140101", "title": "a", "class": "major", "lead_unit": "nope"},
                {"assignee": "140101", "title": "b", "class": "inherit", "co_units": ["env", "x"]},
                {"assignee": "999", "title": "c", "class": "inherit"},
                {"assignee": "140101", "title": "d", "class": "explicit",
                 "deadline": now + 30 * DAY},
            ])
            assert [(type(p), p.reason, p.field) for p in problems] == [
                (Invalid, "unknown_unit", "parts[0].lead_unit"),
                (Invalid, DEADLINE_AFTER_PARENT, "parts[0].class"),
                (Invalid, "unknown_unit", "parts[1].co_units"),
                (Invalid, "unknown_assignee", "parts[2].assignee"),
                (Invalid, DEADLINE_AFTER_PARENT, "parts[3].deadline"),
            ]
            assert "140101 has no unit 'nope'" in problems[0].detail

            # Within the item's own deadline: signed, the inherited deadline is the item's.
            done = await sup.post(f"/api/v1/items/{item}/decompose", {"parts": [
                {"assignee": "140101", "title": "小店区排查", "lead_unit": "fgw",
                 "co_units": ["env"]},
                {"assignee": "140101", "title": "小店区复查", "deadline": iso(now + 2 * DAY)},
            ]}, expect=201)
            assert [p["deadlines"]["resolve"] for p in done["sub_items"]] == \
                [due, iso(now + 2 * DAY)]
    finally:
        await fed.stop()
