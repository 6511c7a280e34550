"""Trees of real nodes for fault runs: in this process with a chaos proxy on each
link (:func:`build_proxied`), and writers that drive them through the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from node import config as cfg
from node.clock import Clock
from node.demo.localtree import LocalTree, RunningNode, Shape
from node.http.enroll import issue_code
from node.setup import init_root, join_parent
from tests.api_client import person
from tests.faults.checker import Tree, Write
from tests.faults.proxy import ChaosProxy
from tests.federation import FAST_SYNC

CHAIN: Shape = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140105", "1401", "小店区", "county"),
    ("140105001", "140105", "小店区第1镇", "township"),
]
FAULT_SYNC = {
    **FAST_SYNC,
    "sync.long_poll_seconds": 2,
    "sync.batch_events": 50,
    "sync.request_timeout_seconds": 10.0,
}


def parents(shape: Shape) -> dict[str, str | None]:
    return {node: parent for node, parent, _, _ in shape}


@dataclass
class ProxiedTree:
    """Nodes in this process; ``proxies[child]`` carries the child's link to its parent."""

    tree: LocalTree
    proxies: dict[str, ChaosProxy]
    parents: Tree
    tokens: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, node: str) -> RunningNode:
        return self.tree[node]

    @property
    def dbs(self) -> dict[str, Path]:
        return {n: self.tree[n].data / cfg.DB_NAME for n in self.parents}

    def heal(self) -> None:
        for proxy in self.proxies.values():
            proxy.heal()

    async def close(self) -> None:
        for proxy in self.proxies.values():
            await proxy.close()
        await self.tree.stop()


async def build_proxied(
    root: Path, clock: Clock, shape: Shape, *, seed: int, extra: dict[str, Any] | None = None,
    extra_for: dict[str, dict[str, Any]] | None = None,
) -> ProxiedTree:
    """Like :func:`node.demo.localtree.build`, but every child enrolls (and then syncs)
    through its own :class:`ChaosProxy`, faults off until the caller sets them.
    A leader with a bearer token is made at every node (``tokens``)."""
    made = ProxiedTree(LocalTree(root, clock), {}, parents(shape))
    try:
        for i, (node_id, parent, name, level) in enumerate(shape):
            data = root / node_id
            settings = {**FAULT_SYNC, **(extra or {}), **(extra_for or {}).get(node_id, {})}
            if parent is None:
                config = await init_root(data, node=node_id, name=name, level=level,
                                         clock=clock, extra=settings)
            else:
                up = made.tree[parent]
                proxy = ChaosProxy(up.port, seed=seed * 1000 + i, name=f"{node_id}->{parent}")
                await proxy.start()
                made.proxies[node_id] = proxy
                code = await issue_code(
                    up.ctx.db, up.ctx.me, up.ctx.clock, up.ctx.config,
                    child=node_id, name=name, level=level,
                )
                config = await join_parent(
                    data, parent_url=proxy.url, code=code,
                    root=str(up.config["node.root_fingerprint"]), clock=clock, extra=settings,
                )
            running = RunningNode(node_id, data, config, clock)
            await running.start()
            made.tree.nodes[node_id] = running
            made.tokens[node_id] = await person(running, "leader", "leader", unit="office")
    except BaseException:
        await made.close()
        raise
    return made


@contextlib.asynccontextmanager
async def proxied(
    root: Path, clock: Clock, shape: Shape, *, seed: int, **kw: Any
) -> AsyncIterator[ProxiedTree]:
    made = await build_proxied(root, clock, shape, seed=seed, **kw)
    try:
        yield made
    finally:
        await made.close()


@dataclass
class Outcome:
    """What the API answered: acknowledged writes, indeterminate ones, refusals."""

    acked: list[Write] = field(default_factory=list)
    indeterminate: int = 0
    refusals: dict[str, int] = field(default_factory=dict)  # "status reason" -> count
    errors: dict[str, int] = field(default_factory=dict)  # transport errors by type


def targets(tree: Tree, node: str) -> list[str]:
    """Whom ``node`` assigns to: its children, or itself when it has none."""
    children = [n for n, p in tree.items() if p == node]
    return children or [node]


async def write_item(
    session: aiohttp.ClientSession, url: str, token: str, node: str, to: str, title: str,
    outcome: Outcome, timeout: float = 10.0,
) -> int | None:
    """One ``POST /api/v1/items``; records the answer in ``outcome``; the status."""
    body: dict[str, Any] = {
        "title": title, "description": "按照会议部署研究落实，按时反馈办理情况。",
        "assignee": "office" if to == node else to,  # "office": a unit of its own
        "board": "daily", "source": "executive", "class": "general",
    }
    try:
        async with session.post(
            f"{url}/api/v1/items", json=body, headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            answer = await resp.json(content_type=None)
            if resp.status == 201:
                outcome.acked.append(Write(node, answer["id"], to))
            else:
                key = f"{resp.status} {answer.get('error') if isinstance(answer, dict) else '?'}"
                outcome.refusals[key] = outcome.refusals.get(key, 0) + 1
            return resp.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        outcome.indeterminate += 1
        name = type(exc).__name__
        outcome.errors[name] = outcome.errors.get(name, 0) + 1
        return None


async def keep_writing(
    session: aiohttp.ClientSession, tree: Tree, node: str, url: str, token: str,
    outcome: Outcome, stop: asyncio.Event, rng: random.Random, pause: float = 0.02,
) -> None:
    """Write items at ``node`` until ``stop`` is set."""
    n = 0
    while not stop.is_set():
        n += 1
        to = rng.choice(targets(tree, node))
        await write_item(session, url, token, node, to, f"{node} 故障演练事项 {n}", outcome)
        await asyncio.sleep(rng.uniform(0, pause))


async def fresh_writes(
    session: aiohttp.ClientSession, tree: Tree, urls: dict[str, str], tokens: dict[str, str],
) -> list[Write]:
    """One new write at every node; each must be acknowledged (201)."""
    outcome = Outcome()
    for node in tree:
        status = await write_item(session, urls[node], tokens[node], node,
                                  targets(tree, node)[0], f"{node} 恢复后新事项", outcome)
        assert status == 201, f"{node} cannot write after the faults: {status} {outcome}"
    return outcome.acked
