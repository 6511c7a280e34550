"""A township offline for ten simulated days catches up exactly once.

Province 14 -> city 1401 -> county 140101 -> township 140101001, real servers on
loopback with their own SQLite files and one injected ManualClock. While the
township is stopped, the province and the county assign it items and follow
them up, day after day (the clock moves a day at a time), until 10,000 events
wait for it in the county's outbox; offline, the township reports on the items
it already had. Reconnected, it applies every waiting event exactly once, its
items are the fold of its events (the same as the county's), and its own
offline feedback reaches the province.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from node.clock import ManualClock
from node.context import open_node
from node.demo.localtree import RunningNode, Shape
from node.items.projection import item_events, row_of
from node.storage import schema as t
from node.storage.events import PARENT
from node.workflow.drafts import act, assign
from protocol.events import Deployed, Feedback, Updated, Withdrawn
from protocol.fold import fold
from tests.federation import build, eventually, folded, settled

SHAPE: Shape = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140101", "1401", "小店区", "county"),
    ("140101001", "140101", "坞城街道", "township"),
]
PROVINCE, COUNTY, TOWNSHIP = "14", "140101", "140101001"
DAYS = 10
PER_DAY = 250  # each of the province and the county assigns 250 items and follows them up
QUEUED = DAYS * 2 * PER_DAY * 2
START = int(datetime(2025, 3, 3, 9, 0, tzinfo=timezone(timedelta(hours=8))).timestamp() * 1000)


async def pending(node: RunningNode, link: str) -> int:
    [status] = await node.ctx.outbox.link_statuses([link])
    return status.pending_out


async def assign_and_follow_up(node: RunningNode, day: int) -> None:
    """One day of work at ``node``: PER_DAY assignments to the township, then one
    follow-up each (an update, or every tenth a withdrawal)."""
    me = node.id
    made = await node.ctx.store.append_own(
        [
            assign(me=me, assignee=TOWNSHIP, title=f"{me}第{day}天事项{i}",
                   item_class="general" if i % 3 else "major")
            for i in range(PER_DAY)
        ]
    )
    follow_ups = [
        act(Withdrawn, me=me, item=ev.item, to=TOWNSHIP, reason="任务调整")
        if i % 10 == 9
        else act(Updated, me=me, item=ev.item, to=TOWNSHIP, description=f"第{day}天补充要求")
        for i, (ev, _) in enumerate(made)
    ]
    await node.ctx.store.append_own(follow_ups)


async def event_ids(node: RunningNode, *conditions: Any) -> list[bytes]:
    async with node.ctx.db.read() as conn:
        return list((await conn.scalars(select(t.events.c.event_id).where(*conditions))).all())


async def items_of(node: RunningNode) -> dict[str, dict[str, Any]]:
    async with node.ctx.db.read() as conn:
        rows = await conn.execute(select(t.items))
        return {r.item_id: dict(r._mapping) for r in rows}


async def test_township_offline_for_days_catches_up_exactly_once(tmp_path: Path) -> None:
    clock = ManualClock(START)
    fed = await build(tmp_path, clock, SHAPE)
    try:
        province, county, township = fed[PROVINCE], fed[COUNTY], fed[TOWNSHIP]
        await eventually(lambda: settled(fed, len(SHAPE)), what="the tree to settle")

        # Five items reach the township while it is online.
        early = await province.ctx.store.append_own(
            [assign(me=PROVINCE, assignee=TOWNSHIP, title=f"早期事项{i}") for i in range(5)]
        )
        early_items = [ev.item for ev, _ in early]

        async def early_arrived() -> bool:
            return len(await items_of(township)) == 5 and await settled(fed, len(SHAPE))

        await eventually(early_arrived, what="the early items at the township")
        await township.stop()

        # Ten days offline: work piles up for the township, and it reports offline.
        own_offline = 0
        for day in range(1, DAYS + 1):
            await assign_and_follow_up(province, day)
            await assign_and_follow_up(county, day)
            if day in (2, 7):
                ctx = await open_node(township.config, clock)
                try:
                    drafts = [
                        act(Feedback, me=TOWNSHIP, item=item, to=PROVINCE,
                            text=f"第{day}天离线反馈", progress=10 * day, attachments=())
                        for item in early_items
                    ]
                    if day == 2:
                        drafts = [
                            act(Deployed, me=TOWNSHIP, item=item, to=PROVINCE, note="已部署")
                            for item in early_items
                        ] + drafts
                    own_offline += len(await ctx.store.append_own(drafts))
                finally:
                    await ctx.close()
            clock.advance(days=1)

        async def all_queued() -> bool:
            return await pending(county, TOWNSHIP) == QUEUED

        await eventually(all_queued, timeout=60, what=f"{QUEUED} events queued at the county")
        [status] = await county.ctx.outbox.link_statuses([TOWNSHIP])
        assert status.oldest_pending_ms is not None
        assert clock.now_ms() - status.oldest_pending_ms >= DAYS * 86400_000 - 3600_000

        # Reconnect.
        started = time.monotonic()
        await township.start()
        queued_ids = await event_ids(
            county, t.events.c.to_node == TOWNSHIP, t.events.c.origin != TOWNSHIP
        )
        assert len(queued_ids) == QUEUED + len(early)

        async def caught_up() -> bool:
            return (
                await pending(county, TOWNSHIP) == 0
                and await pending(township, PARENT) == 0
                and len(await event_ids(province, t.events.c.origin == TOWNSHIP)) == own_offline
            )

        await eventually(caught_up, timeout=60, what="the township to catch up")
        elapsed = time.monotonic() - started

        # Every waiting event applied exactly once, nothing refused.
        received = await event_ids(
            township, t.events.c.origin.is_not(None), t.events.c.origin != TOWNSHIP
        )
        assert len(received) == len(set(received)) == len(queued_ids)
        assert set(received) == set(queued_ids)
        async with township.ctx.db.read() as conn:
            pairs = select(t.events.c.origin, t.events.c.origin_seq).where(
                t.events.c.origin.is_not(None)
            )
            total = await conn.scalar(select(func.count()).select_from(pairs.subquery()))
            distinct = await conn.scalar(
                select(func.count()).select_from(pairs.distinct().subquery())
            )
        assert total == distinct == QUEUED + len(early) + own_offline
        assert (await township.ctx.store.counts())["refused"] == 0
        # Most pages were decoded by the worker process (the first ones, while it
        # started, in place): both ways ended in the same log.
        assert township.ctx.ingestor.decoder.in_worker > 0

        # The township's items are a fresh fold of its events, and the county's too.
        await folded(township, county, province)
        items = await items_of(township)
        assert len(items) == 5 + DAYS * 2 * PER_DAY
        async with township.ctx.db.read() as conn:
            history = await item_events(conn, items)
        for item_id, row in items.items():
            assert row == row_of(fold(history[item_id]), township.ctx.tree.path_of), item_id
        county_items = await items_of(county)
        assert {k: county_items[k] for k in items} == items
        withdrawn = [r for r in items.values() if r["status"] == "withdrawn"]
        assert len(withdrawn) == DAYS * 2 * PER_DAY // 10

        # The township's offline reports reached the province.
        mirror = await items_of(province)
        for item in early_items:
            assert mirror[item]["status"] == "reporting"
            assert mirror[item]["progress"] == 70
            assert mirror[item] == items[item]
        assert (await province.ctx.store.counts())["refused"] == 0
        assert elapsed < 45, f"catching up took {elapsed:.1f}s"
    finally:
        await fed.stop()
