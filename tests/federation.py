"""Real federations for tests: node.demo.localtree's nodes, with fast sync settings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from node.clock import Clock
from node.demo.localtree import LocalTree, RunningNode, Shape, four_levels
from node.demo.localtree import build as build_tree

FOUR_LEVELS: Shape = four_levels()
Federation = LocalTree

FAST_SYNC = {
    "sync.long_poll_seconds": 5,
    "sync.retry_initial_seconds": 0.05,
    "sync.retry_max_seconds": 0.5,
}


async def build(
    root: Path,
    clock: Clock,
    shape: Shape = FOUR_LEVELS,
    extra: dict[str, Any] | None = None,
    extra_for: dict[str, dict[str, Any]] | None = None,
) -> LocalTree:
    """Create and start every node of ``shape`` with fast retry settings."""
    return await build_tree(
        root, clock, shape, extra={**FAST_SYNC, **(extra or {})}, extra_for=extra_for
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0, what: str = "condition"
) -> None:
    """Wait until ``check()`` is true (sync is asynchronous), failing after ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        if await check():
            return
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def folded(*nodes: RunningNode, timeout: float = 20.0) -> None:
    """Wait until each node has folded every received event into its item rows
    (they are folded just after their batch commits: ``EventLog.materialise_pending``)."""
    for node in nodes:

        async def done(node: RunningNode = node) -> bool:
            return await node.ctx.store.unfolded_count() == 0

        await eventually(done, timeout=timeout, what=f"item rows folded at {node.id}")


__all__ = [
    "FAST_SYNC", "FOUR_LEVELS", "Federation", "RunningNode", "build", "eventually", "folded",
]


async def settled(fed: LocalTree, certificates: int) -> bool:
    """The root knows ``certificates`` certificates (the whole tree's), every running
    node knows the ones it needs — its ancestors' and its subtree's (trust records go
    nowhere else: docs/sync.md, "Routing") — and has nothing pending on any link;
    stopped nodes are passed over."""
    running = [node for node in fed.nodes.values() if node.runner is not None]
    roots = [n for n in running if n.ctx.trust.current(n.ctx.me).parent is None]
    whole = roots[0].ctx.tree if roots else None
    for node in running:
        ctx = node.ctx
        if whole is None:
            if len(ctx.trust.nodes()) < certificates:
                return False
        else:
            if node is roots[0] and len(ctx.trust.nodes()) < certificates:
                return False
            if node.id in whole.tree:
                needed = set(whole.tree.path_from_root(node.id)) | set(whole.subtree(node.id))
                if not needed <= set(ctx.trust.nodes()):
                    return False
        links = ctx.outbox.all_links()
        if any(s.pending_out for s in await ctx.outbox.link_statuses(links)):
            return False
    return True
