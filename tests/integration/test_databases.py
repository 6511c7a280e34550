"""The same node code on SQLite and on a real PostgreSQL server: a province on
either database assigns down a three-level chain, receives the feedback into its
mirror, and refuses a replayed batch without storing anything twice."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from node.clock import SystemClock
from node.storage import schema as t
from node.workflow.drafts import act, assign
from protocol.events import Deployed, Feedback
from tests.federation import build, eventually

SHAPE = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140101", "1401", "小店区", "county"),
]


async def test_province_on_each_database(tmp_path: Path, db_url: str) -> None:
    fed = await build(tmp_path, SystemClock(), SHAPE, extra_for={"14": {"database.url": db_url}})
    try:
        province = fed["14"]
        assert province.ctx.db.dialect == ("postgresql" if "postgres" in db_url else "sqlite")
        drafts = [assign(me="14", assignee="140101", title=f"事项{i}") for i in range(50)]
        made = await province.ctx.store.append_own(drafts)
        items = [ev.item for ev, _ in made]
        county = fed["140101"]

        async def count(node, table) -> int:  # type: ignore[no-untyped-def]
            async with node.ctx.db.read() as conn:
                return int(await conn.scalar(select(func.count()).select_from(table)) or 0)

        async def all_arrived() -> bool:
            return await count(county, t.items) == 50

        await eventually(all_arrived, what="50 items at the county")
        await county.ctx.store.append_own(
            [act(Deployed, me="140101", item=i, to="14", note="部署") for i in items]
            + [act(Feedback, me="140101", item=i, to="14", text="进展", progress=30,
                   attachments=()) for i in items]
        )

        async def mirrored() -> bool:
            async with province.ctx.db.read() as conn:
                n = await conn.scalar(
                    select(func.count()).where(t.items.c.status == "reporting")
                )
            return n == 50

        await eventually(mirrored, what="feedback in the province mirror")
        before = await count(province, t.events)
        # The same envelopes again through the ingest: all duplicates, nothing stored.
        async with county.ctx.db.read() as conn:
            raws = [r[0] for r in await conn.execute(
                select(t.events.c.raw).where(t.events.c.origin == "140101"))]
        result = await province.ctx.ingestor.receive("1401", raws)
        assert result.accepted == 0 and result.duplicates == len(raws) == 100
        assert await count(province, t.events) == before
        assert await count(province, t.refused) == 0
    finally:
        await fed.stop()
