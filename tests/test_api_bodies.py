"""Request bodies: the OpenAPI document's request schemas are the Structs' own, and the
API takes its bounds and patterns from the protocol, so it accepts exactly what
signing the event accepts.

No server: ``build_document`` and ``validate.decode`` are called as they are by
the app (the live document and the handlers are fuzzed in
tests/integration/test_api_schemathesis.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.clock import iso, parse_moment
from node.config import Config
from node.errors import NodeError
from node.http.api import bodies
from node.http.api.openapi import ACTION_SIDES, ACTIONS, build_document
from node.http.api.validate import decode
from node.http.errors import status_of
from protocol.errors import ProtocolError
from protocol.events import (
    ITEM_RE,
    MAX_ATTACHMENTS,
    MAX_MILESTONES,
    MAX_REASON,
    MAX_TEXT,
    MAX_TITLE,
    MAX_UNITS,
    UNIT_RE,
    Deployed,
    Feedback,
    Milestone,
    Withdrawn,
)
from protocol.rules import CHINA_TZ

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Config(Path("."), {"workflow.extra_boards": "sports", "workflow.extra_sources": "radio"})
HEADER: dict[str, Any] = {"item": "14-000001", "origin": "14", "seq": 2, "lamport": 2,
                          "at": 1, "to": "1401"}


def refusal(value: Any, kind: type[bodies.Body]) -> tuple[str, str | None, str]:
    with pytest.raises(NodeError) as caught:
        decode(value, kind)
    assert status_of(caught.value) == 400
    return caught.value.reason, caught.value.field, caught.value.detail


def json_bodies(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(method, path) -> the name of the component its JSON request body refers to."""
    out = {}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                ref = content["application/json"]["schema"]["$ref"]
                out[(method, path)] = ref.removeprefix("#/components/schemas/")
    return out


# -- the document's request schemas are the Structs' ---------------------------------------


def test_every_documented_body_is_a_struct_and_every_struct_is_documented() -> None:
    doc = build_document(CONFIG)
    documented = json_bodies(doc)
    assert set(documented.values()) == {kind.__name__ for kind in bodies.ALL}
    assert documented[("post", "/api/v1/login")] == "Login"
    assert documented[("post", "/api/v1/me/contact")] == "Contact"
    assert documented[("post", "/api/v1/items")] == "Assignment"
    for action, kind in bodies.ACTIONS.items():
        assert documented[("post", f"/api/v1/items/{{item}}/{action}")] == kind.__name__
    assert set(ACTIONS) == set(ACTION_SIDES) == set(bodies.ACTIONS)


def test_the_request_schemas_are_generated_from_the_structs() -> None:
    doc = build_document(CONFIG)
    schemas = doc["components"]["schemas"]
    _, generated = msgspec.json.schema_components(bodies.ALL, ref_template=bodies.REF)
    assert {"Part", "Milestone"} <= generated.keys()  # nested bodies come along
    for name, schema in generated.items():
        kind = next(k for k in bodies.Body.__subclasses__() if k.__name__ == name)
        expected = schema | kind.schema_extra
        if name == "Assignment":  # this node's boards and sources, extra ones too
            expected["properties"]["board"]["enum"] = [*bodies_boards(), "sports"]
            assert "radio" in schemas[name]["properties"]["source"]["enum"]
            expected["properties"]["source"]["enum"] = schemas[name]["properties"]["source"][
                "enum"
            ]
        assert schemas[name] == expected, name
    # The multipart forms are the JSON bodies' fields, as text, plus files.
    for action in ("feedback", "resolve"):
        form = doc["paths"][f"/api/v1/items/{{item}}/{action}"]["post"]["requestBody"][
            "content"]["multipart/form-data"]["schema"]
        fields = set(schemas[bodies.ACTIONS[action].__name__]["properties"])
        assert set(form["properties"]) == fields - {"attachments"} | {"files"}


def bodies_boards() -> list[str]:
    from protocol.events import BOARDS

    return list(BOARDS)


