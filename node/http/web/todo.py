"""The to-do page (待办): ``GET /api/v1/todo`` as a list a leader scrolls on a phone.

Each kind of work waiting for the person (``node.queries.todo.KINDS``) is a section
with its count and its items oldest first: colour, title, who handles it, the
deadline of this kind of work and how long is left (or how late it is).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.clock import parse_moment
from node.http.api.todo import who_of
from node.http.services import TODO, TREE
from node.http.web.render import node_name, page, render
from node.queries.todo import PER_KIND
from node.storage.accounts import User


def _ms(value: str | None) -> int | None:
    return None if value is None else parse_moment(value, "due")


@page
async def todo_page(request: web.Request, user: User) -> web.StreamResponse:
    answer = await request.app[TODO].read(who_of(user))
    tree = request.app[TREE].tree
    kinds: list[dict[str, Any]] = []
    for kind in answer["kinds"]:
        items = [
            {
                **item,
                "due_ms": _ms(item["due"]),
                "since_ms": _ms(item["waiting_since"]),
                "assignee_name": node_name(tree, item["assignee"]),
                "assigner_name": node_name(tree, item["assigner"]),
            }
            for item in kind["items"]
        ]
        kinds.append({**kind, "items": items})
    return await render(
        request,
        "todo.html",
        user=user,
        nav="todo",
        kinds=kinds,
        total=answer["total"],
        has_kinds=bool(answer["kinds"]),
        per_kind=PER_KIND,
    )
