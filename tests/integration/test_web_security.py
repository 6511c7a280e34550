"""Holes reached over HTTP by people: redirects, forged requests, sign-in, uploads.

A real one-node federation on loopback (and a two-node one where an item needs
an assignee), real SQLite files; every refusal is checked for its status and
reason code, and for what it left behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from node.api.auth import COOKIE
from node.clock import SystemClock
from node.localtree import RunningNode
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
