"""Unit lists up the tree, through real nodes on loopback (docs/hierarchy.md).

A township of a four-level tree adds units: its signed list reaches its county,
city and province (and no sibling), a changed list replaces the older one at
every ancestor, and the API answers it within the subtree only. Forged records
are refused, each with its reason, and change nothing held.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
from sqlalchemy import func, select

from node.clock import SystemClock
from node.demo.localtree import RunningNode
from node.storage import schema as t
from node.storage import unit_lists
from node.storage.events import PARENT
from node.sync.ingest import NOT_IN_SUBTREE, UNITS_UP_ONLY
from protocol import codec, envelope, errors
from protocol.units import BAD_UNIT_LIST, UNITS_TYPE, Unit, UnitList, sign_units
from tests.api_client import Api, person
from tests.federation import build, eventually

TOWNSHIP, SIBLING = "140101001", "140101002"
COUNTY, CITY, PROVINCE = "140101", "1401", "14"
OTHER_COUNTY = "140102"


async def held_codes(node: RunningNode, of: str) -> tuple[int, list[str]] | None:
    got = (await unit_lists.held(node.ctx.db, [of])).get(of)
    return None if got is None else (got.version, [u.code for u in got.units])


async def test_unit_lists_reach_every_ancestor_and_newer_replace_older(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock())
    try:
        town = fed[TOWNSHIP]
        now = town.ctx.clock.now_ms()
        await town.ctx.accounts.add_unit("office", "党政办", office=True, now=now)
        await town.ctx.accounts.add_unit("safety", "应急办", office=False, now=now)
        first = await held_codes(town, TOWNSHIP)
        assert first is not None and first[1] == ["office", "safety"]
        ancestors = [fed[COUNTY], fed[CITY], fed[PROVINCE]]

        async def everywhere(want: tuple[int, list[str]]) -> bool:
            return all([await held_codes(n, TOWNSHIP) == want for n in ancestors])

        await eventually(lambda: everywhere(first), what="first list at every ancestor")
        # Never sideways or down: a sibling county, a city's other branch.
        assert await held_codes(fed[OTHER_COUNTY], TOWNSHIP) is None
        assert await held_codes(fed[SIBLING], TOWNSHIP) is None

        await town.ctx.accounts.add_unit("env", "环保所", office=False, now=now + 1)
        second = await held_codes(town, TOWNSHIP)
        assert second is not None and second[0] > first[0]
        assert second[1] == ["env", "office", "safety"]
        await eventually(lambda: everywhere(second), what="changed list at every ancestor")

        # The API: the province reads the township's list; the other county may not.
        async with aiohttp.ClientSession() as s:
            top = Api(s, fed[PROVINCE], await person(fed[PROVINCE], "sheng", "supervisor"))
            got = await top.get(f"/api/v1/units?node={TOWNSHIP}")
            assert got["node"] == TOWNSHIP and got["version"] == second[0]
            assert [u["code"] for u in got["units"]] == ["env", "office", "safety"]
            assert got["units"][1] == {"code": "office", "name": "党政办", "office": True}
            other = Api(s, fed[OTHER_COUNTY],
                        await person(fed[OTHER_COUNTY], "xian", "supervisor"))
            # A cousin is not even known there: trust records stay in their subtree.
            assert await other.refused("GET", f"/api/v1/units?node={TOWNSHIP}", None, 404) == \
                "unknown_node"
            assert await other.refused("GET", "/api/v1/units?node=99", None, 404) == \
                "unknown_node"
            # A subtree node that never published: said so, not an empty list.
            assert await top.refused("GET", f"/api/v1/units?node={SIBLING}", None, 404) == \
                "no_unit_list"
            own = await other.get("/api/v1/units")
            assert own["node"] == OTHER_COUNTY and own["units"] == []
    finally:
        await fed.stop()


async def test_forged_unit_lists_are_refused_with_their_reason(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock())
    try:
        town, sibling, county = fed[TOWNSHIP], fed[SIBLING], fed[COUNTY]
        now = town.ctx.clock.now_ms()
        await town.ctx.accounts.add_unit("office", "党政办", office=True, now=now)
        real = await held_codes(town, TOWNSHIP)
        assert real is not None

        async def arrived() -> bool:
            return await held_codes(county, TOWNSHIP) == real

        await eventually(arrived, what="the township's list at the county")
        units = (Unit(code="fake", name="冒名单位"),)
        version = real[0] + 10
        # 1. The township's key signs a list naming its sibling.
        as_sibling = sign_units(
            town.ctx.key, UnitList(node=SIBLING, version=version, at=now, units=units)
        )
        # 2. The sibling's own, valid list, sent on the township's link.
        sideways = sign_units(
            sibling.ctx.key, UnitList(node=SIBLING, version=version, at=now, units=units)
        )
        # 3. The township's own key, an older version than the county holds.
        older = sign_units(
            town.ctx.key, UnitList(node=TOWNSHIP, version=real[0] - 1, at=now, units=units)
        )
        # 4. Signed by the township, but no unit list inside.
        garbage = envelope.sign(town.ctx.key, UNITS_TYPE, codec.encode({"node": TOWNSHIP}))
        result = await county.ctx.ingestor.receive(
            TOWNSHIP, [as_sibling.raw, sideways.raw, older.raw, garbage.raw]
        )
        reasons = sorted((i, reason) for i, reason, _detail in result.refused)
        assert reasons == [
            (0, errors.SIGNER_MISMATCH),
            (1, NOT_IN_SUBTREE),
            (2, errors.VERSION_REGRESSION),
            (3, BAD_UNIT_LIST),
        ], result.refused
        assert result.accepted == 0
        details = [detail for _i, _r, detail in sorted(result.refused)]
        assert f"signed the unit list of {SIBLING}" in details[0]
        assert f"{SIBLING} is not in {TOWNSHIP}'s subtree" in details[1]
        assert f"version {real[0] - 1} <= {real[0]} held" in details[2]
        # Lists go up only: the same valid record coming down from a parent is refused.
        fresh = sign_units(
            town.ctx.key, UnitList(node=TOWNSHIP, version=version, at=now, units=units)
        )
        down = await county.ctx.ingestor.receive(PARENT, [fresh.raw])
        assert [r for _i, r, _d in down.refused] == [UNITS_UP_ONLY]
        # Nothing held changed, and every refusal is kept for audit with its reason.
        assert await held_codes(county, TOWNSHIP) == real
        assert await held_codes(county, SIBLING) is None
        async with county.ctx.db.read() as conn:
            kept = await conn.scalar(
                select(func.count()).select_from(t.refused).where(t.refused.c.type == "node.units")
            )
        assert kept == 5
        # The honest newer record on the right link is accepted and replaces.
        ok = await county.ctx.ingestor.receive(TOWNSHIP, [fresh.raw])
        assert ok.accepted == 1 and not ok.refused
        assert await held_codes(county, TOWNSHIP) == (version, ["fake"])
    finally:
        await fed.stop()
