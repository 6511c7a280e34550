"""A four-level tree on loopback: an assignment reaches a named township, its
feedback reaches the province mirror, and the province reads the township's item
while the township is stopped."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from node.clock import SystemClock
from node.storage import schema as t
from node.workflow.drafts import act, assign
from protocol.events import Deployed, Feedback
from tests.federation import build, eventually, folded

TOWNSHIP = "140101001"


async def item_row(node, item_id: str):  # type: ignore[no-untyped-def]
    async with node.ctx.db.read() as conn:
        row = (await conn.execute(select(t.items).where(t.items.c.item_id == item_id))).first()
    return None if row is None else row._mapping


async def test_assignment_down_feedback_up_and_mirror_read_offline(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock())
    try:
        province, township = fed["14"], fed[TOWNSHIP]
        [(assigned, _)] = await province.ctx.store.append_own(
            [assign(me="14", assignee=TOWNSHIP, title="整治农村人居环境", item_class="general")]
        )
        item = assigned.item

        async def arrived() -> bool:
            return await item_row(township, item) is not None

        await eventually(arrived, what="assignment at the township")
        # Every node on the path has it; a sibling township does not.
        await folded(fed["1401"], fed["140101"], fed["140101002"], fed["1402"])
        for node in ("1401", "140101"):
            assert await item_row(fed[node], item) is not None
        assert await item_row(fed["140101002"], item) is None
        assert await item_row(fed["1402"], item) is None

        await township.ctx.store.append_own(
            [
                act(Deployed, me=TOWNSHIP, item=item, to="14", note="已部署"),
                act(Feedback, me=TOWNSHIP, item=item, to="14", text="已完成一半",
                    progress=50, attachments=()),
            ]
        )

        async def reported() -> bool:
            row = await item_row(province, item)
            return row is not None and row["status"] == "reporting"

        await eventually(reported, what="feedback in the province mirror")

        await township.stop()
        row = await item_row(province, item)
        assert row is not None and row["progress"] == 50
        state = json.loads(row["state"])
        assert state["status"] == "reporting"
        assert state["assignee"] == TOWNSHIP
        status = await province.ctx.outbox.link_statuses(["1401"])
        assert status[0].pending_out == 0
    finally:
        await fed.stop()
