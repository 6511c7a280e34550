"""An action folds its item once: the state it checks is the state it writes and answers.

The item's stored events are folded once in the write transaction
(``EventLog.append_own``); the permission checked before reading a body comes from
the item's row, and the new event is applied to the folded state, not folded again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

import node.items.projection as projection
from node.clock import SystemClock
from node.storage import schema as t
from protocol.events import Event
from protocol.fold import ItemState
from tests.api_client import Api, person
from tests.federation import build, eventually, folded

SHAPE = [("14", None, "山西省", "province"), ("1401", "14", "太原市", "city")]


async def test_an_action_folds_its_item_once_and_answers_its_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = await build(tmp_path, SystemClock(), SHAPE)
    try:
        async with aiohttp.ClientSession() as session:
            leader = Api(session, fed["14"], await person(fed["14"], "governor", "leader"))
            city = Api(session, fed["1401"], await person(fed["1401"], "office", "supervisor"))
            created = await leader.post("/api/v1/items", {
                "title": "排查燃气安全隐患", "assignee": "1401", "board": "daily",
                "source": "executive", "class": "general",
            }, expect=201)
            item = created["id"]

            async def arrived() -> bool:
                got = await city.call("GET", f"/api/v1/items/{item}", expect=None)
                return got.get("status") == "assigned"

            await eventually(arrived, what="the item at the city")
            await folded(fed["1401"])

            folds: Counter[str] = Counter()
            real = projection.fold

            def counted(events: Iterable[tuple[str, Event]]) -> ItemState:
                state = real(events)
                folds[state.item] += 1
                return state

            monkeypatch.setattr(projection, "fold", counted)
            ctx = fed["1401"].ctx
            for action, body in (
                ("deploy", {"note": "已召开专题会议部署"}),
                ("feedback", {"text": "已排查燃气用户1200户", "progress": 60}),
            ):
                folds.clear()
                reply = await city.post(f"/api/v1/items/{item}/{action}", body)
                assert folds[item] == 1, (action, folds)
                async with ctx.db.read() as conn:
                    pairs = (await projection.item_events(conn, [item]))[item]
                    row = (
                        await conn.execute(select(t.items).where(t.items.c.item_id == item))
                    ).one()
                fresh = real(pairs)  # a fresh fold of every stored event, not counted
                assert reply["status"] == str(fresh.status)
                assert reply["progress"] == fresh.progress
                assert dict(row._mapping) == projection.row_of(fresh, ctx.tree.path_of)
            assert fresh.status == "reporting" and fresh.progress == 60
    finally:
        await fed.stop()
