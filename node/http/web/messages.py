"""The message centre page (消息中心): the reminders that reached me, newest first,
paged; unread ones stand out and are marked read one by one or all at once.

The page reads and writes through ``node.queries.messages.Messages``, as
``GET /api/v1/messages`` and ``POST /api/v1/messages/read`` do.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from node.clock import parse_moment
from node.errors import bad
from node.http.api.todo import paging
from node.http.services import MESSAGES
from node.http.web.render import form_of, page, render, safe_next
from node.storage.accounts import User

PATH = "/messages"


def _ms(value: str | None) -> int | None:
    return None if value is None else parse_moment(value, "at")


@page
async def messages_page(request: web.Request, user: User) -> web.StreamResponse:
    limit, offset, unread_only = paging(request)
    answer = await request.app[MESSAGES].page(
        user.name, limit=limit, offset=offset, unread_only=unread_only
    )
    base = {"unread": "true"} if unread_only else {}
    if limit != 20:
        base["limit"] = str(limit)
    prev_url = next_url = None
    if offset > 0:
        prev_url = PATH + "?" + urlencode({**base, "offset": max(0, offset - limit)})
    if offset + limit < answer["total"]:
        next_url = PATH + "?" + urlencode({**base, "offset": offset + limit})
    messages = [
        {**m, "created_ms": _ms(m["created_at"]), "due_ms": _ms(m["due"])}
        for m in answer["messages"]
    ]
    return await render(
        request,
        "messages.html",
        user=user,
        nav="messages",
        messages=messages,
        total=answer["total"],
        unread=answer["unread"],
        unread_only=unread_only,
        page_no=offset // limit + 1,
        pages=max(1, -(-answer["total"] // limit)),
        prev_url=prev_url,
        next_url=next_url,
        back=request.path_qs,
    )


@page
async def messages_read(request: web.Request, user: User) -> web.StreamResponse:
    """The form's ``id`` (one message) or ``all``; then back to the page it came from."""
    form = await form_of(request)
    centre = request.app[MESSAGES]
    if form.get("all"):
        await centre.mark_read(user.name, None)
    else:
        raw = str(form.get("id", ""))
        if not (raw.isascii() and raw.isdigit() and 0 < len(raw) <= 18):
            raise bad("id", "must be a message id")
        await centre.mark_read(user.name, [int(raw)])
    back = safe_next(str(form.get("back", "")))
    raise web.HTTPSeeOther(back if back.startswith(PATH) else PATH)
