"""Holes reached over HTTP by people: redirects, forged requests, sign-in, uploads.

A real one-node federation on loopback (and a two-node one where an item needs
an assignee), real SQLite files; every refusal is checked for its status and
reason code, and for what it left behind.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, update
from yarl import URL

from node.clock import SystemClock
from node.demo.localtree import RunningNode
from node.http.api.auth import COOKIE, MAX_FAILURES
from node.http.web import csrf
from node.storage import schema as t
from tests.api_client import person
from tests.federation import Federation, build

ROOT = [("14", None, "山西省", "province")]
PASSWORD = "password-123"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    tree = await build(tmp_path, SystemClock(), ROOT)
    try:
        yield tree
    finally:
        await tree.stop()


async def session_cookie(http: aiohttp.ClientSession, node: RunningNode, name: str) -> str:
    """Sign ``name`` in through the JSON API; the ``Cookie`` header value."""
    async with http.post(
        node.url + "/api/v1/login", json={"name": name, "password": PASSWORD}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return f"{COOKIE}={resp.cookies[COOKIE].value}"


async def redirect_of(http: aiohttp.ClientSession, url: str, **kw: Any) -> str:
    async with http.get(url, allow_redirects=False, **kw) as resp:
        assert resp.status == 303, (url, resp.status)
        return resp.headers["Location"]


# ------------------------------------------------------------ 3: open redirect

HOSTILE_NEXT = [
    "/%09/evil.example",  # a tab: browsers drop it, leaving //evil.example
    "/%0a/evil.example",
    "/%0d/evil.example",
    "/%0d%0a/evil.example",
    "/\t/evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/%5cevil.example",
    "/%5Cevil.example",
    "/%2f/evil.example",
    "/%2F%2Fevil.example",
    "/%252f/evil.example",
    "/%00/evil.example",
    "/ /evil.example",
    "/\u3000/evil.example",
    "https://evil.example/",
    "http:/evil.example",
    "//evil.example/%2e%2e",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " /ledger",
    "evil.example",
    "",
    "/" + "a" * 5000,
]
SAFE_NEXT = ["/ledger", "/items/14-000001", "/ledger?colour=red&q=%E5%8A%9E", "/tree#x"]


async def test_sign_in_goes_only_to_paths_of_this_site(fed: Federation) -> None:
    node = fed["14"]
    await person(node, "clerk", "viewer")
    async with aiohttp.ClientSession() as http:
        cookie = await session_cookie(http, node, "clerk")
        # Signed in: the sign-in page sends the person on at once.
        for nxt in HOSTILE_NEXT:
            location = await redirect_of(
                http, node.url + "/login", params={"next": nxt}, headers={"Cookie": cookie}
            )
            assert location == "/ledger", (nxt, location)
        for nxt in SAFE_NEXT:
            location = await redirect_of(
                http, node.url + "/login", params={"next": nxt}, headers={"Cookie": cookie}
            )
            assert location == nxt, (nxt, location)
        # The raw request line too (no client-side re-encoding).
        location = await redirect_of(
            http, node.url + "/login?next=/%09/evil.example", headers={"Cookie": cookie}
        )
        assert location == "/ledger", location

    # Signing in through the form: the hostile next is dropped there as well.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(node.url + "/login", params={"next": "/%09/evil.example"}) as resp:
            page = await resp.text()
            assert '<input type="hidden" name="next" value="/ledger">' in page
        token = http.cookie_jar.filter_cookies(URL(node.url)).get("duban_login_csrf")
        assert token is not None
        form = {"name": "clerk", "password": PASSWORD, "csrf_token": token.value,
                "next": "/\t/evil.example"}
        async with http.post(
            node.url + "/login?next=/%09/evil.example", data=form, allow_redirects=False
        ) as resp:
            assert resp.status == 303, await resp.text()
            assert resp.headers["Location"] == "/ledger"


# ------------------------------------------------------------------ 10: sign-in

LIMITS = {"signin.max_account_failures": 8, "signin.max_address_failures": 12}
PROXY = {**LIMITS, "http.trusted_proxies": "127.0.0.1, ::1"}


class CountingHasher(PasswordHasher):
    """argon2's own hasher, counting the verifications it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified += 1
        return super().verify(hash, password)


