"""Bad input is refused with the right status, reason and field, and changes nothing.

A real two-node tree on loopback (the child gives an assignee). Every refusal
is checked for its HTTP status, its ``error`` reason code and its ``field``,
and the node's event and item counts are compared before and after, so a
refused request is known to have stored nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from node.clock import SystemClock
from node.http.api.auth import COOKIE, MAX_FAILURES
from node.storage import schema as t
from protocol.events import MAX_REASON
from tests.api_client import Api, person
from tests.federation import Federation, build, folded

SHAPE = [("14", None, "山西省", "province"), ("1401", "14", "太原市", "city")]
UNIT = "office1"
MAX_BODY = 4096
MAX_FILE = 10_000


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    limits = {"api.max_body_bytes": MAX_BODY, "api.max_attachment_bytes": MAX_FILE}
    tree = await build(tmp_path, SystemClock(), SHAPE, extra=limits)
    try:
        yield tree
    finally:
        await tree.stop()


async def send(
    session: aiohttp.ClientSession,
    url: str,
    method: str = "POST",
    *,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], Any]:
    """(status, JSON answer, headers) of one request, the body as JSON or raw bytes."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    sent = {"Content-Type": "application/json", **(headers or {})}
    async with session.request(method, url, data=data, headers=sent, params=params) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


class Checker:
    """Sends bad requests as one person and checks each refusal and that nothing changed."""

    def __init__(self, session: aiohttp.ClientSession, api: Api) -> None:
        self.session = session
        self.api = api

    async def counts(self) -> dict[str, int]:
        await folded(self.api.node)  # rows folded just after a sync batch: not a change
        return await self.api.node.ctx.store.counts()

    async def refused(
        self,
        path: str,
        status: int,
        error: str,
        field: str | None,
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        before = await self.counts()
        got, answer, _ = await send(
            self.session, self.api.node.url + path, method,
            headers={**self.api.headers, **(headers or {})}, **kw,
        )
        what = f"{method} {path} {kw}"[:200]
        assert (got, answer.get("error"), answer.get("field")) == (status, error, field), (
            f"{what}: {got} {answer}"
        )
        assert set(answer) == {"error", "detail", "field"}, answer
        assert answer["detail"], answer
        if field is not None and field != "body":
            assert field.split("[")[0].split(".")[0] in answer["detail"], answer
        assert await self.counts() == before, f"{what} changed the store"
        return answer


@pytest.fixture
async def checker(fed: Federation) -> AsyncIterator[Checker]:
    async with aiohttp.ClientSession() as session:
        api = Api(session, fed["14"], await person(fed["14"], "sup", "supervisor", UNIT))
        yield Checker(session, api)


GOOD = {"title": "整治背街小巷环境", "assignee": "1401"}


async def test_create_refuses_bad_fields(checker: Checker) -> None:
    items = "/api/v1/items"
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({**GOOD, "title": 5}, 400, "bad_field", "title"),
        ({**GOOD, "title": "   "}, 400, "bad_field", "title"),
        ({**GOOD, "title": "x" * 201}, 400, "bad_field", "title"),
        ({**GOOD, "title": "a\x07b"}, 400, "bad_field", "title"),
        ({**GOOD, "co_units": "x"}, 400, "bad_field", "co_units"),
        ({**GOOD, "co_units": ["ok", 3]}, 400, "bad_field", "co_units[1]"),
        ({"assignee": "1401"}, 400, "missing_field", "title"),
        ({"title": "无人承办"}, 400, "missing_field", "assignee"),
        ({**GOOD, "title": None}, 400, "missing_field", "title"),
        ({**GOOD, "priority": "high"}, 400, "unknown_field", "priority"),
        ({**GOOD, "board": "sports"}, 400, "unknown_board", "board"),
        ({**GOOD, "board": 3}, 400, "unknown_board", "board"),
        ({**GOOD, "source": "rumour"}, 400, "unknown_source", "source"),
        ({**GOOD, "class": "urgent"}, 400, "bad_field", "class"),
        ({**GOOD, "class": "explicit"}, 400, "bad_field", "class"),
        ({**GOOD, "calendar": "lunar"}, 400, "bad_field", "calendar"),
        ({**GOOD, "deadline": "next friday"}, 400, "bad_field", "deadline"),
        ({**GOOD, "deadline": "2026-13-45"}, 400, "bad_field", "deadline"),
        ({**GOOD, "deadline": True}, 400, "bad_field", "deadline"),
        ({**GOOD, "deadline": "2020-01-01"}, 400, "bad_field", "deadline"),
        ({**GOOD, "deadline": 1}, 400, "bad_field", "deadline"),
        ({**GOOD, "deadline": "2099-01-01", "class": "major"}, 400, "bad_field", "class"),
        ({**GOOD, "assignee": "9999"}, 400, "unknown_assignee", "assignee"),
        ({**GOOD, "assignee": "14"}, 400, "bad_field", "assignee"),
        ({**GOOD, "assignee": UNIT, "lead_unit": "nobody"}, 400, "unknown_unit", "lead_unit"),
        ({**GOOD, "\ud800": 1}, 400, "unknown_field", "\ud800"),
    ]
    for body, status, error, field in cases:
        await checker.refused(items, status, error, field, body=body)


