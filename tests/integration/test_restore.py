"""A node restored from an old backup takes its newer events back from its parent.

Province 14 -> city 1401 -> county 140101, real servers on loopback. The city's
SQLite file is backed up (sqlite3 backup API, city stopped); the city then goes
on writing: it relays the province's assignments, assigns items of its own and
relays the county's reports, all of which reach the province. The city is
stopped, its old file put back, and it restarts while the province is down, so
its child reconnects to it before it can recover (the worst order). When the
province returns, the city recovers its own events and its subtree's from it
before writing anything new: its next event takes the next sequence number, the
province refuses nothing (no seq_conflict), and the county, told of the new
stream epoch, pulls again and receives everything, including the city's event
it had not fetched before the crash.
"""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from sqlalchemy import select

from node.clock import SystemClock
from node.config import DB_NAME
from node.demo.localtree import LocalTree, RunningNode, Shape
from node.storage import schema as t
from node.storage.events import PARENT
from node.workflow.drafts import act, assign
from protocol.events import Deployed, Feedback
from tests.federation import build, eventually, folded

SHAPE: Shape = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140101", "1401", "小店区", "county"),
]
PROVINCE, CITY, COUNTY = "14", "1401", "140101"


async def settled(fed: LocalTree) -> bool:
    for node in fed.nodes.values():
        if node.runner is None:
            return False
        ctx = node.ctx
        if len(ctx.trust.nodes()) < len(SHAPE):
            return False
        links = ctx.outbox.all_links()
        if any(s.pending_out for s in await ctx.outbox.link_statuses(links)):
            return False
    return True


async def ids_of(node: RunningNode, *conditions: Any) -> set[bytes]:
    async with node.ctx.db.read() as conn:
        return set((await conn.scalars(select(t.events.c.event_id).where(*conditions))).all())


async def has_item(node: RunningNode, item: str) -> bool:
    async with node.ctx.db.read() as conn:
        found = await conn.scalar(select(t.items.c.item_id).where(t.items.c.item_id == item))
    return found is not None


async def items_of(node: RunningNode) -> dict[str, dict[str, Any]]:
    async with node.ctx.db.read() as conn:
        return {r.item_id: dict(r._mapping) for r in await conn.execute(select(t.items))}


async def refusals(node: RunningNode) -> list[tuple[str, str]]:
    async with node.ctx.db.read() as conn:
        rows = await conn.execute(select(t.refused.c.reason, t.refused.c.detail))
        return [(r[0], r[1]) for r in rows]


def backup(data: Path, to: Path) -> None:
    """Copy a stopped node's database with SQLite's online backup API."""
    with closing(sqlite3.connect(data / DB_NAME)) as src, closing(sqlite3.connect(to)) as dst:
        src.backup(dst)


def put_back(copy: Path, data: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (data / f"{DB_NAME}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copy, data / DB_NAME)


async def test_restored_node_recovers_before_writing_and_children_pull_again(
    tmp_path: Path,
) -> None:
    fed = await build(tmp_path, SystemClock(), SHAPE)
    try:
        province, city, county = fed[PROVINCE], fed[CITY], fed[COUNTY]
        await eventually(lambda: settled(fed), what="the tree to settle")
        before = await city.ctx.store.append_own(
            [assign(me=CITY, assignee=COUNTY, title=f"备份前事项{i}") for i in range(2)]
        )
        await eventually(lambda: settled(fed), what="the first items everywhere")

        # The backup, taken on the stopped city.
        await city.stop()
        copy = tmp_path / "city-backup.db"
        backup(city.data, copy)
        await city.start()
        await eventually(lambda: settled(fed), what="the city back online")

        # After the backup: the province assigns through the city, the city assigns,
        # the county reports; everything reaches the province.
        relayed = await province.ctx.store.append_own(
            [assign(me=PROVINCE, assignee=COUNTY, title=f"省交办{i}") for i in range(10)]
        )
        later = await city.ctx.store.append_own(
            [assign(me=CITY, assignee=COUNTY, title=f"备份后事项{i}") for i in range(2)]
        )
        first_item = before[0][0].item
        await county.ctx.store.append_own(
            [
                act(Deployed, me=COUNTY, item=first_item, to=CITY, note="已部署"),
                act(Feedback, me=COUNTY, item=first_item, to=CITY, text="进展顺利",
                    progress=40, attachments=()),
            ]
        )
        await eventually(lambda: settled(fed), what="the newer events everywhere")
        # One more event of the city that the county never fetches before the crash.
        await county.stop()
        [(unseen, _)] = await city.ctx.store.append_own(
            [assign(me=CITY, assignee=COUNTY, title="县未取到的事项")]
        )
        newest_seq = unseen.seq
        assert newest_seq == len(before) + len(later) + 1

        async def province_has_unseen() -> bool:
            return await province.ctx.store.max_seq_of(CITY) == newest_seq

        await eventually(province_has_unseen, what="the city's newest event at the province")
        lost_ids = await ids_of(city)
        old_epoch = await city.ctx.epoch()

        # Crash: the old file comes back while the province is down.
        await province.stop()
        await city.stop()
        put_back(copy, city.data)
        await city.start()
        assert await city.ctx.store.own_seq() == len(before)
        restarted = city.ctx.clock.now_ms()
        await county.start()

        async def county_connected() -> bool:
            row = await city.ctx.outbox.link_row(COUNTY)
            return (row.get("last_contact") or 0) >= restarted

        await eventually(county_connected, what="the county connected to the restored city")

        # The province returns: the city recovers before it writes anything new.
        await province.start()

        async def recovered() -> bool:
            return await city.ctx.store.own_seq() == newest_seq

        await eventually(recovered, what="the city to recover its own events")
        assert await city.ctx.epoch() != old_epoch
        [(fresh, _)] = await city.ctx.store.append_own(
            [assign(me=CITY, assignee=COUNTY, title="恢复后的新事项")]
        )
        assert fresh.seq == newest_seq + 1

        async def delivered() -> bool:
            wanted = [unseen.item, fresh.item, *(ev.item for ev, _ in relayed + later)]
            return (
                all([await has_item(county, item) for item in wanted])
                and await province.ctx.store.max_seq_of(CITY) == fresh.seq
                and await settled(fed)
            )

        await eventually(delivered, what="the county and the province to get everything")
        # Nothing the city held before the crash is missing (own, relayed, reported).
        assert lost_ids - await ids_of(city) == set()
        assert await refusals(province) == []
        assert await refusals(city) == []
        assert await refusals(county) == []
        county_link = await county.ctx.outbox.link_row(PARENT)
        assert county_link["peer_epoch"] == await city.ctx.epoch()

        # The city's mirror and the province's agree on every item the city holds.
        await folded(province, city)
        mirror, own = await items_of(province), await items_of(city)
        assert own and {k: mirror[k] for k in own} == own
        assert own[first_item]["status"] == "reporting"
    finally:
        await fed.stop()
