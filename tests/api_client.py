"""A small JSON client for the node API in tests (real HTTP on loopback)."""

from __future__ import annotations

from typing import Any

import aiohttp

from node.demo.localtree import RunningNode
from tests.federation import eventually


class Api:
    def __init__(self, session: aiohttp.ClientSession, node: RunningNode, token: str) -> None:
        self.session = session
        self.node = node
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, body: Any = None, *, expect: int | None = 200, **kw: Any
    ) -> Any:
        async with self.session.request(
            method, self.node.url + path, json=body, headers=self.headers, **kw
        ) as resp:
            data = await resp.json(content_type=None)
            if expect is not None:
                assert resp.status == expect, f"{method} {path}: {resp.status} {data}"
            return data

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return await self.call("POST", path, body if body is not None else {}, **kw)

    async def refused(self, method: str, path: str, body: Any, status: int) -> str:
        """The reason code of an expected refusal."""
        data = await self.call(method, path, body, expect=status)
        assert set(data) >= {"error", "detail"}, data
        return str(data["error"])


async def person(node: RunningNode, name: str, role: str, unit: str | None = None) -> str:
    """Add a person to ``node`` and return a bearer token for them."""
    ctx = node.ctx
    now = ctx.clock.now_ms()
    if unit is not None and unit not in await ctx.accounts.units():
        await ctx.accounts.add_unit(unit, unit, office=False, now=now)
    await ctx.accounts.add_user(name, role=role, unit=unit, password="password-123", now=now)
    return await ctx.accounts.token_for(name, now)


async def deployed_item(assigner: Api, assignee: Api, to: str, title: str) -> str:
    """An item ``assigner`` assigns to node ``to``, deployed there by ``assignee``: its id."""
    created = await assigner.post("/api/v1/items", {
        "title": title, "assignee": to, "board": "daily", "source": "executive",
    }, expect=201)
    item = str(created["id"])

    async def arrived() -> bool:
        data = await assignee.call("GET", f"/api/v1/items/{item}", expect=None)
        return data.get("id") == item

    await eventually(arrived, what=f"the item at {to}")
    await assignee.post(f"/api/v1/items/{item}/deploy", {"note": "已部署"})
    return item
