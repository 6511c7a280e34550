"""Item rows of received events are folded after their batch commits (node/items/materialiser.py).

A sync batch stores and acknowledges its events without refolding their items;
the node's materialiser folds them just after, from a durable cursor. These
tests check that nothing depends on the rows in between: the ingest's
ownership checks read the stored assignments, a node stopped before folding
folds on its next start, reads through HTTP wait for the rows, and the pull
pipeline acknowledges only what is durable.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from node.clock import SystemClock
from node.context import NodeContext, open_node
from node.demo.localtree import LocalTree, Shape
from node.items.projection import item_events, row_of
from node.storage import schema as t
from node.storage.events import PARENT
from node.workflow.drafts import act, assign
from protocol.events import Updated
from protocol.fold import fold
from tests.api_client import Api, person
from tests.federation import build, eventually, folded

CITY = "1401"
SHAPE: Shape = [("14", None, "山西省", "province"), (CITY, "14", "太原市", "city")]


async def rows_of(ctx: NodeContext) -> dict[str, dict[str, object]]:
    async with ctx.db.read() as conn:
        return {r.item_id: dict(r._mapping) for r in await conn.execute(select(t.items))}


async def queue_for_city(fed: LocalTree, n: int) -> list[str]:
    """``n`` assignments to the city and an update of each, written at the province."""
    province = fed["14"].ctx.store
    made = await province.append_own(
        [assign(me="14", assignee=CITY, title=f"事项{i}") for i in range(n)]
    )
    items = [ev.item for ev, _ in made]
    await province.append_own(
        [act(Updated, me="14", item=i, to=CITY, title=f"{i}（更新）") for i in items]
    )
    return items


async def city_offline_with_backlog(fed: LocalTree) -> tuple[int, int, NodeContext]:
    """The city stopped with 5 assignments and their updates waiting at the province,
    opened again without its app (no sync client): (its applied position, the last
    position waiting for it, the city)."""
    await folded(fed["14"], fed[CITY])
    applied = int((await fed[CITY].ctx.outbox.link_row(PARENT))["applied_pos"])
    await fed[CITY].stop()
    await queue_for_city(fed, 5)
    top = await fed["14"].ctx.outbox.max_route_pos(CITY)
    return applied, top, await open_node(fed[CITY].config, fed.clock)


async def pull_by_hand(fed: LocalTree, city: NodeContext) -> int:
    """What the city's sync client does, without its app: every page from the province."""
    province = fed["14"].ctx.outbox
    after = int((await city.outbox.link_row(PARENT))["applied_pos"])
    accepted = 0
    while True:
        raws, through, _more = await province.page(CITY, after, limit=40, max_bytes=1 << 20)
        if not raws:
            return accepted
        result = await city.ingestor.receive(PARENT, raws, applied_pos=through)
        assert not result.refused, result.refused
        accepted += result.accepted
        after = through


async def test_a_node_stopped_before_folding_folds_on_its_next_start(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock(), SHAPE)
    try:
        await folded(fed["14"], fed[CITY])
        before = set(await rows_of(fed[CITY].ctx))
        await fed[CITY].stop()
        items = await queue_for_city(fed, 60)

        # The city's store alone (no app, so no materialiser): pages are stored and
        # acknowledged; the updates of items assigned in earlier pages are accepted,
        # as the ownership check reads the stored assignments, not the rows.
        city = await open_node(fed[CITY].config, fed.clock)
        try:
            assert await pull_by_hand(fed, city) == 120
            assert set(await rows_of(city)) == before, "folded inside the sync transaction"
            assert await city.store.unfolded_count() >= 120
            async with city.db.read() as conn:
                parties = await conn.run_sync(city.store.item_parties, items)
            assert parties == {i: ("14", CITY) for i in items}
        finally:
            await city.close()

        # Started again, its materialiser folds the backlog from the durable cursor.
        await fed[CITY].start()
        await folded(fed[CITY])
        ctx = fed[CITY].ctx
        rows = await rows_of(ctx)
        async with ctx.db.read() as conn:
            history = await item_events(conn, items)
        for item in items:
            assert rows[item] == row_of(fold(history[item]), ctx.tree.path_of), item
            assert str(rows[item]["title"]).endswith("（更新）")
    finally:
        await fed.stop()


async def test_a_read_after_a_sync_batch_sees_its_items(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock(), SHAPE)
    try:
        await folded(fed["14"], fed[CITY])
        await fed[CITY].stop()
        items = await queue_for_city(fed, 30)
        await fed[CITY].start()
        city = fed[CITY]
        async with aiohttp.ClientSession() as session:
            api = Api(session, city, await person(city, "viewer", "leader"))

            async def arrived() -> bool:
                async with city.ctx.db.read() as conn:
                    rows = await conn.execute(
                        select(t.events.c.item_id).where(t.events.c.item_id.in_(items))
                    )
                    return len(rows.all()) == 60

            # The moment the events are stored, before the rows need be folded, the
            # ledger (which reads rows) already lists every item, updated.
            await eventually(arrived, what="the events at the city")
            ledger = await api.get(f"/api/v1/items?scope={CITY}&limit=100")
            listed = {row["id"]: row["title"] for row in ledger["items"]}
            assert set(items) <= set(listed)
            assert all(listed[i].endswith("（更新）") for i in items)
            status = await api.get("/api/v1/status")
            assert status["unfolded"] == 0
    finally:
        await fed.stop()