async def login(
    http: aiohttp.ClientSession, node: RunningNode, name: str, password: str,
    via: str | None = None,
) -> tuple[int, dict[str, Any], Any]:
    headers = {"X-Forwarded-For": via} if via else {}
    async with http.post(node.url + "/api/v1/login", json={"name": name, "password": password},
                         headers=headers) as resp:
        return resp.status, await resp.json(), resp.headers


async def test_unknown_names_cost_the_same_check_as_known_ones(fed: Federation) -> None:
    node = fed["14"]
    await person(node, "clerk", "viewer")
    await person(node, "gone", "viewer")
    async with node.ctx.db.write() as conn:
        await conn.execute(update(t.users).where(t.users.c.name == "gone").values(disabled=True))
    hasher = CountingHasher()
    node.ctx.accounts.hasher = hasher
    async with aiohttp.ClientSession() as http:
        for name, password in [("nobody", PASSWORD), ("clerk", "wrong-password"),
                               ("gone", PASSWORD), ("Clerk", PASSWORD)]:
            before = hasher.verified
            status, answer, _ = await login(http, node, name, password)
            assert (status, answer["error"]) == (401, "bad_credentials"), (name, answer)
            assert answer["detail"] == "wrong name or password", answer
            # Every refusal ran one Argon2 verification, whoever the name was.
            assert hasher.verified == before + 1, name
        status, _, _ = await login(http, node, "clerk", PASSWORD)
        assert status == 200 and hasher.verified == 5


async def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    tmp_path: Path,
) -> None:
    behind = await build(tmp_path / "behind", SystemClock(), ROOT, extra=PROXY)
    exposed = await build(tmp_path / "exposed", SystemClock(), ROOT, extra=LIMITS)
    try:
        async with aiohttp.ClientSession() as http:
            node = behind["14"]
            await person(node, "clerk", "viewer")
            for _ in range(MAX_FAILURES):
                status, _, _ = await login(http, node, "clerk", "typo-typo", via="10.0.0.1")
                assert status == 401
            status, answer, headers = await login(http, node, "clerk", PASSWORD, via="10.0.0.1")
            assert (status, answer["error"]) == (429, "too_many_attempts"), answer
            assert int(headers["Retry-After"]) > 0 and "address" in answer["detail"]
            # Someone else behind the same proxy signs in as the same person: one
            # user's typos do not lock the account for everyone behind the proxy.
            status, answer, _ = await login(http, node, "clerk", PASSWORD, via="10.0.0.2")
            assert status == 200, answer
            # nginx appends the peer to what the client sent: only the last
            # untrusted hop counts, so a forged list does not give new addresses.
            for n in range(3):
                status, answer, _ = await login(
                    http, node, "clerk", PASSWORD, via=f"9.9.9.{n}, 10.0.0.1"
                )
                assert (status, answer["error"]) == (429, "too_many_attempts"), answer

            # Without a trusted proxy the header is the client's word, and ignored.
            node = exposed["14"]
            await person(node, "clerk", "viewer")
            for n in range(MAX_FAILURES):
                status, _, _ = await login(http, node, "clerk", "typo-typo", via=f"10.0.1.{n}")
                assert status == 401
            status, answer, _ = await login(http, node, "clerk", PASSWORD, via="10.0.2.1")
            assert (status, answer["error"]) == (429, "too_many_attempts"), answer
    finally:
        await behind.stop()
        await exposed.stop()


