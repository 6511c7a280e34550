"""The ledger page (台账): the API's ledger query, as a filter form, a table and pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from node.clock import parse_moment
from node.errors import KINDS, NodeError
from node.http.errors import status_of
from node.http.services import EVENTS, LEDGER, TREE
from node.http.web.render import node_name, page, render
from node.queries import ledger
from node.storage.accounts import User
from protocol.fold import Status

PAGE_ONLY = ("lang",)
SORT_CHOICES = (
    "resolve_due",
    "-resolve_due",
    "-assigned_at",
    "assigned_at",
    "-updated_at",
    "progress",
    "-progress",
)
LIMITS = (20, 50, 100, 200)
EXPORT_PATH = "/api/v1/export/ledger.xlsx"


def filters_of(request: web.Request) -> dict[str, str]:
    """The API's ledger parameters from the page's query: empty fields left out."""
    return {k: v for k, v in request.query.items() if k not in PAGE_ONLY and v.strip() != ""}


def _ms(value: str | None) -> int | None:
    return None if value is None else parse_moment(value, "deadline")


def scope_choices(wf_tree: Any, me: str, scope: str) -> list[tuple[str, str, int]]:
    """(node, name, depth below me): the path from me to the scope, then its children."""
    path = []
    current: str | None = scope
    while current is not None:
        path.append(current)
        if current == me:
            break
        current = wf_tree.parent(current) if current in wf_tree else None
    path.reverse()
    out = [(n, node_name(wf_tree, n), i) for i, n in enumerate(path)]
    depth = len(path)
    for child in wf_tree.children(scope) if scope in wf_tree else ():
        out.append((child, node_name(wf_tree, child), depth))
    return out


@page
async def ledger_page(request: web.Request, user: User) -> web.StreamResponse:
    the_ledger = request.app[LEDGER]
    me = request.app[TREE].me
    tree = request.app[TREE].tree
    params = filters_of(request)
    boards = the_ledger.boards
    error: NodeError | None = None
    try:
        answer = await the_ledger.list_items(params)
    except KINDS as exc:
        if status_of(exc) >= 500:
            raise
        error = exc
        answer = {"items": [], "total": 0, "limit": 50, "offset": 0, "nodes": {}}
    scope = params.get("scope", me)
    if scope not in tree:
        scope = me
    limit, offset, total = answer["limit"], answer["offset"], answer["total"]
    pages = max(1, -(-total // limit))
    current = offset // limit + 1
    paging = {k: v for k, v in params.items() if k != "offset"}
    prev_url = next_url = None
    if offset > 0:
        prev_url = "/ledger?" + urlencode({**paging, "offset": max(0, offset - limit)})
    if offset + limit < total:
        next_url = "/ledger?" + urlencode({**paging, "offset": offset + limit})
    export = {k: v for k, v in params.items() if k not in ("limit", "offset")}
    rows = []
    for item in answer["items"]:
        rows.append(
            {
                **item,
                "assignee_name": node_name(tree, item["assignee"]),
                "resolve_ms": _ms(item["deadlines"]["resolve"]),
            }
        )
    fresh = answer["nodes"].get(scope, {})
    return await render(
        request,
        "ledger.html",
        # Received events whose items are not in the rows yet (a catch-up under way,
        # docs/storage.md "When item rows are folded"): the page says so.
        filing=await request.app[EVENTS].unfolded_count(),
        user=user,
        nav="ledger",
        status=status_of(error) if error else 200,
        error=error,
        rows=rows,
        # A large subtree is counted only up to a cap: then the total is a lower bound.
        total=total if answer.get("total_exact", True) else f"{total}+",
        page_no=current,
        pages=pages if answer.get("total_exact", True) else f"{pages}+",
        prev_url=prev_url,
        next_url=next_url,
        export_url=EXPORT_PATH + ("?" + urlencode(export) if export else ""),
        params=params,
        scope=scope,
        scope_name=node_name(tree, scope),
        scopes=scope_choices(tree, me, scope),
        boards=boards,
        statuses=[s.value for s in Status],
        colours=ledger.COLOURS,
        sorts=SORT_CHOICES,
        limits=LIMITS,
        limit=limit,
        fresh=fresh,
        fresh_ms=_ms(fresh.get("received_at") or fresh.get("as_of")),
    )
