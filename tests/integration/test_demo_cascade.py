"""The demo's cascade story on a real four-level tree: one province item reaches every
township, each level signing its own sub-items; the townships' photos and PDFs reach the
province intact; the province's roll-up equals the townships' states; and the demo has
a person in every role at every node."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import select

from node.clock import OffsetClock
from node.demo.localtree import four_levels
from node.demo.play import DAY_MS, Story, add_people, cascade_story
from node.http.services import ROLLUP
from node.items.projection import load_state
from node.storage import schema as t
from tests.federation import build

ROLES = {"leader", "supervisor", "viewer", "unit_head", "operator"}


async def test_demo_cascade_reaches_every_township_and_the_evidence_comes_back(
    tmp_path: Path,
) -> None:
    shape = four_levels()
    clock = OffsetClock(-3 * DAY_MS)
    fed = await build(tmp_path, clock, shape)
    try:
        await add_people(fed, shape)
        top = await cascade_story(Story(fed, clock), fed)
        province = fed["14"]
        parents = {node: parent for node, parent, _name, _level in shape}
        townships = [node for node, _p, _n, level in shape if level == "township"]

        # Everyone, everywhere.
        for node in fed.nodes.values():
            users = await node.ctx.accounts.users()
            assert {u.role for u in users} == ROLES, node.id
            units = {u.unit for u in users if u.role in ("unit_head", "operator")}
            assert len(units) == 2, node.id

        # The province's mirror: every sub-item, signed by the level that passed it down.
        async with province.ctx.db.read() as conn:
            rows = (await conn.execute(
                select(t.items.c.item_id, t.items.c.assigner, t.items.c.assignee,
                       t.items.c.parent_item, t.items.c.state)
                .where(t.items.c.cascade == "township")
            )).all()
            signers = dict((await conn.execute(
                select(t.events.c.item_id, t.events.c.origin)
                .where(t.events.c.type == "item.assigned")
            )).all())
        by_assignee = {r.assignee: r for r in rows if r.item_id != top}
        assert set(by_assignee) == set(parents) - {"14"}
        for node, row in by_assignee.items():
            assert row.assigner == parents[node] == signers[row.item_id], node
            assert row.parent_item == (top if parents[node] == "14"
                                       else by_assignee[parents[node]].item_id)

        # Each township's files at the province: bytes whose SHA-256 is the signed digest.
        reported = 0
        for town in townships:
            state = json.loads(by_assignee[town].state)
            named = [f for r in state["feedback"] for f in r["files"]] + state["resolution_files"]
            reported += bool(named)
            for f in named:
                async with province.ctx.db.read() as conn:
                    data = await conn.scalar(
                        select(t.attachments.c.data)
                        .where(t.attachments.c.digest == bytes.fromhex(f["digest"]))
                    )
                assert data is not None, (town, f["name"])
                assert hashlib.sha256(data).hexdigest() == f["digest"]
                assert len(data) == f["size"]
                assert f["type"] in ("image/jpeg", "application/pdf")
        assert 0 < reported < len(townships)  # mixed progress: some reported, some not

        # The roll-up at the province equals what the townships hold themselves.
        async with province.ctx.db.read() as conn:
            top_state = await load_state(conn, top)
        assert top_state is not None
        rollup = await province.app[ROLLUP].of(top_state)
        [level] = [lv for lv in rollup["levels"] if lv["level"] == "township"]
        statuses: dict[str, int] = {}
        progress = 0
        for town in townships:
            async with fed[town].ctx.db.read() as conn:
                own = await load_state(conn, by_assignee[town].item_id)
            assert own is not None
            statuses[str(own.status)] = statuses.get(str(own.status), 0) + 1
            progress += own.progress
        assert level["count"] == len(townships)
        assert level["by_status"] == statuses
        assert level["progress"] == round(progress / len(townships))
        assert rollup["count"] == len(by_assignee)
    finally:
        await fed.stop()