async def test_a_read_waits_for_a_batch_whose_commit_has_begun(tmp_path: Path) -> None:
    """A batch's events are visible to readers an instant before its commit's task
    learns their positions (on SQLite it commits on the writer's thread): a read that
    starts in between must still wait for their rows, not answer without them."""
    fed = await build(tmp_path, SystemClock(), SHAPE)
    try:
        applied, top, city = await city_offline_with_backlog(fed)
        try:
            store = city.store  # no app, so no materialiser: nothing folds by itself
            assert await store.rows_current(0.1)
            raws, through, _more = await fed["14"].ctx.outbox.page(
                CITY, applied, limit=100, max_bytes=1 << 20
            )
            assert through == top
            prepared = await city.ingestor.prepare(PARENT, raws)
            commit = asyncio.ensure_future(city.ingestor.commit(prepared, applied_pos=through))
            await asyncio.sleep(0)  # the commit has begun, on the writer's thread
            assert not commit.done()
            read = asyncio.ensure_future(store.rows_current(30))
            assert (await commit).accepted == 10  # 5 assignments, 5 updates
            await asyncio.sleep(0.2)
            assert not read.done(), "the read answered without the rows of a stored batch"
            assert await store.materialise_pending() == 10
            assert await asyncio.wait_for(read, 5)
        finally:
            await city.close()
    finally:
        await fed.stop()


async def test_the_parent_records_only_what_the_child_has_applied(tmp_path: Path) -> None:
    """``down?after=&ack=``: the child fetches the next page before the last one is
    stored; the parent's acknowledged position is what the child says is durable."""
    fed = await build(tmp_path, SystemClock(), SHAPE)
    try:
        province = fed["14"].ctx.outbox
        applied, top, city = await city_offline_with_backlog(fed)
        try:
            from tests.integration.test_sync_refusals import As

            async with aiohttp.ClientSession() as session:
                me = As(session, fed["14"], CITY, city.key)
                reply = await me.call("GET", f"/sync/v1/down?after={top}&ack={applied}&wait=0")
                assert reply.status == 200
                assert (await province.link_row(CITY))["acked_pos"] == applied
                # An acknowledgement beyond what was fetched is held to ``after``.
                reply = await me.call("GET", f"/sync/v1/down?after={applied}&ack={top}&wait=0")
                assert reply.status == 200
                assert (await province.link_row(CITY))["acked_pos"] == applied
                reply = await me.call("GET", f"/sync/v1/down?after={top}&ack=x&wait=0")
                assert reply.status == 400
        finally:
            await city.close()
    finally:
        await fed.stop()


async def test_background_work_gives_way_while_a_child_catches_up(tmp_path: Path) -> None:
    """A page served with more to come keeps the parent's folding and scoring waiting
    (``give_way``) until the child is back for the next, or the grace runs out."""
    import asyncio

    from node.http.sync import SENDING_GRACE
    from node.items.materialiser import give_way

    fed = await build(tmp_path, SystemClock(), SHAPE)
    try:
        province = fed["14"].ctx.activity
        applied, top, city = await city_offline_with_backlog(fed)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            from tests.integration.test_sync_refusals import As

            async with aiohttp.ClientSession() as session:
                me = As(session, fed["14"], CITY, city.key)
                # Nothing more to send: background work goes on at once.
                reply = await me.call("GET", f"/sync/v1/down?after={top}&wait=0")
                assert reply.status == 200
                await asyncio.wait_for(give_way(province, stopping), timeout=SENDING_GRACE / 2)
                # One event of several: the child will be back, so background work waits.
                reply = await me.call("GET", f"/sync/v1/down?after={applied}&limit=1&wait=0")
                assert reply.status == 200
                asked = loop.time()
                assert province.quiet_until() > asked
                try:
                    await asyncio.wait_for(give_way(province, stopping), timeout=SENDING_GRACE / 2)
                except TimeoutError:
                    pass
                else:
                    raise AssertionError("background work did not wait for the next page")
                await give_way(province, stopping)  # the grace runs out
                assert loop.time() >= province.quiet_until()
        finally:
            await city.close()
    finally:
        await fed.stop()


async def test_the_ledger_says_while_received_items_are_being_filed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows not folded yet (the materialiser held back here, as a long catch-up does):
    the ledger page says how many received events are still being filed, then stops
    saying it once they are."""
    import asyncio
    import re

    from node.storage.events import EventLog

    fed = await build(tmp_path, SystemClock(), SHAPE)
    try:
        await folded(fed["14"], fed[CITY])
        release = asyncio.Event()
        fold = EventLog.materialise_pending

        async def held(self: EventLog, max_events: int = 2000) -> int:
            await release.wait()
            return await fold(self, max_events)

        monkeypatch.setattr(EventLog, "materialise_pending", held)
        await queue_for_city(fed, 3)  # three assignments and three updates
        city = fed[CITY].ctx.store

        async def all_received() -> bool:
            return await city.unfolded_count() == 6

        await eventually(all_received, what="the city to receive the six events")
        async with aiohttp.ClientSession() as session:
            api = Api(session, fed[CITY], await person(fed[CITY], "sup", "supervisor"))

            async def ledger() -> str:
                async with session.get(fed[CITY].url + "/ledger", headers=api.headers) as resp:
                    assert resp.status == 200
                    return await resp.text()

            notice = re.search(r'<p [^>]*id="filing"[^>]*>([^<]*)</p>', await ledger())
            assert notice is not None and "6" in notice.group(1), notice
            release.set()
            await folded(fed[CITY])
            assert 'id="filing"' not in await ledger()
    finally:
        await fed.stop()
