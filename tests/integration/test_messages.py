"""The message centre and an item's reminders, on a real node with a real local SMS
gateway, SMTP server and webhook (the stand-ins of tests/integration/test_reminders.py).

A reminder reaches a unit's head and operator by SMS and mail: each sees it once in
their message centre, with both channels' states; the unit head's SMS gateway
refuses, so their SMS shows failed (on the item's page too). Marking read is per
person (another's ids change nothing), one message or all; bad requests are
refused with the field named.
"""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from node.clock import ManualClock
from tests.api_client import Api
from tests.federation import build
from tests.integration.test_reminders import (  # noqa: F401  (channels: a fixture)
    ENV_HEAD,
    ENV_OP,
    FIN_HEAD,
    HOUR,
    ROOT,
    SUP,
    T0,
    TITLE,
    Channels,
    add_people,
    api_for,
    channels,
    tick,
)


async def page_text(api: Api, path: str) -> str:
    async with api.session.get(api.node.url + path, headers=api.headers) as resp:
        assert resp.status == 200, path
        return await resp.text()


def nav_unread(page: str) -> int:
    found = re.search(r'id="nav-messages"[^>]*>[^<]*<span class="count"[^>]*>(\d+)<', page)
    return int(found[1]) if found else 0


async def test_reminders_reach_the_message_centre_read_and_unread(
    tmp_path: Path, channels: Channels  # noqa: F811
) -> None:
    clock = ManualClock(T0)
    settings = channels.settings(reminders__max_attempts=1)
    settings["webhook.enabled"] = False
    fed = await build(tmp_path, clock, ROOT, extra=settings)
    node = fed["14"]
    try:
        await add_people(node, ENV_HEAD, ENV_OP, FIN_HEAD, SUP)
        channels.sms.failures[ENV_HEAD[3]] = ["500"] * 10  # the head's SMS never goes
        async with aiohttp.ClientSession() as session:
            sup = await api_for(session, node, "sup")
            op = await api_for(session, node, "env_op")
            head = await api_for(session, node, "env_head")
            fin = await api_for(session, node, "fin_head")
            created = await sup.post("/api/v1/items", {
                "title": TITLE, "assignee": "env", "class": "general",
            }, expect=201)
            item = created["id"]
            empty = await op.get("/api/v1/messages")
            assert (empty["messages"], empty["total"], empty["unread"]) == ([], 0, 0)

            clock.set(T0 + 19 * HOUR)  # 5 h before the 1-day deploy deadline
            await tick(node)
            first = await op.get("/api/v1/messages")
            assert (first["total"], first["unread"]) == (1, 1)
            (msg,) = first["messages"]
            assert msg["item"] == item and msg["title"] == TITLE
            assert (msg["kind"], msg["deadline"], msg["read"]) == ("due_soon", "deploy", False)
            assert TITLE in msg["text"]
            assert sorted((c["channel"], c["status"]) for c in msg["channels"]) == [
                ("email", "sent"), ("sms", "sent")]
            head_msg = (await head.get("/api/v1/messages"))["messages"][0]
            assert dict((c["channel"], c["status"]) for c in head_msg["channels"]) == {
                "email": "sent", "sms": "failed"}
            assert (await fin.get("/api/v1/messages"))["total"] == 0  # another unit's

            clock.set(T0 + 24 * HOUR + 1)  # the deadline passes, still not deployed
            await tick(node)
            both = await op.get("/api/v1/messages")
            assert (both["total"], both["unread"]) == (2, 2)
            assert [m["kind"] for m in both["messages"]] == ["overdue", "due_soon"]
            assert nav_unread(await page_text(op, "/ledger")) == 2
            paged = await op.get("/api/v1/messages?limit=1&offset=1")
            assert [m["id"] for m in paged["messages"]] == [msg["id"]]
            assert paged["total"] == 2

            # Another person's ids change nothing; one's own mark one, then all.
            assert (await fin.post("/api/v1/messages/read", {"ids": [msg["id"]]}))[
                "marked"] == 0
            marked = await op.post("/api/v1/messages/read", {"ids": [msg["id"]]})
            assert marked == {"marked": 2, "unread": 1}  # its SMS and its mail
            after = await op.get("/api/v1/messages")
            assert [m["read"] for m in after["messages"]] == [False, True]
            assert after["messages"][1]["read_at"] is not None
            unread_only = await op.get("/api/v1/messages?unread=true")
            assert [m["kind"] for m in unread_only["messages"]] == ["overdue"]
            assert (await head.get("/api/v1/messages"))["unread"] == 2  # theirs untouched
            assert (await op.post("/api/v1/messages/read", {"all": True}))["unread"] == 0
            assert nav_unread(await page_text(op, "/ledger")) == 0
            assert len((await op.get("/api/v1/messages"))["messages"]) == 2  # kept, read

            # Bad requests are refused, naming the field; nothing changes.
            for body, field in (({}, "ids"), ({"ids": []}, "ids"), ({"ids": [0]}, "ids[0]"),
                                ({"ids": [1], "all": True}, "all"), ({"x": 1}, "x")):
                data = await op.call("POST", "/api/v1/messages/read", body, expect=400)
                assert data["field"] == field, (body, data)
            for query, field in (("limit=0", "limit"), ("offset=-1", "offset"),
                                 ("unread=maybe", "unread"), ("page=2", "page")):
                data = await op.call("GET", f"/api/v1/messages?{query}", expect=400)
                assert data["field"] == field, (query, data)
            assert (await head.get("/api/v1/messages"))["unread"] == 2

            # The item's page: each reminder, to whom, by which channel, delivered or not.
            page = await page_text(sup, f"/items/{item}")
            section = page[page.index('id="reminders"'):page.index('id="history"')]
            assert section.count('class="reminder"') == 2
            assert "env_op" in section and "env_head" in section
            assert "已送达" in section and "发送失败" in section and "短信" in section
            assert ENV_HEAD[3] in section  # the number it failed to reach
    finally:
        await fed.stop()
