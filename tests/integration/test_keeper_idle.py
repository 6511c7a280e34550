"""The tallies' keeper does not poll while idle (node/queries/keeper.py).

With nothing to score it waits for rows to be written, up to IDLE_SECONDS (a
minute); these tests check that an item written meanwhile is scored long before
that: a node's own write (a commit) and a received one (folded by the
materialiser) each wake it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from node.clock import SystemClock
from node.demo.localtree import RunningNode, Shape
from node.queries.keeper import IDLE_SECONDS
from node.storage import schema as t
from node.workflow.drafts import assign
from tests.federation import build, eventually, folded

SHAPE: Shape = [("14", None, "山西省", "province"), ("1401", "14", "太原市", "city")]
WITHIN = 15.0
"""Well under IDLE_SECONDS: a keeper that only woke at its fallback would miss it."""


async def dirty(node: RunningNode) -> int:
    async with node.ctx.db.read() as conn:
        return int(await conn.scalar(
            select(func.count()).select_from(t.score_exceptions)
            .where(t.score_exceptions.c.reason == "dirty")
        ) or 0)


async def scored(node: RunningNode) -> bool:
    return await dirty(node) == 0


async def test_an_idle_keeper_wakes_for_own_and_received_rows(tmp_path: Path) -> None:
    assert WITHIN < IDLE_SECONDS / 2
    fed = await build(tmp_path, SystemClock(), SHAPE)
    try:
        province, city = fed["14"], fed["1401"]
        await eventually(lambda: scored(province), what="the province idle")
        await eventually(lambda: scored(city), what="the city idle")
        await asyncio.sleep(0.5)  # both keepers are now waiting, not scoring

        made = await province.ctx.store.append_own(
            [assign(me="14", assignee="1401", title=f"事项{i}") for i in range(3)]
        )
        items = [ev.item for ev, _ in made]
        assert await dirty(province) == 3  # written, not scored yet
        await eventually(lambda: scored(province), timeout=WITHIN,
                         what="the province's keeper scoring its own write")

        await folded(city)

        async def held() -> bool:
            async with city.ctx.db.read() as conn:
                n = await conn.scalar(select(func.count()).select_from(t.items)
                                      .where(t.items.c.item_id.in_(items)))
            return n == 3

        await eventually(held, what="the city holding the items")
        await eventually(lambda: scored(city), timeout=WITHIN,
                         what="the city's keeper scoring what it received")
    finally:
        await fed.stop()