async def test_bodies_that_are_not_json_objects(checker: Checker) -> None:
    items = "/api/v1/items"
    await checker.refused(items, 400, "invalid_utf8", "body", raw=b'{"title": "\xff\xfe"}')
    await checker.refused(items, 400, "bad_json", "body", raw=b"title=x&assignee=1401")
    await checker.refused(items, 400, "bad_json", "body", raw=b'{"title": "x",}')
    await checker.refused(items, 400, "bad_json", "body", raw=b"[1, 2]")
    await checker.refused(items, 400, "bad_json", "body", raw=b'"a string"')
    await checker.refused(items, 400, "bad_json", "body", raw=b"[" * 2000 + b"]" * 2000)
    await checker.refused(items, 400, "missing_body", "body", raw=b"")
    await checker.refused(items, 400, "missing_body", "body", raw=b"  \n")
    # Larger than api.max_body_bytes: refused from Content-Length, and when streamed.
    huge = json.dumps({**GOOD, "description": "长" * MAX_BODY}).encode()
    answer = await checker.refused(items, 413, "too_large", None, raw=huge)
    assert str(MAX_BODY) in answer["detail"]

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 1000):
            yield huge[start:start + 1000]

    before = await checker.counts()
    async with checker.session.post(
        checker.api.node.url + items, data=chunks(),
        headers={**checker.api.headers, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"] == "too_large"
    assert await checker.counts() == before


async def test_actions_refuse_bad_fields(checker: Checker) -> None:
    api = checker.api
    item = (await api.post("/api/v1/items", {"title": "本级事项", "assignee": UNIT},
                           expect=201))["id"]
    await api.post(f"/api/v1/items/{item}/deploy", {})
    act = f"/api/v1/items/{item}"
    cases: list[tuple[str, Any, int, str, str | None]] = [
        ("feedback", {"text": "进展", "progress": "50"}, 400, "bad_field", "progress"),
        ("feedback", {"text": "进展", "progress": 50.0}, 400, "bad_field", "progress"),
        ("feedback", {"text": "进展", "progress": True}, 400, "bad_field", "progress"),
        ("feedback", {"text": "进展", "progress": 101}, 400, "bad_field", "progress"),
        ("feedback", {"text": "进展"}, 400, "missing_field", "progress"),
        ("feedback", {"progress": 10}, 400, "missing_field", "text"),
        ("feedback", {"text": "x", "progress": 1, "attachments": ["ab"]}, 400, "bad_field",
         "attachments[0]"),
        ("feedback", {"text": "x", "progress": 1, "attachments": ["0" * 64]}, 400,
         "unknown_attachment", "attachments[0]"),
        ("plan", {"milestones": []}, 400, "bad_field", "milestones"),
        ("plan", {"milestones": [{"title": "签约"}]}, 400, "missing_field", "milestones[0].due"),
        ("plan", {"milestones": [{"title": "签约", "due": "soon"}]}, 400, "bad_field",
         "milestones[0].due"),
        ("plan", {"milestones": [{"title": "签约", "due": "0001-01-01"}]}, 400, "bad_field",
         "milestones[0].due"),
        ("plan", {"milestones": [{"title": "签\u0085约", "due": "2099-01-01"}]}, 400,
         "bad_field", "milestones[0].title"),
        ("plan", {"milestones": [{"title": "签约", "due": "2099-01-01", "x": 1}]}, 400,
         "unknown_field", "milestones[0].x"),
        ("review", {"outcome": "maybe"}, 400, "bad_field", "outcome"),
        ("review", {"outcome": "return"}, 400, "missing_field", "reason"),
        ("reject", {}, 400, "missing_field", "reason"),
        ("withdraw", {"reason": ""}, 400, "bad_field", "reason"),
        ("update", {}, 400, "missing_field", "body"),
        ("update", {"deadline": "2099-01-01"}, 400, "deadline_by_extension", "deadline"),
        ("urge", {}, 400, "missing_field", "text"),
        ("urge", {"text": " "}, 400, "bad_field", "text"),
        ("urge", {"text": "x" * 2001}, 400, "bad_field", "text"),
        ("instruct", {"text": "批\u0000示"}, 400, "bad_field", "text"),
        ("request_extension", {"text": "雨季", "progress": "一半"}, 400, "missing_field",
         "deadline"),
        ("request_extension", {"text": "雨季", "deadline": "soon", "progress": "一半"}, 400,
         "bad_field", "deadline"),
        ("request_extension", {"text": "雨季", "deadline": "2020-01-01", "progress": "一半"},
         400, "bad_field", "deadline"),
        ("request_extension", {"text": "雨季", "deadline": "2099-01-01"}, 400,
         "missing_field", "progress"),
        ("decide_extension", {}, 400, "missing_field", "approve"),
        ("decide_extension", {"approve": "yes"}, 400, "bad_field", "approve"),
        ("decide_extension", {"approve": False}, 400, "missing_field", "text"),
        ("feedback", {"text": "x", "progress": 5, "answers": "AB" * 32}, 400, "bad_field",
         "answers"),
        ("update", {"colour": "green"}, 400, "unknown_field", "colour"),
        ("decompose", {"parts": [{"title": "分项"}]}, 400, "missing_field",
         "parts[0].assignee"),
        ("decompose", {"parts": [{"title": "分项", "assignee": "1401", "deadline": "2099-01-01",
                                  "class": "major"}]}, 400, "bad_field", "parts[0].class"),
        ("deploy", [], 400, "bad_json", "body"),
        ("explode", {}, 404, "unknown_action", None),
    ]
    for action, body, status, error, field in cases:
        await checker.refused(f"{act}/{action}", status, error, field, body=body)
    # multipart: the same checks on text fields, and a form that cannot be parsed
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("text", "进展")
    form.add_field("progress", "²")
    before = await checker.counts()
    async with checker.session.post(f"{api.node.url}{act}/feedback", data=form,
                                    headers=api.headers) as resp:
        answer = await resp.json()
        assert (resp.status, answer["error"], answer["field"]) == (400, "bad_field", "progress")
    broken = b"--b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nx\r\n"
    await checker.refused(f"{act}/feedback", 400, "bad_multipart", "body", raw=broken,
                          headers={"Content-Type": "multipart/form-data; boundary=zzz"})
    assert await checker.counts() == before
    # ...while a good form with a file is taken, and the file is served back.
    form = aiohttp.FormData()
    form.add_field("text", "已完成一半")
    form.add_field("progress", "50")
    form.add_field("files", b"%PDF-1.4 minutes", filename="会议纪要.pdf",
                   content_type="application/pdf")
    async with checker.session.post(f"{api.node.url}{act}/feedback", data=form,
                                    headers=api.headers) as resp:
        answer = await resp.json()
        assert (resp.status, answer["status"], answer["progress"]) == (200, "reporting", 50)
    state = await api.get(act)
    [digest] = state["item"]["feedback"][0]["attachments"]
    async with checker.session.get(f"{api.node.url}/api/v1/attachments/{digest}",
                                   headers=api.headers) as resp:
        assert resp.status == 200 and resp.content_type == "application/pdf"
        assert await resp.read() == b"%PDF-1.4 minutes"


async def test_what_the_protocol_refuses_is_refused_before_anything_is_kept(
    checker: Checker,
) -> None:
    """The API's bounds are the protocol's: a milestone index past MAX_MILESTONES - 1
    (the API once allowed 0..99), a reason past MAX_REASON, a title with a C1 control,
    a repeated co-unit are refused with the field named, nothing stored, no file kept."""
    api = checker.api
    item = (await api.post("/api/v1/items", {"title": "本级事项", "assignee": UNIT},
                           expect=201))["id"]
    await api.post(f"/api/v1/items/{item}/deploy", {})
    act = f"/api/v1/items/{item}"
    answer = await checker.refused(f"{act}/feedback", 400, "bad_field", "milestone",
                                   body={"text": "进展", "progress": 10, "milestone": 64})
    assert "63" in answer["detail"], answer
    await checker.refused(f"{act}/withdraw", 400, "bad_field", "reason",
                          body={"reason": "x" * (MAX_REASON + 1)})
    await checker.refused("/api/v1/items", 400, "bad_field", "title",
                          body={**GOOD, "title": "签\u0085约"})
    await checker.refused("/api/v1/items", 400, "bad_field", "co_units[1]",
                          body={**GOOD, "co_units": ["a", "a"]})

    async def files() -> int:
        async with api.node.ctx.db.read() as conn:
            return int(await conn.scalar(select(func.count()).select_from(t.attachments)) or 0)

    held, before = await files(), await checker.counts()
    form = aiohttp.FormData()
    form.add_field("text", "到达第65个节点")
    form.add_field("progress", "60")
    form.add_field("milestone", "64")
    form.add_field("files", b"%PDF-1.4 evidence", filename="证明.pdf",
                   content_type="application/pdf")
    async with checker.session.post(f"{api.node.url}{act}/feedback", data=form,
                                    headers=api.headers) as resp:
        answer = await resp.json()
        assert (resp.status, answer["error"], answer["field"]) == (400, "bad_field", "milestone")
    assert (await files(), await checker.counts()) == (held, before)
    # The same report without the index is taken, file and all.
    form = aiohttp.FormData()
    form.add_field("text", "已完成过半")
    form.add_field("progress", "60")
    form.add_field("files", b"%PDF-1.4 evidence", filename="证明.pdf",
                   content_type="application/pdf")
    async with checker.session.post(f"{api.node.url}{act}/feedback", data=form,
                                    headers=api.headers) as resp:
        assert resp.status == 200, await resp.text()
    assert await files() == held + 1


async def test_unknown_items(checker: Checker) -> None:
    await checker.refused("/api/v1/items/14-999999", 404, "unknown_item", None, method="GET")
    await checker.refused("/api/v1/items/not-an-item", 404, "unknown_item", None, method="GET")
    await checker.refused("/api/v1/items/14-999999/deploy", 404, "unknown_item", None, body={})
    await checker.refused("/api/v1/items/14-999999/explode", 404, "unknown_action", None,
                          body={})
    await checker.refused("/api/v1/nothing", 404, "not_found", None, method="GET")
    await checker.refused("/api/v1/me", 405, "method_not_allowed", None, method="DELETE")
    await checker.refused("/api/v1/attachments/xyz", 404, "unknown_attachment", None,
                          method="GET")


async def test_attachments(checker: Checker) -> None:
    api = checker.api
    upload = "/api/v1/attachments"
    await checker.refused(upload, 400, "missing_body", "body", raw=b"")
    await checker.refused(upload, 413, "too_large", None, raw=b"x" * (MAX_FILE + 1))
    # Request headers may hold anything; the file is still stored and served back.
    for content_type in ("text/charset", "not a type", "application/pdf; charset=x"):
        async with checker.session.post(
            api.node.url + upload, data=content_type.encode(),
            headers={**api.headers, "Content-Type": content_type},
        ) as resp:
            assert resp.status == 201, await resp.text()
            digest = (await resp.json())["digest"]
        async with checker.session.get(api.node.url + f"{upload}/{digest}",
                                       headers=api.headers) as resp:
            assert resp.status == 200 and await resp.read() == content_type.encode()
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
    reader, writer = await asyncio.open_connection("127.0.0.1", api.node.port)
    writer.write(
        b"POST /api/v1/attachments HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: {api.headers['Authorization']}\r\n".encode()
        + b"X-Filename: \xff\xfe.txt\r\nContent-Type: text/pl\xffain\r\n"
        + b"Content-Length: 5\r\nConnection: close\r\n\r\nhello"
    )
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 201"), answer[:200]


async def test_ledger_refuses_bad_queries(checker: Checker, fed: Federation) -> None:
    cases: list[tuple[dict[str, str], int, str, str]] = [
        ({"limit": "abc"}, 400, "bad_field", "limit"),
        ({"limit": "0"}, 400, "bad_field", "limit"),
        ({"limit": "201"}, 400, "bad_field", "limit"),
        ({"offset": "-1"}, 400, "bad_field", "offset"),
        ({"colour": "purple"}, 400, "bad_field", "colour"),
        ({"colour": "red,purple"}, 400, "bad_field", "colour"),
        ({"status": "lost"}, 400, "bad_field", "status"),
        ({"board": "sports"}, 400, "bad_field", "board"),
        ({"sort": "bogus"}, 400, "bad_field", "sort"),
        ({"overdue": "maybe"}, 400, "bad_field", "overdue"),
        ({"depth": "all"}, 400, "bad_field", "depth"),
        ({"due_from": "yesterday"}, 400, "bad_field", "due_from"),
        ({"due_to": "2026-02-30"}, 400, "bad_field", "due_to"),
        ({"q": "x" * 101}, 400, "bad_field", "q"),
        ({"colour_of": "red"}, 400, "unknown_field", "colour_of"),
        ({"scope": "9999"}, 404, "unknown_node", "scope"),
    ]
    for params, status, error, field in cases:
        await checker.refused("/api/v1/items", status, error, field, method="GET",
                              params=params)
    # The child cannot look above itself.
    async with aiohttp.ClientSession() as session:
        child = Api(session, fed["1401"], await person(fed["1401"], "city", "viewer"))
        assert await child.refused("GET", "/api/v1/items?scope=14", None, 403) == "not_in_scope"


async def test_tokens(fed: Federation) -> None:
    root = fed["14"]
    token = await person(root, "sup", "supervisor")
    url = root.url + "/api/v1/me"
    async with aiohttp.ClientSession() as session:
        for headers, reason in [
            ({}, "auth_required"),
            ({"Authorization": "Bearer dbn_not-a-real-token"}, "bad_credentials"),
            ({"Authorization": f"Basic {token}"}, "bad_credentials"),
            ({"Authorization": "Bearer "}, "bad_credentials"),
            ({"Cookie": f"{COOKIE}=forged"}, "bad_credentials"),
        ]:
            status, answer, _ = await send(session, url, "GET", headers=headers)
            assert (status, answer["error"]) == (401, reason), (headers, answer)
        # Everything but login, logout, status and this document needs credentials.
        for method, path in [("GET", "/api/v1/items"), ("POST", "/api/v1/items"),
                             ("GET", "/api/v1/items/14-000001"),
                             ("POST", "/api/v1/items/14-000001/deploy"),
                             ("POST", "/api/v1/attachments")]:
            status, answer, _ = await send(session, root.url + path, method, body=GOOD)
            assert (status, answer["error"]) == (401, "auth_required"), (path, answer)
        status, answer, _ = await send(
            session, url, "GET", headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 200 and answer["user"]["name"] == "sup"


async def test_login_limits_and_sessions(fed: Federation) -> None:
    root = fed["14"]
    await person(root, "clerk", "viewer")
    login = root.url + "/api/v1/login"
    async with aiohttp.ClientSession() as session:
        for body, error, field in [
            ({"name": "clerk"}, "missing_field", "password"),
            ({"password": "x"}, "missing_field", "name"),
            ({"name": "clerk", "password": 12345678}, "bad_field", "password"),
            ({"name": "clerk", "password": "x", "otp": "1"}, "unknown_field", "otp"),
        ]:
            status, answer, _ = await send(session, login, body=body)
            assert (status, answer["error"], answer["field"]) == (400, error, field), body
        status, answer, _ = await send(session, login, raw=b"x" * 5000)
        assert (status, answer["error"]) == (413, "too_large")

        for _ in range(MAX_FAILURES):
            status, answer, _ = await send(session, login,
                                           body={"name": "clerk", "password": "wrong-password"})
            assert (status, answer["error"]) == (401, "bad_credentials"), answer
        # Now even the right password waits; another name is not held up.
        status, answer, headers = await send(session, login,
                                             body={"name": "clerk", "password": "password-123"})
        assert (status, answer["error"]) == (429, "too_many_attempts"), answer
        assert int(headers["Retry-After"]) > 0
        status, answer, _ = await send(session, login,
                                       body={"name": "nobody", "password": "password-123"})
        assert (status, answer["error"]) == (401, "bad_credentials")

        await person(root, "head", "leader")
        status, answer, headers = await send(session, login,
                                             body={"name": "head", "password": "password-123"})
        assert status == 200 and answer["user"]["name"] == "head", answer
        set_cookie = headers["Set-Cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
        cookie = set_cookie.split(";", 1)[0]
        assert cookie.startswith(f"{COOKIE}=")
        me = root.url + "/api/v1/me"
        status, answer, _ = await send(session, me, "GET", headers={"Cookie": cookie})
        assert status == 200 and answer["user"]["role"] == "leader", answer

        # A script with the cookie says it is no other site's page (docs/api.md, CSRF).
        status, answer, headers = await send(session, root.url + "/api/v1/logout", body={},
                                             headers={"Cookie": cookie, "X-Duban-CSRF": "1"})
        assert status == 200 and answer == {"ok": True}
        assert f"{COOKIE}=" in headers["Set-Cookie"]  # cleared
        status, answer, _ = await send(session, me, "GET", headers={"Cookie": cookie})
        assert (status, answer["error"]) == (401, "bad_credentials")
