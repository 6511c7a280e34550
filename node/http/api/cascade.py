"""The cascade's endpoints: pass an item down by hand, and read an item's roll-up.

``POST /api/v1/items/{item}/pass_down`` (no body) does what the ``cascade.auto``
policy does by itself (node/workflow/cascade.py), for a supervisor or leader of
the node the item is assigned to. ``GET /api/v1/items/{item}/rollup`` answers
its whole subtree of sub-items summed up (node/queries/rollup.py) to anyone who
may read the item. docs/cascade.md explains both.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.http.api.auth import current_user
from node.http.api.items import item_id_of
from node.http.services import CASCADE, ROLLUP, WORKFLOW
from protocol.rules import Colour


async def pass_down(request: web.Request) -> web.Response:
    user = await current_user(request)
    item = item_id_of(request)
    done = await request.app[CASCADE].pass_down(item, user)
    return web.json_response(
        {
            "id": item,
            "deployed": done.deployed,
            "sub_items": [{"id": e.item, "assignee": e.assignee} for e in done.sub_items],
        },
        status=201,
    )


async def rollup(request: web.Request) -> web.Response:
    user = await current_user(request)
    state = await request.app[WORKFLOW].readable(user, item_id_of(request))
    return web.json_response(await request.app[ROLLUP].of(state))


def openapi_paths(item_param: dict[str, Any]) -> dict[str, Any]:
    """Path items for ``node.http.api.openapi.build_document``."""
    errors = {str(s): {"description": "Refused: {error, detail, field}."}
              for s in (401, 403, 404, 409)}
    colour = {"type": "string", "enum": [str(c) for c in Colour]}
    brief = {"type": "object", "required": ["id", "assignee", "level", "status", "colour",
                                            "progress"]}
    answer = {
        "type": "object",
        "required": ["item", "count", "own", "rolled", "rule", "levels", "children",
                     "slowest", "overdue", "overdue_count"],
        "properties": {
            "item": {"type": "string"},
            "count": {"type": "integer", "description": "Sub-items in the whole subtree."},
            "own": {"type": "object", "description": "The item's own signed progress and "
                    "colour now.", "properties": {"colour": colour}},
            "rolled": {"type": "object", "description": "Progress and colour rolled up "
                       "from the sub-items by `rule` (progress null without sub-items)."},
            "rule": {"type": "string"},
            "levels": {"type": "array", "items": {"type": "object", "required": [
                "level", "count", "by_status", "by_colour", "feedback_in", "late", "red",
                "progress"]}},
            "children": {"type": "array", "items": brief,
                         "description": "Each direct sub-item with its rolled-up progress "
                         "and colour and its leaves' counts."},
            "slowest": {"type": "array", "items": brief, "maxItems": 10},
            "overdue": {"type": "array", "items": brief, "maxItems": 10},
            "overdue_count": {"type": "integer"},
        },
    }
    passed = {
        "type": "object",
        "required": ["id", "deployed", "sub_items"],
        "properties": {
            "id": {"type": "string"},
            "deployed": {"type": "boolean", "description": "item.deployed was signed too."},
            "sub_items": {"type": "array", "items": {"type": "object",
                                                     "required": ["id", "assignee"]}},
        },
    }
    return {
        "/api/v1/items/{item}/pass_down": {"post": {
            "operationId": "item_pass_down",
            "summary": "Pass a cascade item down to every child at or above its level "
            "(转办; what cascade.auto does by itself). No body.",
            "description": "Done by a supervisor or leader of the handling node. 409 "
            "not_cascade, wrong_level, no_children, already_passed_down.",
            "parameters": [item_param],
            "responses": {"201": {"description": "Passed down.",
                                  "content": {"application/json": {"schema": passed}}},
                          **errors},
        }},
        "/api/v1/items/{item}/rollup": {"get": {
            "operationId": "item_rollup",
            "summary": "The item's whole subtree of sub-items summed up: per level, per "
            "direct sub-item, the slowest and the overdue.",
            "parameters": [item_param],
            "responses": {"200": {"description": "The roll-up.",
                                  "content": {"application/json": {"schema": answer}}},
                          **errors},
        }},
    }


def add_routes(app: web.Application) -> None:
    """Before ``node.http.api.items.add_routes``: its ``/api/v1/items/{item}/{action}``
    would take ``pass_down`` otherwise."""
    app.router.add_post("/api/v1/items/{item}/pass_down", pass_down)
    app.router.add_get("/api/v1/items/{item}/rollup", rollup)
