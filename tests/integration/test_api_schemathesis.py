"""The OpenAPI document against the live node: every route is in it, and fuzzing finds no 5xx.

A real two-node tree on loopback serves /api/v1/openapi.json; schemathesis loads
it from there and sends positive and negative examples to every operation with
a supervisor's bearer token. Item actions are also aimed at real items (one
assigned to a unit of the node itself, so every action is possible, one to the
child node) and assignees are sometimes made real, so generated requests get
past the first checks into signing. The run is derandomized and bounded by
example counts, not by time (about 20 s on an idle machine): 25 examples per
operation, positive and negative mixed.

schemathesis speaks ``requests`` (blocking), so it runs on a worker thread while
the nodes keep serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from node.clock import SystemClock
from node.http.api.openapi import ACTIONS, REASONS, STATUS_MEANINGS
from protocol.fold import Status
from tests.api_client import Api, person
from tests.federation import build

SHAPE = [("14", None, "山西省", "province"), ("1401", "14", "太原市", "city")]
UNIT = "office1"
MAX_EXAMPLES = 25
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _route_regex(template: str) -> re.Pattern[str]:
    """aiohttp's ``/a/{x}/b`` as a regex matching the document's paths for it."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


async def test_document_lists_every_route(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock(), SHAPE[:1])
    try:
        node = fed["14"]
        async with aiohttp.ClientSession() as session:
            async with session.get(node.url + "/api/v1/openapi.json") as resp:
                assert resp.status == 200  # public: no token
                doc = await resp.json()
            assert doc["openapi"].startswith("3.1")
            served = {
                (route.method, route.resource.canonical)
                for route in node.app.router.routes()
                if route.resource is not None
                and route.resource.canonical.startswith("/api/v1/")
                and route.method in HTTP_METHODS  # HEAD is aiohttp's automatic twin of GET
            }
            documented = {
                (method.upper(), path)
                for path, ops in doc["paths"].items()
                for method in ops
            }
            for method, template in served:
                pattern = _route_regex(template)
                assert any(
                    m == method and pattern.fullmatch(p) for m, p in documented
                ), f"{method} {template} is served but not documented"
            for method, path in documented:
                assert any(
                    m == method and _route_regex(t).fullmatch(path) for m, t in served
                ), f"{method} {path} is documented but not served"

            # The one route with a free {action}: exactly the documented actions exist.
            api = Api(session, node, await person(node, "sup", "supervisor"))
            for action in ACTIONS:
                assert f"/api/v1/items/{{item}}/{action}" in doc["paths"]
                data = await api.call(
                    "POST", f"/api/v1/items/14-999999/{action}", {}, expect=None
                )
                assert data["error"] != "unknown_action", action
            reason = await api.refused("POST", "/api/v1/items/14-999999/explode", {}, 404)
            assert reason == "unknown_action"

            # Every status value is documented with a meaning.
            statuses = doc["components"]["schemas"]["Status"]
            assert statuses["enum"] == [
                "assigned", "deployed", "reporting", "planned", "resolved",
                "returned", "accepted", "closed", "withdrawn",
            ]
            assert all(f"`{s}`" in statuses["description"] for s in statuses["enum"])
    finally:
        await fed.stop()


def test_docs_name_every_reason_status_and_action() -> None:
    """docs/api.md is the script writer's reference: it misses none of these."""
    docs = (Path(__file__).parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    codes = {code for codes in REASONS.values() for code in codes}
    for name in sorted(codes | {s.value for s in Status} | set(ACTIONS)):
        assert f"`{name}`" in docs, f"docs/api.md does not mention `{name}`"
    for status, codes_of in REASONS.items():
        for code in codes_of:
            assert f"| {status} | `{code}` |" in docs, f"docs/api.md: {status} {code}"
    for value, meaning in STATUS_MEANINGS.items():
        assert f"| `{value}` | {meaning} |" in docs, f"docs/api.md: status {value}"


def _realistic(case: Any, assignees: list[str], pick: int) -> Any:
    """Point a positive body's assignee(s) at someone real, so signing is reached."""
    body = case.body
    if isinstance(body, dict):
        if "assignee" in body:
            body["assignee"] = assignees[pick % len(assignees)]
        for i, entry in enumerate(body.get("parts") or ()):
            if isinstance(entry, dict) and "assignee" in entry:
                entry["assignee"] = assignees[(pick + i) % len(assignees)]
    return case


def _fuzz(
    base: str, token: str, real: dict[str, list[str]], assignees: list[str]
) -> tuple[dict[str, str], dict[str, list[int]]]:
    """Run the stateless checks for every operation: (failures, statuses) by operation.

    ``real`` gives path parameter values that exist (items, attachment digests)."""
    schema = schemathesis.openapi.from_url(base + "/api/v1/openapi.json", timeout=10)
    headers = {"Authorization": f"Bearer {token}"}
    failures: dict[str, str] = {}
    statuses: dict[str, list[int]] = {}
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operations.append(result.ok())
    assert len(operations) >= 9 + len(ACTIONS)
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    for operation in operations:
        strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
        for param in operation.path_parameters:
            strategies += [
                operation.as_strategy(generation_mode=mode, path_parameters={param.name: value})
                for value in real.get(param.name, ())
                for mode in modes
            ]
        if operation.body and operation.path.endswith(("/items", "/decompose")):
            strategies.append(
                st.tuples(
                    operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                    st.integers(0, 100),
                ).map(lambda pair: _realistic(pair[0], assignees, pair[1]))
            )

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=st.one_of(strategies))
        def run(case: Any) -> None:
            response = case.call(base_url=base, headers=headers, timeout=10)
            statuses.setdefault(case.operation.label, []).append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error], headers=headers)
            if response.status_code >= 400:
                error = response.json()
                assert set(error) == {"error", "detail", "field"}, error

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report all
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:4000]
    return failures, statuses


async def test_no_server_errors_under_fuzzing(tmp_path: Path) -> None:
    fed = await build(tmp_path, SystemClock(), SHAPE)
    try:
        root = fed["14"]
        token = await person(root, "fuzzer", "supervisor", UNIT)
        async with aiohttp.ClientSession() as session:
            api = Api(session, root, token)
            own = await api.post("/api/v1/items", {"title": "本级事项", "assignee": UNIT},
                                 expect=201)
            down = await api.post("/api/v1/items", {"title": "下级事项", "assignee": "1401"},
                                  expect=201)
            await api.post(f"/api/v1/items/{own['id']}/deploy", {})
            async with session.post(root.url + "/api/v1/attachments", data=b"minutes",
                                    headers=api.headers) as resp:
                digest = (await resp.json())["digest"]
            real = {"item": [own["id"], down["id"]], "digest": [digest]}
            failures, statuses = await asyncio.to_thread(
                _fuzz, root.url, token, real, [UNIT, "1401"]
            )
        assert not failures, "\n\n".join(f"{op}:\n{why}" for op, why in failures.items())
        # Not only refusals: generated requests got through to signing and storing.
        assert 201 in statuses["POST /api/v1/items"], statuses
        assert any(
            200 in statuses[f"POST /api/v1/items/{{item}}/{action}"] for action in ACTIONS
        ), statuses
        assert 200 in statuses["GET /api/v1/attachments/{digest}"], statuses
    finally:
        await fed.stop()
