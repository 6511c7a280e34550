"""node/'s errors: one root, kinds by meaning, one table from kind to HTTP status.

The middleware is driven with every kind, the other packages' roots, aiohttp's own
refusals, a full disk, a cut connection and a bug: every status it answers is the
table's (or 500 ``internal``). And the layer rule for errors, read from the source:
no module below node/http imports it, and no module outside it raises ``ApiError``.
"""

from __future__ import annotations

import ast
import errno
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hierarchy.errors import HierarchyError, Refusal
from node import errors
from node.config import ConfigError
from node.errors import KINDS, NodeError
from node.http import errors as http_errors
from node.http.errors import FOREIGN, INTERNAL, STATUS, error_middleware
from node.queries.periods import PeriodError
from node.storage.accounts import AccountError
from node.storage.db import StorageError
from node.sync.client import SyncFailure
from protocol.errors import ProtocolError

ROOT = Path(__file__).resolve().parent.parent
ABOVE_HTTP = {"node/app.py", "node/cli.py", "node/setup.py"}
"""Modules of the top layer, which build the app or run commands (node/demo/ too)."""


def test_the_table_covers_every_kind_once() -> None:
    assert set(STATUS) == set(KINDS)
    assert len(set(STATUS.values())) == len(STATUS), "two kinds share a status"
    assert all(400 <= status < 600 for status in STATUS.values())
    assert INTERNAL not in STATUS.values()
    assert set(FOREIGN.values()) <= set(KINDS)


def test_the_classes_of_node_sit_on_the_root_and_keep_their_words() -> None:
    assert issubclass(ProtocolError, Exception) and not issubclass(ProtocolError, NodeError)
    config = ConfigError("duban.toml: unknown setting 'x'")
    assert str(config) == "duban.toml: unknown setting 'x'" and config.reason == "bad_config"
    storage = StorageError("unavailable", "cannot use sqlite:///x")
    assert str(storage) == "unavailable: cannot use sqlite:///x"
    assert http_errors.kind_of(storage) is None  # a failure, not a refusal
    assert http_errors.status_of(AccountError("bad_name", "1-64 letters")) == 400
    assert http_errors.status_of(PeriodError("a week is written like 2026-W47")) == 400
    failure = SyncFailure("GET /sync: HTTP 503", retry_after=30.0)
    assert str(failure) == "GET /sync: HTTP 503" and failure.retry_after == 30.0
    assert isinstance(errors.refused(Refusal("unknown_node", "x")), errors.NotFound)
    assert isinstance(errors.refused(Refusal("not_in_scope", "x")), errors.Forbidden)
    assert isinstance(errors.refused(HierarchyError("unknown_node", "x")), errors.Forbidden)


def test_api_error_is_only_a_spelling_of_the_kinds() -> None:
    for kind, status in STATUS.items():
        error = http_errors.ApiError(status, "r", "d", "f")
        assert type(error) is kind and (error.reason, error.detail, error.field) == ("r", "d", "f")
    with pytest.raises(ValueError):
        http_errors.ApiError(418, "teapot")


def _raising(exc: BaseException) -> Callable[[web.Request], web.StreamResponse]:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise exc

    return handler  # type: ignore[return-value]


CASES: list[tuple[str, BaseException, int, str]] = [
    *[
        (f"kind-{kind.__name__}", kind("some_reason", "some detail", "f"), status, "some_reason")
        for kind, status in STATUS.items()
    ],
    ("sync-failure", SyncFailure("no answer"), STATUS[errors.Unavailable], "sync_failed"),
    ("protocol", ProtocolError("bad_field", "title: too long"), 400, "bad_field"),
    ("hierarchy", HierarchyError("not_descendant", "x"), 403, "not_descendant"),
    ("storage-error", StorageError("unavailable", "down"), INTERNAL, "internal"),
    ("config-error", ConfigError("bad"), INTERNAL, "internal"),
    ("bug", RuntimeError("boom"), INTERNAL, "internal"),
    ("disk-full", sqlite3.OperationalError("database or disk is full"), 503, "storage_full"),
    ("enospc", OSError(errno.ENOSPC, "No space left on device"), 503, "storage_full"),
    ("cut", ConnectionResetError("reset"), 400, "connection_reset"),
    ("too-large", web.HTTPRequestEntityTooLarge(max_size=1, actual_size=2), 413, "too_large"),
]


