"""The cascade on a real four-level tree (1 + 2 + 4 + 8 nodes on loopback).

A province item marked "to every township" is passed down by each level on the
way, each signing its own sub-items; a township that is offline meanwhile gets
its sub-item when it is back; with the policy off the item waits until a person
passes it down; the province's roll-up equals what the townships hold.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from node.clock import SystemClock
from node.demo.localtree import RunningNode
from node.http.services import CASCADE
from node.storage import schema as t
from tests.api_client import Api, person
from tests.federation import FOUR_LEVELS, build, eventually, folded

TOWNSHIPS = [n for n, _p, _name, level in FOUR_LEVELS if level == "township"]
PARENT = {n: p for n, p, _name, _level in FOUR_LEVELS}
OFFLINE = "140101001"


async def rows(node: RunningNode, **where: Any) -> list[Any]:
    query = select(t.items)
    for column, value in where.items():
        query = query.where(t.items.c[column] == value)
    async with node.ctx.db.read() as conn:
        return list((await conn.execute(query)).all())


async def cascade_rows(node: RunningNode) -> list[Any]:
    query = select(t.items).where(t.items.c.cascade.is_not(None))
    async with node.ctx.db.read() as conn:
        return list((await conn.execute(query)).all())


def chain(by_id: dict[str, Any], item: str) -> list[str]:
    """The item and its parent items up to the top."""
    out = [item]
    while by_id[out[-1]].parent_item is not None:
        out.append(by_id[out[-1]].parent_item)
    return out


async def test_one_province_item_reaches_every_township_and_rolls_up(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock())
    try:
        province = fed["14"]
        await fed[OFFLINE].stop()  # offline during the cascade
        async with aiohttp.ClientSession() as session:
            sup = Api(session, province, await person(province, "sup", "supervisor", "dcs"))
            made = await sup.post(
                "/api/v1/items",
                {"title": "全省各乡镇开展燃气安全排查", "assignee": "dcs", "cascade": "township"},
                expect=201,
            )
            root = made["id"]
            assert made["cascade"] == "township"

            async def everywhere_but_offline() -> bool:
                at_province = [r for r in await cascade_rows(province)
                               if r.assignee in TOWNSHIPS]
                return len(at_province) == len(TOWNSHIPS)

            # The county signs the offline township's sub-item all the same.
            await eventually(everywhere_but_offline, what="a sub-item for every township")
            for township in TOWNSHIPS:
                if township == OFFLINE:
                    continue
                await eventually(lambda n=township: _holds(fed[n]), what=f"item at {township}")

            # Who signed what, read at the province (its mirror of the whole tree).
            by_id = {r.item_id: r for r in await cascade_rows(province)}
            assert by_id[root].assigner == "14" and by_id[root].assignee == "14"
            assert by_id[root].status == "deployed"
            for item_id, row in by_id.items():
                if item_id == root:
                    continue
                # Every sub-item is assigned by its assignee's parent: each level signs its own.
                assert row.assigner == PARENT[row.assignee], row
                parent = by_id[row.parent_item]
                assert parent.assignee == row.assigner
                assert chain(by_id, item_id)[-1] == root
                if row.assignee not in TOWNSHIPS:
                    assert row.status == "deployed"  # passed on: deployed by that level
            async with province.ctx.db.read() as conn:
                signed = (await conn.execute(
                    select(t.events.c.item_id, t.events.c.origin)
                    .where(t.events.c.type == "item.assigned")
                    .where(t.events.c.item_id.in_(list(by_id)))
                )).all()
            assert {item: origin for item, origin in signed} == {
                i: r.assigner for i, r in by_id.items()
            }
            assert sorted(r.assignee for r in by_id.values() if r.assignee in TOWNSHIPS) == sorted(
                TOWNSHIPS
            )

            # Back online: the township gets its sub-item from its county.
            await fed[OFFLINE].start()
            await eventually(lambda: _holds(fed[OFFLINE]), what="the sub-item after reconnecting")

            # Some townships report; the province's roll-up equals their states.
            progress = {TOWNSHIPS[0]: 40, TOWNSHIPS[3]: 80, TOWNSHIPS[5]: 20}
            for township, pct in progress.items():
                node = fed[township]
                api = Api(session, node, await person(node, "sup", "supervisor"))
                [mine] = await rows(node, assignee=township)
                await api.post(f"/api/v1/items/{mine.item_id}/deploy", {})
                await api.post(f"/api/v1/items/{mine.item_id}/feedback",
                               {"text": "已排查", "progress": pct})
            [resolved_at] = await rows(fed[TOWNSHIPS[5]], assignee=TOWNSHIPS[5])
            api = Api(session, fed[TOWNSHIPS[5]],
                      await fed[TOWNSHIPS[5]].ctx.accounts.token_for("sup", 0))
            await api.post(f"/api/v1/items/{resolved_at.item_id}/resolve", {"text": "已整改完毕"})

            async def reported() -> bool:
                mirrored = {r.assignee: r for r in await cascade_rows(province)}
                return all(mirrored[n].progress == p for n, p in progress.items()) and (
                    mirrored[TOWNSHIPS[5]].status == "resolved"
                )

            await eventually(reported, what="the townships' feedback at the province")
            await folded(province)
            rollup = await sup.get(f"/api/v1/items/{root}/rollup")

            held = {}
            for township in TOWNSHIPS:
                [row] = await rows(fed[township], assignee=township)
                held[township] = row
            levels = {entry["level"]: entry for entry in rollup["levels"]}
            assert {k: v["count"] for k, v in levels.items()} == {
                "city": 2, "county": 4, "township": 8,
            }
            towns = levels["township"]
            assert towns["by_status"] == dict(Counter(r.status for r in held.values()))
            assert towns["feedback_in"] == 3
            assert towns["progress"] == round(sum(r.progress for r in held.values()) / 8)
            assert rollup["count"] == 14
            assert rollup["own"]["progress"] == 0
            # The rule: a leaf counts its progress (100 once resolved), each parent the
            # mean of its children; the item the mean of its direct sub-items.
            leaf = {n: (100 if r.status == "resolved" else r.progress) for n, r in held.items()}
            county = {c: sum(leaf[n] for n in TOWNSHIPS if PARENT[n] == c) / 2
                      for c in {PARENT[n] for n in TOWNSHIPS}}
            city = {c: sum(v for k, v in county.items() if PARENT[k] == c) / 2
                    for c in {PARENT[k] for k in county}}
            assert rollup["rolled"]["progress"] == round(sum(city.values()) / 2)
            assert {c["assignee"] for c in rollup["children"]} == {"1401", "1402"}
            for child in rollup["children"]:
                assert child["rolled_progress"] == round(city[child["assignee"]])
                assert child["leaves"]["count"] == 4
            slowest = [s["assignee"] for s in rollup["slowest"]]
            assert TOWNSHIPS[5] not in slowest  # resolved: not slow
            assert slowest[-1] == TOWNSHIPS[3]  # 80%: the least slow of the open ones
            assert rollup["overdue_count"] == 0 and rollup["overdue"] == []
    finally:
        await fed.stop()


async def _holds(node: RunningNode) -> bool:
    return len(await rows(node, assignee=node.id)) == 1


async def test_policy_off_waits_for_a_person_and_refusals(tmp_path: Path) -> None:
    off = {"cascade.auto": False}
    fed = await build(tmp_path, SystemClock(), extra_for={"14": off, "1401": off})
    try:
        province, city = fed["14"], fed["1401"]
        async with aiohttp.ClientSession() as session:
            sup = Api(session, province, await person(province, "sup", "supervisor", "dcs"))
            viewer = Api(session, province, await person(province, "eye", "viewer"))

            # Bad levels are refused with the reason, before anything is signed.
            for body in (
                {"cascade": "province"},
                {"cascade": "village"},
                {"assignee": "140101", "cascade": "city"},
            ):
                data = await sup.call("POST", "/api/v1/items", {
                    "title": "排查", "assignee": "dcs", **body}, expect=400)
                assert (data["error"], data["field"]) == ("bad_cascade", "cascade"), data
                assert "level" in data["detail"]
            plain = (await sup.post("/api/v1/items", {"title": "一般事项", "assignee": "dcs"},
                                    expect=201))["id"]
            assert await sup.refused("POST", f"/api/v1/items/{plain}/pass_down", None,
                                     409) == "not_cascade"

            root = (await sup.post("/api/v1/items", {
                "title": "全省各县开展安全排查", "assignee": "dcs", "cascade": "county",
                "class": "major"}, expect=201))["id"]
            # The policy is off here: the item waits, nothing is signed for it.
            assert [r.item_id for r in await rows(province, parent_item=root)] == []
            assert await province.app[CASCADE].waiting() == [root]
            assert await viewer.refused("POST", f"/api/v1/items/{root}/pass_down", None,
                                        403) == "role_forbidden"

            done = await sup.post(f"/api/v1/items/{root}/pass_down", None, expect=201)
            assert done["deployed"] is True
            assert sorted(s["assignee"] for s in done["sub_items"]) == ["1401", "1402"]
            assert await sup.refused("POST", f"/api/v1/items/{root}/pass_down", None,
                                     409) == "already_passed_down"
            [(_, state)] = [(r.item_id, r.status) for r in await rows(province, item_id=root)]
            assert state == "deployed"
            # The deadlines are the item's own (all in the future: nothing clamped).
            [top] = await rows(province, item_id=root)
            for sub in await rows(province, parent_item=root):
                assert (sub.deploy_due, sub.feedback_due, sub.resolve_due) == (
                    top.deploy_due, top.feedback_due, top.resolve_due)

            # 1402 (policy on) passes it on to its counties; 1401 (off) waits.
            await eventually(lambda: _count(province, "1402"), what="1402's counties")
            city_item = None

            async def arrived() -> bool:
                nonlocal city_item
                found = await rows(city, assignee="1401")
                city_item = found[0].item_id if found else None
                return city_item is not None

            await eventually(arrived, what="the sub-item at 1401")
            assert city_item is not None
            await folded(city)
            assert [r.item_id for r in await rows(city, parent_item=city_item)] == []
            city_sup = Api(session, city, await person(city, "csup", "supervisor"))
            await city_sup.post(f"/api/v1/items/{city_item}/pass_down", None, expect=201)
            await eventually(lambda: _count(province, "1401"), what="1401's counties")

            # A county is at the level itself: it handles its sub-item, never passes it on.
            county = fed["140101"]
            await eventually(lambda: _holds(county), what="the sub-item at 140101")
            [mine] = await rows(county, assignee="140101")
            county_sup = Api(session, county, await person(county, "sup", "supervisor"))
            assert await county_sup.refused(
                "POST", f"/api/v1/items/{mine.item_id}/pass_down", None, 409
            ) == "wrong_level"
            assert [r.item_id for r in await rows(county, parent_item=mine.item_id)] == []
    finally:
        await fed.stop()


async def _count(province: RunningNode, city: str) -> bool:
    """Both counties of ``city`` hold a county-level sub-item, as the province sees it."""
    found = [r for r in await cascade_rows(province) if r.assigner == city]
    return len(found) == 2