async def test_guessing_from_many_addresses_or_many_names_is_limited(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock(), ROOT, extra=PROXY)
    node = fed["14"]
    await person(node, "boss", "leader")
    await person(node, "clerk", "viewer")
    try:
        async with aiohttp.ClientSession() as http:
            # One guess each from many addresses: the account's own limit stops it.
            for n in range(LIMITS["signin.max_account_failures"]):
                status, _, _ = await login(http, node, "boss", "guess-guess", via=f"10.1.0.{n}")
                assert status == 401
            status, answer, headers = await login(http, node, "boss", PASSWORD, via="10.1.1.1")
            assert (status, answer["error"]) == (429, "too_many_attempts"), answer
            assert int(headers["Retry-After"]) > 0 and "account" in answer["detail"]
            # The same for names that do not exist: a 429 tells nothing about a name.
            for n in range(LIMITS["signin.max_account_failures"]):
                status, _, _ = await login(http, node, "ghost", "guess-guess", via=f"10.2.0.{n}")
                assert status == 401
            status, answer, _ = await login(http, node, "ghost", "guess", via="10.2.1.1")
            assert (status, answer["error"]) == (429, "too_many_attempts"), answer
            # Many names from one address: the address's own limit stops it.
            for n in range(LIMITS["signin.max_address_failures"]):
                status, _, _ = await login(http, node, f"user{n}", "guess-guess", via="10.3.0.1")
                assert status == 401
            status, answer, headers = await login(http, node, "clerk", PASSWORD, via="10.3.0.1")
            assert (status, answer["error"]) == (429, "too_many_attempts"), answer
            assert int(headers["Retry-After"]) > 0
            status, _, _ = await login(http, node, "clerk", PASSWORD, via="10.3.0.2")
            assert status == 200
        # The sign-in page says why and when to try again, in the header too.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            headers = {"X-Forwarded-For": "10.3.0.1"}
            async with http.get(node.url + "/login", headers=headers) as resp:
                assert resp.status == 200
            token = http.cookie_jar.filter_cookies(URL(node.url))["duban_login_csrf"].value
            form = {"name": "clerk", "password": PASSWORD, "csrf_token": token}
            async with http.post(node.url + "/login", data=form, headers=headers,
                                 allow_redirects=False) as resp:
                assert resp.status == 429
                assert int(resp.headers["Retry-After"]) > 0
                assert "登录失败次数过多" in await resp.text()
    finally:
        await fed.stop()


# ------------------------------------------------------- 4: forged API requests

UNIT = "office1"
ITEM = {"title": "整治背街小巷环境", "assignee": UNIT}
EVIL = "http://evil.example"


async def counts(node: RunningNode) -> tuple[int, int]:
    """(events, attachments) held by ``node``."""
    async with node.ctx.db.read() as conn:
        events = await conn.scalar(select(func.count()).select_from(t.events))
        files = await conn.scalar(select(func.count()).select_from(t.attachments))
    return int(events or 0), int(files or 0)