async def test_every_answer_of_the_middleware_comes_from_the_table() -> None:
    app = web.Application(middlewares=[error_middleware])
    for name, exc, _, _ in CASES:
        app.router.add_get(f"/api/{name}", _raising(exc))
    app.router.add_get("/api/only-get", _raising(errors.NotFound("x")))
    allowed = set(STATUS.values()) | {INTERNAL}
    async with TestClient(TestServer(app)) as client:
        for name, exc, status, reason in CASES:
            resp = await client.get(f"/api/{name}")
            body = await resp.json()
            assert (resp.status, body["error"]) == (status, reason), name
            assert resp.status in allowed and set(body) == {"error", "detail", "field"}
            if status == INTERNAL:
                assert "boom" not in body["detail"] and "down" not in body["detail"]
            if isinstance(exc, NodeError) and exc.field is not None and status != INTERNAL:
                assert body["field"] == exc.field
        if_full = await client.get("/api/disk-full")
        assert if_full.headers["Retry-After"] == str(http_errors.STORAGE_FULL_RETRY_SECONDS)
        for path, method, status, reason in [
            ("/api/nowhere", "GET", STATUS[errors.NotFound], "not_found"),
            ("/api/only-get", "DELETE", STATUS[errors.NotAllowed], "method_not_allowed"),
        ]:
            resp = await client.request(method, path)
            assert (resp.status, (await resp.json())["error"]) == (status, reason)


async def test_retry_after_is_whole_seconds() -> None:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/api/wait", _raising(errors.TooMany("too_many_attempts", retry_after=2.2)))
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/api/wait")
        assert resp.status == STATUS[errors.TooMany] and resp.headers["Retry-After"] == "3"


def test_no_status_number_outside_the_table() -> None:
    """node/http/errors.py writes an error status only in STATUS and INTERNAL."""
    tree = ast.parse((ROOT / "node/http/errors.py").read_text(encoding="utf-8"))
    found: list[tuple[int, int]] = []
    for top in tree.body:
        targets = [t.id for t in getattr(top, "targets", [getattr(top, "target", None)])
                   if isinstance(t, ast.Name)]
        if {"STATUS", "INTERNAL"} & set(targets):
            continue
        found += [
            (n.lineno, n.value) for n in ast.walk(top)
            if isinstance(n, ast.Constant) and type(n.value) is int and 400 <= n.value < 600
        ]
    assert found == []


# -- the layer rule, from the source ----------------------------------------------------


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted((ROOT / "node").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        out.append((rel, ast.parse(path.read_text(encoding="utf-8"), rel)))
    return out


def _below_http(rel: str) -> bool:
    return not (rel.startswith(("node/http/", "node/demo/")) or rel in ABOVE_HTTP)


def _imports(module: ast.Module) -> set[str]:
    names: set[str] = set()
    for n in ast.walk(module):
        if isinstance(n, ast.Import):
            names.update(alias.name for alias in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            names.add(n.module)
            names.update(f"{n.module}.{alias.name}" for alias in n.names)
    return names


def _uses_api_error(module: ast.Module) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id == "ApiError")
        or (isinstance(n, ast.Attribute) and n.attr == "ApiError")
        or (isinstance(n, ast.alias) and n.name == "ApiError")
        for n in ast.walk(module)
    )


def test_no_module_below_http_imports_it() -> None:
    offenders = {
        rel: sorted(name for name in _imports(module) if name.split(".")[:2] == ["node", "http"])
        for rel, module in _modules()
        if _below_http(rel)
    }
    assert {rel: names for rel, names in offenders.items() if names} == {}


def test_node_errors_imports_nothing_of_node() -> None:
    module = ast.parse((ROOT / "node/errors.py").read_text(encoding="utf-8"))
    assert {name for name in _imports(module) if name.startswith("node")} == set()


def test_only_the_http_layer_says_api_error() -> None:
    users = {rel for rel, module in _modules() if _uses_api_error(module)}
    assert {rel for rel in users if not rel.startswith("node/http/")} == set(), users


def test_the_checks_catch_an_offender() -> None:
    bad = ast.parse(
        "from node.http.errors import ApiError\nraise ApiError(404, 'x')\n"
    )
    assert "node.http.errors" in _imports(bad) and _uses_api_error(bad)
    assert _below_http("node/workflow/actions.py") and not _below_http("node/http/sync.py")