def test_the_documented_patterns_are_the_protocols() -> None:
    doc = build_document(CONFIG)
    item = doc["paths"]["/api/v1/items/{item}"]["get"]["parameters"][0]["schema"]["pattern"]
    messages = doc["paths"]["/api/v1/items/{item}/messages"]["get"]["parameters"][0]
    assert item == messages["schema"]["pattern"] == bodies.ITEM_ID
    feedback = doc["components"]["schemas"]["Feedback"]["properties"]
    assert feedback["milestone"]["anyOf"][0]["maximum"] == MAX_MILESTONES - 1
    assert feedback["attachments"]["maxItems"] == MAX_ATTACHMENTS
    assert doc["components"]["schemas"]["Withdraw"]["properties"]["reason"]["maxLength"] == (
        MAX_REASON
    )


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\A[A-Za-z0-9_.-]{1,66}-[0-9]{5,20}\Z"))
def test_item_ids_of_the_document_and_the_protocol_agree(item: str) -> None:
    assert bool(re.search(bodies.ITEM_ID, item)) == bool(ITEM_RE.match(item))


# -- the bounds are the protocol's ---------------------------------------------------------


def test_a_milestone_index_past_the_protocols_bound_is_refused() -> None:
    report = {"text": "进展", "progress": 10}
    reason, field, detail = refusal({**report, "milestone": MAX_MILESTONES}, bodies.Feedback)
    assert (reason, field) == ("bad_field", "milestone")
    assert str(MAX_MILESTONES - 1) in detail
    with pytest.raises(ProtocolError):
        Feedback(**HEADER, text="进展", progress=10, attachments=(), milestone=MAX_MILESTONES)
    body = decode({**report, "milestone": MAX_MILESTONES - 1}, bodies.Feedback)
    Feedback(**HEADER, text=body.text, progress=body.progress, attachments=(),
             milestone=body.milestone)


def test_reasons_are_as_long_as_the_protocol_allows() -> None:
    assert refusal({"reason": "x" * (MAX_REASON + 1)}, bodies.Withdraw)[:2] == (
        "bad_field", "reason"
    )
    body = decode({"reason": "x" * MAX_REASON}, bodies.Withdraw)
    Withdrawn(**HEADER, reason=body.reason)
    for kind in (bodies.Reject, bodies.Approve):
        assert refusal({"reason": "x" * (MAX_REASON + 1)}, kind)[1] == "reason"
    assert refusal({"outcome": "return", "reason": "x" * (MAX_REASON + 1)}, bodies.Review)[1] == (
        "reason"
    )


def test_units_and_attachments_are_bounded_and_distinct_as_in_the_protocol() -> None:
    good = {"title": "t", "assignee": "1401"}
    many = [f"u{i}" for i in range(MAX_UNITS + 1)]
    assert refusal({**good, "co_units": many}, bodies.Assignment)[1] == "co_units"
    assert decode({**good, "co_units": many[:-1]}, bodies.Assignment).co_units == tuple(many[:-1])
    assert refusal({**good, "co_units": ["a", "b", "a"]}, bodies.Assignment)[1] == "co_units[2]"
    assert refusal({**good, "co_units": ["a b"]}, bodies.Assignment)[1] == "co_units[0]"
    digest = "ab" * 32
    report = {"text": "x", "progress": 1}
    assert refusal({**report, "attachments": [digest, digest]}, bodies.Feedback)[1] == (
        "attachments[1]"
    )
    assert refusal({**report, "attachments": [digest] * (MAX_ATTACHMENTS + 1)},
                   bodies.Feedback)[1] == "attachments"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.characters(max_codepoint=0x2030),
               max_size=12))
def test_unit_codes_are_the_protocols(code: str) -> None:
    accepted = _accepts({"title": "t", "assignee": "1401", "lead_unit": code},
                        bodies.Assignment)
    assert accepted == bool(UNIT_RE.match(code.strip())), repr(code)


_chars = st.characters(max_codepoint=0x3000) | st.characters(codec="utf-8")


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=_chars, max_size=8))
def test_titles_are_accepted_exactly_when_the_protocol_accepts_them(title: str) -> None:
    def protocol(value: str) -> bool:
        try:
            Milestone(title=value, due=1)
        except ProtocolError:
            return False
        return True

    stripped = title.strip()
    assert _accepts({"title": title, "assignee": "1401"}, bodies.Assignment) == protocol(stripped)
    plan = {"milestones": [{"title": title, "due": 1}]}
    assert _accepts(plan, bodies.Plan) == protocol(stripped)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=_chars, max_size=8))
def test_free_text_is_accepted_exactly_when_the_protocol_accepts_it(text: str) -> None:
    def protocol(value: str) -> bool:
        try:
            Deployed(**HEADER, note=value)
        except ProtocolError:
            return False
        return True

    stripped = text.strip()
    expected = protocol(stripped) and stripped != ""  # a note is never empty
    assert _accepts({"note": text}, bodies.Deploy) == expected


