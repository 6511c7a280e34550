"""What is waiting for me: the to-do and the message centre, for the signed-in person.

- ``GET /api/v1/todo`` — every kind of work waiting for me (``node.queries.todo.KINDS``:
  items to deploy, to pass down, first feedback owed, returned items to redo,
  resolutions due soon, plans to approve, reviews), each kind's count and its items
  oldest first, with their deadline and colour; scoped by my role and unit.
- ``GET /api/v1/messages`` — the reminders that reached me, newest first, paged
  (``limit``, ``offset``, ``unread=true`` for the unread only), with the unread count.
- ``POST /api/v1/messages/read`` — ``{"ids": [...]}`` or ``{"all": true}``: mark read.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.errors import bad
from node.http.api.auth import current_user
from node.http.api.bodies import SMALL_JSON_BYTES, MarkRead, ref
from node.http.api.validate import read_body
from node.http.services import MESSAGES, TODO
from node.queries.messages import MAX_LIMIT
from node.queries.todo import KIND_NAMES, Who
from node.storage.accounts import User

_MESSAGE_PARAMS = frozenset({"limit", "offset", "unread"})
MAX_OFFSET = 1_000_000


def who_of(user: User) -> Who:
    return Who(name=user.name, role=user.role, unit=user.unit)


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise bad(name, "must be a whole number")
    value = int(raw)
    if not lo <= value <= hi:
        raise bad(name, f"must be between {lo} and {hi}")
    return value


def paging(request: web.Request) -> tuple[int, int, bool]:
    """(limit, offset, unread only) from the query; anything else is refused."""
    unknown = sorted(set(request.query) - _MESSAGE_PARAMS - {"lang"})
    if unknown:
        raise bad(unknown[0][:64], "is not a known parameter", "unknown_field")
    unread = request.query.get("unread")
    if unread not in (None, "true", "false", "1", "0"):
        raise bad("unread", "must be true or false")
    return (
        _int(request, "limit", 20, 1, MAX_LIMIT),
        _int(request, "offset", 0, 0, MAX_OFFSET),
        unread in ("true", "1"),
    )


async def todo(request: web.Request) -> web.Response:
    user = await current_user(request)
    if request.query:
        raise bad(sorted(request.query)[0][:64], "is not a known parameter", "unknown_field")
    return web.json_response(await request.app[TODO].read(who_of(user)))


async def messages(request: web.Request) -> web.Response:
    user = await current_user(request)
    limit, offset, unread = paging(request)
    answer = await request.app[MESSAGES].page(
        user.name, limit=limit, offset=offset, unread_only=unread
    )
    return web.json_response(answer)


async def mark_read(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_body(request, MarkRead, max_bytes=SMALL_JSON_BYTES * 4)
    centre = request.app[MESSAGES]
    changed = await centre.mark_read(user.name, None if body.all else body.ids)
    return web.json_response({"marked": changed, "unread": await centre.unread(user.name)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/todo", todo)
    app.router.add_get("/api/v1/messages", messages)
    app.router.add_post("/api/v1/messages/read", mark_read)


def openapi_paths() -> dict[str, Any]:
    """Path items for ``node.http.api.openapi.build_document``."""
    errors = {str(s): {"description": "Refused: {error, detail, field}."} for s in (400, 401)}
    item = {"type": "object", "description": "The ledger's item summary, plus `kind`, `due` "
            "(the deadline of this kind of work), `due_in_s` and `waiting_since`."}
    todo_answer = {
        "type": "object",
        "properties": {
            "person": {"type": "string"},
            "role": {"type": "string"},
            "unit": {"type": ["string", "null"]},
            "total": {"type": "integer"},
            "now": {"type": "string"},
            "kinds": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": list(KIND_NAMES)},
                    "label": {"type": "string"},
                    "count": {"type": "integer"},
                    "items": {"type": "array", "items": item},
                },
                "required": ["kind", "count", "items"],
            }},
        },
        "required": ["kinds", "total"],
    }
    channel = {"type": "object", "properties": {
        "channel": {"type": "string"}, "recipient": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "sent", "failed"]},
        "sent_at": {"type": ["string", "null"]},
    }}
    message = {"type": "object", "properties": {
        "id": {"type": "integer"}, "item": {"type": "string"},
        "title": {"type": ["string", "null"]}, "subject": {"type": "string"},
        "text": {"type": "string"}, "kind": {"type": ["string", "null"]},
        "deadline": {"type": ["string", "null"]}, "due": {"type": ["string", "null"]},
        "late": {"type": "boolean"}, "created_at": {"type": "string"},
        "read": {"type": "boolean"}, "read_at": {"type": ["string", "null"]},
        "channels": {"type": "array", "items": channel},
    }}
    page = {"type": "object", "properties": {
        "messages": {"type": "array", "items": message},
        "total": {"type": "integer"}, "unread": {"type": "integer"},
        "limit": {"type": "integer"}, "offset": {"type": "integer"},
    }, "required": ["messages", "total", "unread"]}
    return {
        "/api/v1/todo": {"get": {
            "operationId": "todo",
            "summary": "What is waiting for me: each kind of work, its count and items, "
                       "oldest first, scoped by my role and unit.",
            "responses": {
                "200": {"description": "The to-do.",
                        "content": {"application/json": {"schema": todo_answer}}},
                **errors,
            },
        }},
        "/api/v1/messages": {"get": {
            "operationId": "messages",
            "summary": "The reminders that reached me, newest first, with the unread count.",
            "parameters": [
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
                {"name": "offset", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}},
                {"name": "unread", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["true", "false", "1", "0"]}},
            ],
            "responses": {
                "200": {"description": "One page of messages.",
                        "content": {"application/json": {"schema": page}}},
                **errors,
            },
        }},
        "/api/v1/messages/read": {"post": {
            "operationId": "mark_messages_read",
            "summary": "Mark messages read: their ids, or all of mine.",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": ref(MarkRead)}}},
            "responses": {
                "200": {"description": "How many deliveries changed, and the unread count.",
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "properties": {"marked": {"type": "integer"},
                                           "unread": {"type": "integer"}},
                        }}}},
                **errors,
            },
        }},
    }
