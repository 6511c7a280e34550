"""The link status page: for each link to the parent and the children, its lag and last error."""

from __future__ import annotations

from aiohttp import web

from node.http.services import DB, EVENTS, OUTBOX, TREE
from node.http.web.render import node_name, page, render, workflow
from node.storage.accounts import User
from node.storage.events import PARENT
from node.sync import blobs


@page
async def links_page(request: web.Request, user: User) -> web.StreamResponse:
    known = request.app[TREE]
    tree = workflow(request).tree
    store, outbox = request.app[EVENTS], request.app[OUTBOX]
    parent = known.trust.current(known.me).parent
    rows = []
    for status in await outbox.link_statuses(outbox.all_links()):
        row = await outbox.link_row(status.link)
        peer = parent if status.link == PARENT else status.link
        rows.append(
            {
                "status": status,
                "up": status.link == PARENT,
                "peer": peer,
                "peer_name": node_name(tree, peer),
                "peer_pending": row.get("peer_pending"),
            }
        )
    return await render(
        request,
        "links.html",
        user=user,
        nav="links",
        rows=rows,
        counts=await store.counts(),
        files=await blobs.link_files(request.app[DB], PARENT) if parent else None,
        own_seq=await store.own_seq(),
    )