async def post(
    http: aiohttp.ClientSession, url: str, data: Any, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    async with http.post(url, data=data, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_the_session_cookie_works_only_from_this_site(fed: Federation) -> None:
    node = fed["14"]
    token = await person(node, "sup", "supervisor", UNIT)
    own = node.url  # http://127.0.0.1:<port>, what a browser sends as Origin here
    items = node.url + "/api/v1/items"
    body = json.dumps(ITEM)
    as_json = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        cookie = {"Cookie": await session_cookie(http, node, "sup")}
        before = await counts(node)
        # The reported attack: a text/plain "simple" request from another site.
        for headers in [
            {**cookie, "Content-Type": "text/plain", "Origin": EVIL},
            {**cookie, **as_json, "Origin": EVIL},
            {**cookie, **as_json, "Origin": "null"},
            {**cookie, **as_json, "Origin": own + ".evil.example"},
            {**cookie, **as_json, "Referer": EVIL + "/page"},
            {**cookie, **as_json},  # neither Origin nor Referer nor the header
        ]:
            status, answer = await post(http, items, body, headers)
            assert (status, answer["error"]) == (403, "csrf_failed"), (headers, answer)
            assert answer["detail"], answer
        # Only JSON where JSON is expected, even from this site.
        for content_type in ("text/plain", "application/x-www-form-urlencoded",
                             "multipart/form-data; boundary=x"):
            status, answer = await post(
                http, items, body, {**cookie, "Content-Type": content_type, "Origin": own}
            )
            assert (status, answer["error"]) == (415, "unsupported_media_type"), answer
        # Logging out and uploading are unsafe too.
        status, answer = await post(http, node.url + "/api/v1/logout", b"",
                                    {**cookie, "Origin": EVIL})
        assert (status, answer["error"]) == (403, "csrf_failed"), answer
        status, answer = await post(http, node.url + "/api/v1/attachments", b"%PDF-1.4",
                                    {**cookie, "Content-Type": "text/plain", "Origin": EVIL})
        assert (status, answer["error"]) == (403, "csrf_failed"), answer
        assert await counts(node) == before
        # From this site: Origin, or Referer, or (scripts) the X-Duban-CSRF header.
        for headers in [
            {**cookie, **as_json, "Origin": own},
            {**cookie, **as_json, "Referer": own + "/ledger"},
            {**cookie, **as_json, "X-Duban-CSRF": "1"},
        ]:
            status, answer = await post(http, items, body, headers)
            assert status == 201, (headers, answer)
        # Bearer tokens are no browser's ambient credential: the Origin does not matter,
        # but the body must still be JSON.
        bearer = {"Authorization": f"Bearer {token}"}
        status, answer = await post(http, items, body, {**bearer, **as_json, "Origin": EVIL})
        assert status == 201, answer
        status, answer = await post(http, items, body, {**bearer, "Content-Type": "text/plain"})
        assert (status, answer["error"]) == (415, "unsupported_media_type"), answer
        # GETs are not changed by a cookie from anywhere.
        async with http.get(items, headers={**cookie, "Origin": EVIL}) as resp:
            assert resp.status == 200
        # The session survived the forged logout.
        async with http.get(node.url + "/api/v1/me", headers=cookie) as resp:
            assert resp.status == 200


async def test_forwarded_host_counts_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    behind = await build(tmp_path / "behind", SystemClock(), ROOT, extra=PROXY)
    exposed = await build(tmp_path / "exposed", SystemClock(), ROOT)
    public = "duban.example.gov.cn:8443"
    try:
        async with aiohttp.ClientSession() as http:
            for fed, allowed in ((behind, True), (exposed, False)):
                node = fed["14"]
                await person(node, "sup", "supervisor", UNIT)
                cookie = await session_cookie(http, node, "sup")
                headers = {"Cookie": cookie, "Content-Type": "application/json",
                           "Origin": f"https://{public}", "X-Forwarded-Host": public}
                status, answer = await post(http, node.url + "/api/v1/items",
                                            json.dumps(ITEM), headers)
                if allowed:
                    assert status == 201, answer
                else:
                    assert (status, answer["error"]) == (403, "csrf_failed"), answer
                # nginx's Host $host names the site whatever the setting.
                headers = {"Cookie": cookie, "Content-Type": "application/json",
                           "Origin": "https://duban.example.gov.cn",
                           "Host": "duban.example.gov.cn"}
                status, answer = await post(http, node.url + "/api/v1/items",
                                            json.dumps(ITEM), headers)
                assert status == 201, answer
    finally:
        await behind.stop()
        await exposed.stop()


# ------------------------------------------------------------- 6: attachments

QUOTAS = {"api.attachment_quota_user_bytes": 100, "api.attachment_quota_node_bytes": 250}


def upload_form(
    text: str, files: dict[str, bytes], *, progress: str | None = "50", **extra: str
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("text", text)
    if progress is not None:
        form.add_field("progress", progress)
    for key, value in extra.items():
        form.add_field(key, value)
    for name, data in files.items():
        form.add_field("files", data, filename=name, content_type="application/pdf")
    return form


async def test_a_refused_upload_stores_nothing(fed: Federation) -> None:
    node = fed["14"]
    sup = {"Authorization": f"Bearer {await person(node, 'sup', 'supervisor', UNIT)}"}
    viewer = {"Authorization": f"Bearer {await person(node, 'clerk', 'viewer')}"}
    other = {"Authorization": f"Bearer {await person(node, 'op2', 'operator', 'office2')}"}
    api = node.url + "/api/v1"
    async with aiohttp.ClientSession() as http:
        status, created = await post(http, api + "/items", json.dumps(ITEM),
                                     {**sup, "Content-Type": "application/json"})
        assert status == 201, created
        item = created["id"]
        status, answer = await post(http, f"{api}/items/{item}/deploy", "{}",
                                    {**sup, "Content-Type": "application/json"})
        assert status == 200, answer
        before = await counts(node)
        # A viewer, or an operator of another unit: refused before anything is kept.
        for who, reason in ((viewer, "role_forbidden"), (other, "wrong_unit")):
            for action in ("feedback", "resolve"):
                status, answer = await post(
                    http, f"{api}/items/{item}/{action}",
                    upload_form("进展", {"evidence.pdf": b"%PDF-1.4 " + reason.encode()},
                                progress="50" if action == "feedback" else None),
                    who,
                )
                assert (status, answer["error"]) == (403, reason), answer
        status, answer = await post(http, api + "/attachments", b"%PDF-1.4 viewer",
                                    {**viewer, "Content-Type": "application/pdf"})
        assert (status, answer["error"]) == (403, "role_forbidden"), answer
        assert await counts(node) == before
        # The item's state refuses it (a withdrawn item): nothing kept either.
        status, answer = await post(http, f"{api}/items/{item}/withdraw",
                                    json.dumps({"reason": "重复交办"}),
                                    {**sup, "Content-Type": "application/json"})
        assert status == 200, answer
        before = await counts(node)
        status, answer = await post(
            http, f"{api}/items/{item}/feedback", upload_form("进展", {"a.pdf": b"%PDF late"}), sup
        )
        assert status == 409, answer
        # A bad field beside a good file: refused, nothing kept.
        status, answer = await post(
            http, f"{api}/items/{item}/feedback",
            upload_form("进展", {"a.pdf": b"%PDF bad"}, progress="lots"), sup,
        )
        assert status in (400, 409), answer
        assert await counts(node) == before

    # The item page's form takes the same path.
    async with aiohttp.ClientSession() as http:
        status, created = await post(http, api + "/items", json.dumps(ITEM),
                                     {**sup, "Content-Type": "application/json"})
        item = created["id"]
        await post(http, f"{api}/items/{item}/deploy", "{}",
                   {**sup, "Content-Type": "application/json"})
        cookie = await session_cookie(http, node, "clerk")
        session = cookie.split("=", 1)[1]
        before = await counts(node)
        form = upload_form("进展", {}, csrf_token=csrf.session_token(session))
        form.add_field("attachments", b"%PDF-1.4 page", filename="page.pdf",
                       content_type="application/pdf")
        async with http.post(f"{node.url}/items/{item}/feedback", data=form,
                             headers={"Cookie": cookie, "Origin": node.url}) as resp:
            assert resp.status == 403, await resp.text()
            assert "您的角色不能进行此操作" in await resp.text()
        assert await counts(node) == before


async def test_attachment_quotas_per_person_and_per_node(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock(), ROOT, extra=QUOTAS)
    node = fed["14"]
    try:
        people = {
            name: {"Authorization": f"Bearer {await person(node, name, 'operator', UNIT)}"}
            for name in ("op1", "op2", "op3")
        }
        upload = node.url + "/api/v1/attachments"
        async with aiohttp.ClientSession() as http:
            async def send(who: str, data: bytes) -> tuple[int, dict[str, Any]]:
                return await post(http, upload, data,
                                  {**people[who], "Content-Type": "application/pdf"})

            assert (await send("op1", b"a" * 60))[0] == 201
            status, answer = await send("op1", b"b" * 60)  # 120 > 100 for op1
            assert (status, answer["error"]) == (413, "quota_exceeded"), answer
            assert "100" in answer["detail"], answer
            # The same bytes again cost nothing (stored once, by hash).
            assert (await send("op1", b"a" * 60))[0] == 201
            assert (await send("op2", b"a" * 60))[0] == 201
            assert (await send("op2", b"c" * 90))[0] == 201  # node: 150 of 250
            status, answer = await send("op3", b"d" * 90)  # node: 240
            assert status == 201, answer
            before = await counts(node)
            status, answer = await send("op1", b"e" * 11)  # op1: 71; node: 251 > 250
            assert (status, answer["error"]) == (413, "node_quota_exceeded"), answer
            assert await counts(node) == before
            # The item page's form says it in the person's language (op3 holds 90 of 100).
            sup = {"Authorization": f"Bearer {await person(node, 'sup', 'supervisor', UNIT)}",
                   "Content-Type": "application/json"}
            status, created = await post(http, node.url + "/api/v1/items", json.dumps(ITEM), sup)
            item = created["id"]
            await post(http, f"{node.url}/api/v1/items/{item}/deploy", "{}", sup)
            cookie = await session_cookie(http, node, "op3")
            before = await counts(node)
            full = (("zh-CN", "个人存储上限"), ("en", "your storage quota"))
            for lang, words in full:
                form = upload_form("进展", {}, csrf_token=csrf.session_token(cookie.split("=")[1]))
                form.add_field("attachments", b"f" * 20, filename="a.pdf",
                               content_type="application/pdf")
                async with http.post(f"{node.url}/items/{item}/feedback?lang={lang}", data=form,
                                     headers={"Cookie": cookie, "Origin": node.url}) as resp:
                    assert resp.status == 413, await resp.text()
                    page = await resp.text()
                    assert words in page, re.findall(r"form-error[^<]*|id=\"form-[a-z]+", page)
            assert await counts(node) == before
    finally:
        await fed.stop()


# ------------------------------------------- 10 again: guesses at once, IPv6, headers


async def test_guesses_sent_at_once_are_limited_like_guesses_in_a_row(tmp_path: Path) -> None:
    """The limiter counted a failure only after Argon2 answered (~0.1-0.3 s): guesses
    sent together all passed the check before the first was counted, so 40 parallel
    guesses all ran. An attempt is counted before the password is checked."""
    fed = await build(tmp_path, SystemClock(), ROOT, extra=PROXY)
    node = fed["14"]
    await person(node, "boss", "leader")
    hasher = CountingHasher()
    node.ctx.accounts.hasher = hasher
    try:
        async with aiohttp.ClientSession() as http:
            answers = await asyncio.gather(*[
                login(http, node, "boss", f"guess-{n:04d}", via="10.4.0.1") for n in range(40)
            ])
            statuses = [status for status, _, _ in answers]
            assert statuses.count(401) == MAX_FAILURES, statuses
            assert statuses.count(429) == 40 - MAX_FAILURES, statuses
            # From many addresses at once: the account's limit holds the same way.
            answers = await asyncio.gather(*[
                login(http, node, "ghost", f"guess-{n:04d}", via=f"10.5.0.{n}") for n in range(40)
            ])
            statuses = [status for status, _, _ in answers]
            limit = LIMITS["signin.max_account_failures"]
            assert statuses.count(401) == limit, statuses
            assert hasher.verified == MAX_FAILURES + limit
            # A right password sent among guesses still signs in, and costs no slot.
            status, _, _ = await login(http, node, "boss", PASSWORD, via="10.4.0.2")
            assert status == 200
    finally:
        await fed.stop()


async def test_one_ipv6_network_is_one_address_for_the_limits(tmp_path: Path) -> None:
    """Anyone given an IPv6 /64 (every home line) holds 2**64 addresses: per address,
    the limits count the /64. IPv4-mapped IPv6 is the IPv4 address."""
    fed = await build(tmp_path, SystemClock(), ROOT, extra=PROXY)
    node = fed["14"]
    await person(node, "clerk", "viewer")
    try:
        async with aiohttp.ClientSession() as http:
            limit = LIMITS["signin.max_address_failures"]
            for n in range(limit):
                status, _, _ = await login(
                    http, node, f"user{n}", "guess-guess", via=f"2001:db8:1:2::{n + 1:x}"
                )
                assert status == 401
            status, answer, _ = await login(
                http, node, "clerk", PASSWORD, via="2001:db8:1:2:ffff:1:2:3"
            )
            assert (status, answer["error"]) == (429, "too_many_attempts"), answer
            assert "address" in answer["detail"], answer
            status, _, _ = await login(http, node, "clerk", PASSWORD, via="2001:db8:1:3::1")
            assert status == 200
            # The same name from one address, as IPv4 and as IPv4-mapped IPv6.
            for via in ["10.6.0.1", "::ffff:10.6.0.1"] * 3:
                status, _, _ = await login(http, node, "clerk", "typo-typo", via=via)
            status, answer, _ = await login(http, node, "clerk", PASSWORD, via="10.6.0.1")
            assert (status, answer["error"]) == (429, "too_many_attempts"), answer
    finally:
        await fed.stop()


async def test_an_empty_authorization_header_does_not_skip_the_origin_check(
    fed: Federation,
) -> None:
    """The origin check skipped any request with an ``Authorization`` header, while an
    empty one fell back to the session cookie: cookie + ``Authorization:`` from another
    site was taken. A present header is the credential, whatever it holds."""
    node = fed["14"]
    await person(node, "sup", "supervisor", UNIT)
    async with aiohttp.ClientSession() as http:
        cookie = {"Cookie": await session_cookie(http, node, "sup")}
        before = await counts(node)
        for empty in ("", " ", "Bearer", "Bearer  "):
            headers = {**cookie, "Authorization": empty, "Origin": EVIL,
                       "Content-Type": "application/json"}
            status, answer = await post(http, node.url + "/api/v1/items", json.dumps(ITEM),
                                        headers)
            assert status in (401, 403), (empty, status, answer)
            status, answer = await post(http, node.url + "/api/v1/logout", b"", headers)
            assert status in (401, 403), (empty, status, answer)
        assert await counts(node) == before
        async with http.get(node.url + "/api/v1/me", headers=cookie) as resp:
            assert resp.status == 200


async def test_the_files_of_one_request_are_bounded_together(tmp_path: Path) -> None:
    """Each file was capped but not their number: one multipart feedback held every
    file in memory until the quota check (10 MB each, any number). Together they are
    at most ``api.max_upload_bytes``; past it, 413 ``too_large`` and nothing kept."""
    limits = {"api.max_attachment_bytes": 1000, "api.max_upload_bytes": 5000}
    fed = await build(tmp_path, SystemClock(), ROOT, extra=limits)
    node = fed["14"]
    try:
        sup = {"Authorization": f"Bearer {await person(node, 'sup', 'supervisor', UNIT)}"}
        as_json = {**sup, "Content-Type": "application/json"}
        api = node.url + "/api/v1"
        async with aiohttp.ClientSession() as http:
            status, created = await post(http, api + "/items", json.dumps(ITEM), as_json)
            item = created["id"]
            await post(http, f"{api}/items/{item}/deploy", "{}", as_json)
            before = await counts(node)
            many = {f"p{n}.pdf": b"%PDF" + bytes([n]) * 896 for n in range(30)}
            status, answer = await post(http, f"{api}/items/{item}/feedback",
                                        upload_form("进展", many), sup)
            assert (status, answer["error"]) == (413, "too_large"), answer
            assert "api.max_upload_bytes" in answer["detail"], answer
            assert await counts(node) == before
            few = dict(list(many.items())[:5])  # 4,500 bytes: within
            status, answer = await post(http, f"{api}/items/{item}/feedback",
                                        upload_form("进展", few), sup)
            assert status == 200, answer
            assert (await counts(node))[1] == before[1] + 5
    finally:
        await fed.stop()
