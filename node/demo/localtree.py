"""A whole tree of real nodes in one process on loopback (the demo and the tests).

Each node has its own data directory, key and database and its own aiohttp
server; children enroll over HTTP exactly as ``duban join`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from node import config as cfg
from node.app import NODE, create_app
from node.clock import Clock
from node.context import NodeContext
from node.http.enroll import issue_code
from node.http.timeouts import ConnectionTimeouts, TimedRunner
from node.setup import init_root, join_parent
from node.sync.catchup.tuning import Streaming

Shape = list[tuple[str, str | None, str, str]]
"""(node id, parent id or None, name, level), parents before children."""


def four_levels() -> Shape:
    """A province, 2 cities, 2 counties each, 2 townships each (division-code ids)."""
    shape: Shape = [("14", None, "山西省", "province")]
    cities = ("太原市", "大同市")
    for c, city_name in enumerate(cities, start=1):
        city = f"14{c:02d}"
        shape.append((city, "14", city_name, "city"))
        for k in (1, 2):
            county = f"{city}{k:02d}"
            shape.append((county, city, f"{city_name}第{k}县", "county"))
            for w in (1, 2):
                shape.append((f"{county}{w:03d}", county, f"{city_name}{k}县第{w}镇", "township"))
    return shape


@dataclass
class RunningNode:
    id: str
    data: Path
    config: cfg.Config
    clock: Clock
    runner: web.AppRunner | None = None
    url: str = ""
    port: int = 0
    streaming: Streaming = contextlib.nullcontext
    """Held by the node's sync client while a catch-up streams in (create_app)."""

    @property
    def app(self) -> web.Application:
        assert self.runner is not None, f"{self.id} is stopped"
        return self.runner.app

    @property
    def ctx(self) -> NodeContext:
        return self.app[NODE]

    async def start(self) -> None:
        app = create_app(self.config, self.clock, streaming=self.streaming)
        runner = TimedRunner(app, ConnectionTimeouts.from_config(self.config), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self.runner = runner
        self.port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@dataclass
class LocalTree:
    root: Path
    clock: Clock
    nodes: dict[str, RunningNode] = field(default_factory=dict)

    def __getitem__(self, node: str) -> RunningNode:
        return self.nodes[node]

    async def stop(self) -> None:
        for node in reversed(list(self.nodes.values())):
            await node.stop()


ENROL_AT_ONCE = 16
"""How many nodes of one level enroll and start at once in :func:`build`: each join is
a write at its parent, a few round trips and a new database; more at once only queue
(one process, one event loop, two cores here)."""


def levels(shape: Shape) -> list[Shape]:
    """``shape`` cut into its depths, root first, each in ``shape``'s order: the nodes
    of one depth may enroll at once, their parents being all running."""
    depth: dict[str, int] = {}
    out: list[Shape] = []
    for entry in shape:
        node_id, parent = entry[0], entry[1]
        d = 0 if parent is None else depth[parent] + 1
        depth[node_id] = d
        while len(out) <= d:
            out.append([])
        out[d].append(entry)
    return out


async def build(
    root: Path,
    clock: Clock,
    shape: Shape,
    *,
    extra: dict[str, Any] | None = None,
    ports: dict[str, int] | None = None,
    extra_for: dict[str, dict[str, Any]] | None = None,
    streaming: Streaming = contextlib.nullcontext,
    at_once: int = ENROL_AT_ONCE,
) -> LocalTree:
    """Create and start every node of ``shape`` under ``root``; ``ports`` 0 = any free.

    ``extra`` settings apply to every node, ``extra_for[node]`` to one node only;
    ``streaming`` is handed to each node's sync client (``create_app``). The nodes of
    one level enroll (over HTTP, as ``duban join`` does) and start concurrently, at most
    ``at_once`` at a time; levels go in order. ``tree.nodes`` keeps ``shape``'s order.
    If a node fails, the ones started are stopped and the error raised."""
    tree = LocalTree(root, clock)
    gate = asyncio.Semaphore(max(1, at_once))

    async def create(node_id: str, parent: str | None, name: str, level: str) -> RunningNode:
        data = root / node_id
        port = (ports or {}).get(node_id, 0)
        settings = {**(extra or {}), **(extra_for or {}).get(node_id, {})}
        if port:
            settings["server.listen"] = f"127.0.0.1:{port}"
        async with gate:
            if parent is None:
                config = await init_root(
                    data, node=node_id, name=name, level=level, clock=clock, extra=settings
                )
            else:
                up = tree.nodes[parent]
                code = await issue_code(
                    up.ctx.db, up.ctx.me, up.ctx.clock, up.ctx.config,
                    child=node_id, name=name, level=level,
                )
                config = await join_parent(
                    data, parent_url=up.url, code=code,
                    root=str(up.config["node.root_fingerprint"]), clock=clock, extra=settings,
                )
            running = RunningNode(node_id, data, config, clock, port=port, streaming=streaming)
            await running.start()
        return running

    try:
        for level_shape in levels(shape):
            made = await asyncio.gather(
                *(create(*entry) for entry in level_shape), return_exceptions=True
            )
            for running in made:
                if isinstance(running, RunningNode):
                    tree.nodes[running.id] = running
            for failed in made:
                if isinstance(failed, BaseException):
                    raise failed
    except BaseException:
        await tree.stop()
        raise
    tree.nodes = {node_id: tree.nodes[node_id] for node_id, *_ in shape}
    return tree


async def reopen(
    root: Path, clock: Clock, shape: Shape, *, streaming: Streaming = contextlib.nullcontext
) -> LocalTree:
    """Start again the nodes of a tree created earlier under ``root``."""
    tree = LocalTree(root, clock)
    for node_id, *_ in shape:
        config = cfg.load(root / node_id)
        listen = str(config["server.listen"])
        port = int(listen.rpartition(":")[2]) if config.values.get("server.listen") else 0
        running = RunningNode(
            node_id, root / node_id, config, clock, port=port, streaming=streaming
        )
        await running.start()
        tree.nodes[node_id] = running
    return tree
