"""A small JSON client for the node API in tests (real HTTP on loopback)."""

from __future__ import annotations

from typing import Any

import aiohttp

from node.demo.localtree import RunningNode


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