def _accepts(value: dict[str, Any], kind: type[bodies.Body]) -> bool:
    try:
        decode(value, kind)
    except NodeError:
        return False
    return True


def test_lengths_are_the_protocols() -> None:
    good = {"title": "t", "assignee": "1401"}
    assert decode({**good, "title": "题" * MAX_TITLE}, bodies.Assignment)
    assert refusal({**good, "title": "题" * (MAX_TITLE + 1)}, bodies.Assignment)[1] == "title"
    assert decode({**good, "description": "x" * MAX_TEXT}, bodies.Assignment)
    assert refusal({**good, "description": "x" * (MAX_TEXT + 1)}, bodies.Assignment)[1] == (
        "description"
    )


# -- the rules JSON Schema cannot state -----------------------------------------------------


def test_null_is_absent_strings_are_stripped_unknown_fields_are_named() -> None:
    body = decode({"title": "  整治  ", "assignee": " 1401 ", "lead_unit": None,
                   "co_units": [" a "]}, bodies.Assignment)
    assert (body.title, body.assignee, body.lead_unit, body.co_units) == (
        "整治", "1401", None, ("a",)
    )
    assert refusal({"title": None, "assignee": "1401"}, bodies.Assignment)[:2] == (
        "missing_field", "title"
    )
    assert refusal({"title": "t", "assignee": "1401", "colour": None}, bodies.Assignment)[:2] == (
        "unknown_field", "colour"
    )
    assert refusal({"parts": [{"title": "t", "assignee": "1401", "x`y - at `$`": 1}]},
                   bodies.Decompose)[:2] == ("unknown_field", "parts[0].x`y - at `$`")
    assert decode({"name": "clerk", "password": " secret "}, bodies.Login).password == (
        " secret "
    )


def test_rules_across_fields() -> None:
    good = {"title": "t", "assignee": "1401"}
    assert refusal({**good, "class": "explicit"}, bodies.Assignment)[:2] == ("bad_field", "class")
    assert refusal({**good, "class": "major", "deadline": "2099-01-01"},
                   bodies.Assignment)[:2] == ("bad_field", "class")
    assert decode({**good, "class": "explicit", "deadline": "2099-01-01"}, bodies.Assignment)
    part = {"title": "t", "assignee": "1401", "deadline": "2099-01-01"}
    assert refusal({"parts": [part, {**part, "class": "inherit"}]}, bodies.Decompose)[:2] == (
        "bad_field", "parts[1].class"
    )
    assert refusal({"outcome": "return"}, bodies.Review)[:2] == ("missing_field", "reason")
    assert refusal({"outcome": "return", "reason": " "}, bodies.Review)[:2] == (
        "bad_field", "reason"
    )
    assert decode({"outcome": "accept"}, bodies.Review).reason is None
    assert refusal({}, bodies.Update)[:2] == ("missing_field", "body")
    assert refusal({}, bodies.Contact)[:2] == ("missing_field", "phone")
    assert refusal({"board": 3, **good}, bodies.Assignment)[:2] == ("unknown_board", "board")


# -- one China time zone -------------------------------------------------------------------


def test_times_are_read_and_written_in_the_protocols_china_time() -> None:
    assert iso(0) == "1970-01-01T08:00:00+08:00"
    day = parse_moment("2026-12-01", "deadline")
    assert iso(day) == "2026-12-01T23:59:59+08:00"
    assert parse_moment("2026-12-01T18:00", "deadline") == parse_moment(
        "2026-12-01T10:00:00+00:00", "deadline"
    )
    assert CHINA_TZ.utcoffset(None).total_seconds() == 8 * 3600  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("what", "pattern", "home"),
    [
        ("the China time zone", r"timedelta\(hours=8\)", "protocol/rules.py"),
        ("the item-id pattern", r"\{6,19\}", "protocol/events.py"),
        ("a set of control characters", r"\\x0e-\\x1f|\\x00-\\x1f", "protocol/events.py"),
    ],
)
def test_each_rule_is_written_in_one_place(what: str, pattern: str, home: str) -> None:
    found = sorted(
        str(path.relative_to(ROOT))
        for top in ("protocol", "hierarchy", "node")
        for path in (ROOT / top).rglob("*.py")
        # A migration is frozen history: it imports no live code, so keeps its own copy.
        if "migrations" not in path.parts
        and re.search(pattern, path.read_text(encoding="utf-8"))
    )
    assert found == [home], f"{what} is written in {found}"
