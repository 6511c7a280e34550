"""Unit lists: ``GET /api/v1/units?node=ID``.

Any signed-in person of the node may read this node's units (the default) or the
list that any node of its subtree signed and published up the tree
(``node_units``, docs/hierarchy.md "Unit lists up the tree"). A node outside the
subtree is refused (403 ``not_in_subtree``), an unknown one is 404
``unknown_node``, and a subtree node whose list has not arrived yet is 404
``no_unit_list``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.errors import Forbidden, NotFound, bad
from node.http.api.auth import current_user
from node.http.services import ACCOUNTS, DB, TREE
from node.storage import unit_lists
from protocol.events import NODE_ID_RE

_PARAMS = frozenset({"node"})


async def units(request: web.Request) -> web.Response:
    await current_user(request)
    unknown = sorted(set(request.query) - _PARAMS)
    if unknown:
        raise bad(unknown[0][:64], "is not a known parameter", "unknown_field")
    tree = request.app[TREE]
    node = request.query.get("node", "").strip() or tree.me
    if not NODE_ID_RE.match(node):
        raise bad("node", "not a node id")
    if node not in tree.subtree(tree.me):
        if node in tree.tree:
            raise Forbidden("not_in_subtree", f"node: {node} is not in {tree.me}'s subtree",
                            "node")
        raise NotFound("unknown_node", f"node: no node {node!r} is known here", "node")
    held = (await unit_lists.held(request.app[DB], [node])).get(node)
    answer: dict[str, Any]
    if node == tree.me:
        # Our own units are read from the units table: the list as it is now.
        own = await request.app[ACCOUNTS].unit_rows()
        answer = {
            "node": node,
            "version": held.version if held is not None else None,
            "signed_at": held.signed_at if held is not None else None,
            "received_at": held.received_at if held is not None else None,
            "units": [{"code": c, "name": n, "office": o} for c, n, o in own],
        }
    elif held is None:
        raise NotFound("no_unit_list", f"node: no unit list of {node} has reached us yet",
                       "node")
    else:
        answer = held.to_dict()
    known = tree.tree.get(node)
    answer["name"] = known.name if known is not None else node
    return web.json_response(answer)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/units", units)


def openapi_paths() -> dict[str, Any]:
    """Path items for ``node.http.api.openapi.build_document``."""
    unit = {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "name": {"type": "string"},
            "office": {"type": "boolean"},
        },
        "required": ["code", "name", "office"],
    }
    answer = {
        "type": "object",
        "properties": {
            "node": {"type": "string"},
            "name": {"type": "string"},
            "version": {"type": ["integer", "null"]},
            "signed_at": {"type": ["integer", "null"]},
            "received_at": {"type": ["integer", "null"]},
            "units": {"type": "array", "items": unit},
        },
        "required": ["node", "name", "version", "units"],
    }
    errors = {str(s): {"description": "Refused: {error, detail, field}."}
              for s in (400, 401, 403, 404)}
    return {
        "/api/v1/units": {"get": {
            "operationId": "units",
            "summary": "A node's unit list: this node's own, or the one a node of its "
                       "subtree signed and published up the tree.",
            "parameters": [{
                "name": "node", "in": "query", "required": False,
                "schema": {"type": "string", "maxLength": 64},
                "description": "A node of this node's subtree (default: this node).",
            }],
            "responses": {
                "200": {"description": "The unit list.",
                        "content": {"application/json": {"schema": answer}}},
                **errors,
            },
        }},
    }
