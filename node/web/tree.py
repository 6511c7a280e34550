"""The tree page: this node's subtree down to every township, with counts and freshness."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from node.accounts import User
from node.api import ledger
from node.api.errors import ApiError
from node.web import figures
from node.web.render import ctx_of, node_name, page, render, workflow

OPEN_LEVELS = 3  # province, city, county open: every township shows


def _ms(iso_text: str | None) -> int | None:
    return None if not iso_text else int(datetime.fromisoformat(iso_text).timestamp() * 1000)


@page
async def tree_page(request: web.Request, user: User) -> web.StreamResponse:
    ctx = ctx_of(request)
    tree = workflow(request).tree
    top = request.query.get("node") or ctx.me
    if top not in tree:
        raise ApiError(404, "unknown_node", f"no node {top[:80]!r} is known here", "node")
    if not tree.in_subtree(ctx.me, top):
        raise ApiError(403, "not_in_scope", f"{top} is outside {ctx.me}'s subtree", "node")
    nodes = list(tree.subtree(top))
    own = await figures.counts_by_node(ctx, top)
    totals = figures.roll_up(own, nodes, {n: tree.parent(n) for n in nodes})
    fresh = await ledger.freshness(ctx, set(nodes))
    base = tree.depth(top)
    rows: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for n in nodes:
        info = fresh.get(n, {})
        node = tree.node(n)
        rows.append(
            {
                "id": n,
                "name": node.name,
                "level": node.level,
                "depth": tree.depth(n) - base,
                "counts": totals[n],
                "own": own.get(n, figures.Counts()),
                "live": bool(info.get("live")),
                "heard_ms": _ms(info.get("received_at")),
                "contact_ms": _ms(info.get("as_of")),
                "pending": info.get("pending"),
                "last_error": info.get("last_error"),
                "children": [],
            }
        )
        by_id[n] = rows[-1]
        up = tree.parent(n)
        if n != top and up in by_id:
            by_id[up]["children"].append(rows[-1])
    breadcrumb = []
    current: str | None = top
    while current is not None:
        breadcrumb.append((current, node_name(tree, current)))
        if current == ctx.me:
            break
        current = tree.parent(current)
    breadcrumb.reverse()
    return await render(
        request,
        "tree.html",
        user=user,
        nav="tree",
        top=top,
        root=rows[0],
        count=len(rows),
        breadcrumb=breadcrumb,
        open_levels=OPEN_LEVELS,
    )
