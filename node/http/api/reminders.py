"""Reminders in the node app: the message log endpoints.

- ``GET /api/v1/items/{item}/messages`` — every reminder of the item recorded
  here and every message queued for it: channel, person, address, text,
  status, attempts, times, last error, late.
- ``GET /api/v1/notifications/status`` — per channel: pending, retrying,
  failed, sent and cancelled counts, the oldest pending message, the last error.
- ``POST /api/v1/me/contact`` — a person sets their own phone and email.

The scheduler runs while the app runs (``node.app.reminder_scheduler``, after the
node's own cleanup context, so the node is open while it runs), kept under
:data:`REMINDERS` for these endpoints and for tests, which call
``app[REMINDERS].run_once()``.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from node.clock import iso
from node.errors import bad
from node.http.api.auth import current_user
from node.http.api.bodies import ITEM_ID, SMALL_JSON_BYTES, Contact, ref
from node.http.api.items import item_id_of
from node.http.api.validate import read_body
from node.http.services import (
    ACCOUNTS,
    DB,
    WORKFLOW,
)
from node.reminders.schedule import NO_MILESTONE
from node.reminders.scheduler import CHANNELS, Reminders
from node.storage import schema as t
from node.storage.accounts import AccountError

logger = logging.getLogger(__name__)

REMINDERS = web.AppKey("reminders", Reminders)
_MAX_LOG = 1000


async def item_messages(request: web.Request) -> web.Response:
    user = await current_user(request)
    item = item_id_of(request)
    await request.app[WORKFLOW].readable(user, item)
    r, m = t.reminders, t.reminder_messages
    async with request.app[DB].read() as conn:
        reminders = (
            await conn.execute(select(r).where(r.c.item_id == item).order_by(r.c.at, r.c.id))
        ).all()
        messages = (
            await conn.execute(
                select(m).where(m.c.item_id == item).order_by(m.c.id).limit(_MAX_LOG)
            )
        ).all()
    by_id = {row.id: row for row in reminders}

    def reminder(row: Any) -> dict[str, Any]:
        return {
            "deadline": row.deadline,
            "milestone": None if row.milestone == NO_MILESTONE else row.milestone,
            "kind": row.kind,
            "due": iso(row.due),
            "at": iso(row.at),
            "seen_at": iso(row.seen_at),
            "late": bool(row.late),
            "outcome": row.outcome,
            "detail": row.detail,
        }

    def message(row: Any) -> dict[str, Any]:
        parent = by_id.get(row.reminder_id)
        return {
            "id": row.message_key,
            "channel": row.channel,
            "person": row.person,
            "recipient": row.recipient,
            "subject": row.subject,
            "text": row.text,
            "status": row.status,
            "attempts": row.attempts,
            "created_at": iso(row.created_at),
            "last_attempt_at": iso(row.last_attempt_at),
            "next_attempt_at": iso(row.next_attempt_at) if row.status == "pending" else None,
            "sent_at": iso(row.sent_at),
            "last_error": row.last_error,
            "late": bool(row.late),
            "deadline": parent.deadline if parent is not None else None,
            "kind": parent.kind if parent is not None else None,
        }

    return web.json_response(
        {
            "item": item,
            "reminders": [reminder(row) for row in reminders],
            "messages": [message(row) for row in messages],
        }
    )


async def notification_status(request: web.Request) -> web.Response:
    await current_user(request)
    service = request.app.get(REMINDERS)
    m, r = t.reminder_messages, t.reminders
    channels: dict[str, dict[str, Any]] = {
        name: {
            "enabled": service is not None and name in service.notifiers,
            "pending": 0,
            "retrying": 0,
            "failed": 0,
            "sent": 0,
            "cancelled": 0,
            "oldest_pending": None,
            "last_error": None,
        }
        for name in CHANNELS
    }
    async with request.app[DB].read() as conn:
        tried = m.c.attempts > 0
        counts = await conn.execute(
            select(m.c.channel, m.c.status, tried, func.count(), func.min(m.c.created_at))
            .group_by(m.c.channel, m.c.status, tried)
        )
        for channel, status, tried, count, oldest in counts:
            entry = channels.setdefault(
                channel, {"enabled": False, "pending": 0, "retrying": 0, "failed": 0,
                          "sent": 0, "cancelled": 0, "oldest_pending": None, "last_error": None}
            )
            entry[status] = entry.get(status, 0) + int(count)
            if status == "pending":
                if tried:
                    entry["retrying"] += int(count)
                if entry["oldest_pending"] is None or oldest < entry["oldest_pending"]:
                    entry["oldest_pending"] = oldest
        errors = await conn.execute(
            select(m.c.channel, m.c.last_error, m.c.last_attempt_at)
            .where(m.c.status.in_(("pending", "failed")), m.c.last_error.is_not(None))
            .order_by(m.c.last_attempt_at.desc())
            .limit(50)
        )
        for channel, error, _ in errors:
            if channels[channel]["last_error"] is None:
                channels[channel]["last_error"] = error
        outcomes: dict[str, int] = {
            outcome: int(count)
            for outcome, count in await conn.execute(
                select(r.c.outcome, func.count()).group_by(r.c.outcome)
            )
        }
    for entry in channels.values():
        entry["oldest_pending"] = iso(entry["oldest_pending"])
    return web.json_response(
        {
            "enabled": service is not None and service.settings.enabled,
            "last_run": iso(service.last_run) if service is not None else None,
            "channels": channels,
            "reminders": {k: int(outcomes.get(k, 0))
                          for k in ("queued", "superseded", "no_recipient")},
        }
    )


async def set_contact(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await read_body(request, Contact, max_bytes=SMALL_JSON_BYTES)
    try:
        updated = await request.app[ACCOUNTS].set_contact(
            user.name, phone=body.phone, email=body.email
        )
    except AccountError as exc:
        field = "email" if exc.reason == "bad_email" else "phone"
        raise bad(field, exc.detail) from None
    return web.json_response(
        {"user": updated.to_dict(), "phone": updated.phone, "email": updated.email}
    )


# ---------------------------------------------------------------- lifecycle


def add_routes(app: web.Application) -> None:
    """The endpoints (the scheduler is ``node.app.reminder_scheduler``)."""
    app.router.add_get("/api/v1/items/{item}/messages", item_messages)
    app.router.add_get("/api/v1/notifications/status", notification_status)
    app.router.add_post("/api/v1/me/contact", set_contact)


# ------------------------------------------------------------------ OpenAPI


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/{s}"} for s in (*statuses, 500)}


_ITEM_PARAM = {
    "name": "item", "in": "path", "required": True,
    "schema": {"type": "string", "pattern": ITEM_ID},
    "description": "Item id: the assigning node's id, '-', a sequence number.",
}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}


def openapi_paths() -> dict[str, Any]:
    """This module's operations, for ``node.http.api.openapi``."""
    log_entry = {
        "type": "object",
        "required": ["id", "channel", "person", "recipient", "text", "status", "attempts",
                     "created_at", "sent_at", "late"],
        "properties": {
            "id": {"type": "string", "description": "The message id given to the gateway."},
            "channel": {"type": "string", "enum": list(CHANNELS)},
            "person": {"type": "string"},
            "recipient": {"type": "string"},
            "subject": {"type": "string"},
            "text": {"type": "string"},
            "status": {"type": "string",
                       "enum": ["pending", "sent", "failed", "cancelled"]},
            "attempts": {"type": "integer", "minimum": 0},
            "created_at": {"type": "string", "format": "date-time"},
            "last_attempt_at": _NULL_TIME,
            "next_attempt_at": _NULL_TIME,
            "sent_at": _NULL_TIME,
            "last_error": {"type": ["string", "null"]},
            "late": {"type": "boolean"},
            "deadline": {"type": ["string", "null"]},
            "kind": {"type": ["string", "null"]},
        },
    }
    reminder = {
        "type": "object",
        "required": ["deadline", "kind", "due", "at", "late", "outcome"],
        "properties": {
            "deadline": {"type": "string",
                         "enum": ["deploy", "feedback", "resolve", "milestone"]},
            "milestone": {"type": ["integer", "null"]},
            "kind": {"type": "string", "enum": ["due_soon", "overdue"]},
            "due": {"type": "string", "format": "date-time"},
            "at": {"type": "string", "format": "date-time"},
            "seen_at": {"type": "string", "format": "date-time"},
            "late": {"type": "boolean"},
            "outcome": {"type": "string", "enum": ["queued", "superseded", "no_recipient"]},
            "detail": {"type": "string"},
        },
    }
    channel = {"type": "object", "required": ["enabled", "pending", "retrying", "failed", "sent"]}
    return {
        "/api/v1/items/{item}/messages": {"get": {
            "operationId": "itemMessages",
            "summary": "The item's reminder log: every reminder recorded here and every "
            "message sent (or tried) to whom, when, by which channel.",
            "description": "Only the handling node sends reminders; elsewhere both lists "
            "are empty. See docs/reminders.md.",
            "parameters": [_ITEM_PARAM],
            "responses": {"200": {"description": "The log.", "content": {"application/json": {
                "schema": {
                    "type": "object",
                    "required": ["item", "reminders", "messages"],
                    "properties": {
                        "item": {"type": "string"},
                        "reminders": {"type": "array", "items": reminder},
                        "messages": {"type": "array", "items": log_entry},
                    },
                }}}}} | _errors(401, 403, 404),
        }},
        "/api/v1/notifications/status": {"get": {
            "operationId": "notificationStatus",
            "summary": "Reminder delivery per channel: pending, retrying, failed, sent.",
            "responses": {"200": {"description": "Status.", "content": {"application/json": {
                "schema": {
                    "type": "object",
                    "required": ["enabled", "last_run", "channels", "reminders"],
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "last_run": _NULL_TIME,
                        "channels": {"type": "object", "additionalProperties": channel},
                        "reminders": {"type": "object"},
                    },
                }}}}} | _errors(401),
        }},
        "/api/v1/me/contact": {"post": {
            "operationId": "setContact",
            "summary": "Set your own phone (SMS) and email for reminders; \"\" clears one.",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": ref(Contact)}}},
            "responses": {"200": {"description": "Saved.", "content": {"application/json": {
                "schema": {"type": "object", "required": ["user", "phone", "email"]}}}}}
            | _errors(400, 401, 413),
        }},
    }
