"""The compiled fast path (protocol/fastpath.py) of decode_event and envelope.parse.

What must hold: it takes every event and envelope an honest node makes (or it
saves nothing), and whatever it takes, the strict path takes too and makes the
same object of (or it is a hole). Anything else goes to the strict path, which
gives the reasons: so decode_event and parse take and refuse exactly what the
strict path does. Each field is tried with values at and around every edge of
its check, one field at a time over every kind, and then several at once.

The two paths are compared on what they answer, through their public names
(``events.EVENT_PATHS``, ``envelope.ENVELOPE_PATHS``), not through how either
is written: the fast path's msgspec types and the strict path's checks are two
specs of every message, and these tests are what holds them equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec, envelope, events
from protocol.envelope import ENVELOPE_PATHS
from protocol.errors import ProtocolError
from protocol.events import (
    EVENT_PATHS,
    EVENT_TYPES,
    MAX_COUNTER,
    MAX_MS,
    Assigned,
    Closed,
    Deadlines,
    Deployed,
    Event,
    ExtensionDecided,
    ExtensionRequested,
    Feedback,
    FileRef,
    Instructed,
    Milestone,
    PlanDecided,
    PlanSubmitted,
    Resolved,
    Reviewed,
    Updated,
    Urged,
    Withdrawn,
    decode_event,
    encode_event,
)
from protocol.keys import SigningKey
from tests.test_events import events as valid_events

VECTORS = Path(__file__).parent / "vectors"
KEY = SigningKey.from_seed(b"\x09" * 32)


def _relaxed(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


def _answer(decode: Any, type_: str, body: bytes) -> tuple[Any, ...]:
    try:
        event = decode(type_, body)
    except ProtocolError as exc:
        return ("refused", exc.reason, exc.detail)
    # encode_event as well as ==: True == 1, but their encodings differ.
    return ("event", event, encode_event(event))


def _strict(type_: str, body: bytes) -> tuple[Any, ...]:
    return _answer(EVENT_PATHS.strict, type_, body)


def agree(type_: str, body: bytes) -> bool:
    """Whether the fast path took ``body``. Fails the test if decode_event answers
    other than the strict path, or if the fast path took what the strict path
    refuses or makes another event of."""
    expected = _strict(type_, body)
    assert _answer(decode_event, type_, body) == expected
    fast = EVENT_PATHS.fast(type_, body)
    if fast is None:
        return False
    assert expected == ("event", fast, encode_event(fast))
    assert encode_event(fast) == (type_, body)
    return True


# -- every honest event takes it ---------------------------------------------------------------


@_relaxed(300)
@given(valid_events)
def test_every_valid_event_takes_the_fast_path(event: Event) -> None:
    type_, body = encode_event(event)
    assert EVENT_PATHS.fast(type_, body) == event
    assert agree(type_, body)


def test_the_vectors_take_the_fast_path() -> None:
    history = json.loads((VECTORS / "item_history.json").read_text(encoding="utf-8"))
    for entry in history["events"]:
        raw = bytes.fromhex(entry["envelope"])
        env = ENVELOPE_PATHS.fast(raw)
        assert env is not None and env == ENVELOPE_PATHS.strict(raw)
        assert agree(env.type, env.body)
    signed = json.loads((VECTORS / "envelope.json").read_text(encoding="utf-8"))
    for item in [signed["single"], *signed["batch"]]:
        raw = bytes.fromhex(item["raw"])
        env = ENVELOPE_PATHS.fast(raw)
        assert env is not None and env == ENVELOPE_PATHS.strict(raw)


# -- values at the edges, one field at a time -------------------------------------------------

_STRINGS = [
    "", " ", "\u3000", "\x1c", "\x85", "a", "a\tb", "a\nb", "a\rb", "a\x0bb", "a\x0cb",
    "a\x00", "a\x08", "a\x0e", "a\x1f", "a\x7f", "a\x80", "a\x9f", "a\xa0", "a\u2028",
    "a\u2029", "\t", "\n x", "中文", "中" * 200, "中" * 201, "x" * 200, "x" * 201,
    "𝄞" * 200, "𝄞" * 201, " " * 200, "x" * 2000, "x" * 2001, "中" * 2001, "x" * 20000,
    "x" * 20001, "中" * 20000, "𝄞" * 20001,
    # ids, units and codes
    "A", "a" * 64, "a" * 65, "-a", ".a", "_a", "a-b", "a.b_c", "a b", "a/b", "é",
    "daily", "Daily", "key_task", "k" * 32, "k" * 33, "a-", "14", "1401",
    # item ids
    "14-000001", "14-000000", "14-1", "14-00001", "14-0000001", "14-1000000",
    "a-b-000001", "a" * 64 + "-000001", "a" * 65 + "-000001", f"14-{MAX_COUNTER}",
    f"14-{MAX_COUNTER + 1}", "14-" + "9" * 20, "14-000001\n", "-000001",
    # choices
    "general", "major", "explicit", "natural", "working", "accept", "return", "General",
    "minor", "major ", "excellent", "qualified", "unqualified", "Excellent", "优秀",
    # event ids
    "ab" * 32, "AB" * 32, "ab" * 31 + "a", "ab" * 33, "ab" * 31 + "ag", "ab" * 31 + "a\n",
    "ab" * 31 + "中",
]
_INTS = [
    -1, 0, 1, 5, 63, 64, 99, 100, 101, MAX_MS, MAX_MS + 1, MAX_COUNTER, MAX_COUNTER + 1,
    2**64 - 1, -(2**63), True, False,
]
_DIGEST = b"\x01" * 32
_MILESTONE = {"title": "m", "due": 5}
_FILE = {"digest": _DIGEST, "name": "照片.jpg", "size": 5, "type": "image/jpeg"}
_OTHERS: list[object] = [
    None, b"", b"\x00" * 31, _DIGEST, b"\x00" * 33, 1.5, [], {},
    ["a"], ["a", "a"], ["a", "b"], ["a", 1], ["a b"], [f"u{i}" for i in range(64)],
    [f"u{i}" for i in range(65)], [_DIGEST], [_DIGEST, _DIGEST], [_DIGEST, b"\x02" * 32],
    [b"\x00" * 31], [bytes([i]) * 32 for i in range(32)], [bytes([i]) * 32 for i in range(33)],
    [_MILESTONE], [_MILESTONE, {"title": "n", "due": 6}], [_MILESTONE, _MILESTONE],
    [{"title": "n", "due": 6}, _MILESTONE], [{"title": " ", "due": 5}],
    [{"title": "a\tb", "due": 5}], [{"title": "m", "due": -1}], [{"title": "m"}],
    [{"title": "m", "due": 5, "x": 1}], [{"title": "m", "due": MAX_MS + 1}],
    [{"title": "m", "due": True}], [{"title": f"m{i}", "due": i} for i in range(64)],
    [{"title": f"m{i}", "due": i} for i in range(65)], [[_MILESTONE]],
    {"deploy": 1, "feedback": 2, "resolve": 3}, {"deploy": 3, "feedback": 3, "resolve": 3},
    {"deploy": 2, "feedback": 1, "resolve": 3}, {"deploy": 1, "feedback": 3, "resolve": 2},
    {"deploy": 1, "feedback": 2}, {"deploy": 1, "feedback": 2, "resolve": 3, "x": 4},
    {"deploy": -1, "feedback": 2, "resolve": 3}, {"deploy": 1, "feedback": 2, "resolve": 1.0},
    {"deploy": 1, "feedback": 2, "resolve": MAX_MS + 1}, {"deploy": 0, "feedback": 0, "resolve": 0},
    # files
    [_FILE], [_FILE, _FILE], [{**_FILE, "digest": b"\x05" * 32}],
    [{**_FILE, "digest": b"\x05" * 32}, _FILE], [{**_FILE, "name": ""}],
    [{**_FILE, "name": " "}], [{**_FILE, "name": "a\nb"}], [{**_FILE, "name": "x" * 201}],
    [{**_FILE, "size": -1}], [{**_FILE, "size": MAX_MS + 1}], [{**_FILE, "type": "Image/png"}],
    [{**_FILE, "type": "image"}], [{**_FILE, "type": "image/png; q=1"}], [{**_FILE, "x": 1}],
    [{k: v for k, v in _FILE.items() if k != "type"}],
]
EDGES: list[object] = [*_STRINGS, *_INTS, *_OTHERS]


_DEADLINES = Deadlines(deploy=2_000, feedback=3_000, resolve=4_000)
_EVENT_ID = "ab" * 32
_HEAD: dict[str, Any] = {"item": "14-000007", "seq": 9, "lamport": 4, "at": 1_000}
_UP = {**_HEAD, "origin": "140105001", "to": "14"}
_DOWN = {**_HEAD, "origin": "14", "to": "140105001"}
SAMPLES: list[Event] = [
    Assigned(
        item="14-000007", origin="14", seq=7, lamport=1, at=1_000, to="140105001",
        title="修路", description="第一段\n第二段", board="daily", source="office",
        item_class="major", assigner="14", assignee="140105001", assignee_unit="gov",
        lead_unit="roads", co_units=("water", "power"), parent_item="14-000003",
        calendar="working", deadlines=_DEADLINES, cascade="township",
    ),
    Updated(
        **_DOWN, title="新", description="d", deadlines=_DEADLINES, lead_unit="roads",
        co_units=("water",), assignee_unit="gov",
    ),
    Withdrawn(**_DOWN, reason="不再需要"),
    Deployed(**_UP, note="已部署"),
    Feedback(
        **_UP, text="进展", progress=40, attachments=(b"\x05" * 32,), milestone=0,
        files=(FileRef(digest=b"\x05" * 32, name="照片.jpg", size=1024, type="image/jpeg"),),
        answers=_EVENT_ID, monthly=True,
    ),
    PlanSubmitted(
        **_UP, note="计划",
        milestones=(Milestone(title="一", due=5_000), Milestone(title="二", due=6_000)),
    ),
    PlanDecided(**_DOWN, approved=False, reason="太慢"),
    Resolved(**_UP, text="已解决", attachments=(), files=()),
    Reviewed(**_DOWN, outcome="accept", reason="提前完成且质量好", grade="excellent"),
    Closed(**_DOWN, note="销号"),
    Urged(**_DOWN, author="省督查室", text="请加快"),
    Instructed(**_DOWN, author="王副省长", text="务必按期完成"),
    ExtensionRequested(**_UP, reason="雨季", deadline=5_000, progress="完成一半"),
    ExtensionDecided(**_DOWN, request=_EVENT_ID, approved=False, reason="不同意"),
]
"""One event of each kind, with every optional field set."""


def _body(event: Event) -> dict[str, Any]:
    value = codec.decode(encode_event(event)[1])
    assert isinstance(value, dict)
    return value


WIRES: dict[type, list[str]] = {type(e): sorted(_body(e)) for e in SAMPLES}
"""The wire names of every field of each kind, as its sample's body names them."""


def test_there_is_a_sample_of_every_kind() -> None:
    assert {type(e) for e in SAMPLES} == set(EVENT_TYPES.values())
    for event in SAMPLES:
        assert agree(*encode_event(event))
        # Every field is in the sample's body: the tests below reach each one.
        assert len(WIRES[type(event)]) == len(events.field_kinds(type(event)))


def _set(body: dict[str, Any], wire: str, value: object) -> dict[str, Any]:
    """``body`` with field ``wire`` set to ``value``, or dropped for ``...``."""
    if value is ...:
        body.pop(wire, None)
    else:
        body[wire] = value
    return body


def _canonical(body: dict[str, Any]) -> bytes:
    try:
        return codec.encode(body)
    except ProtocolError:  # a float: codec.encode refuses it, so encode it plainly
        return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.TYPE)
def test_each_field_at_its_edges(event: Event) -> None:
    """Every field of every kind, set to each edge value (or dropped), encoded canonically:
    the fast path takes only what the strict path takes, and makes the same event."""
    base = _body(event)
    wires = WIRES[type(event)]
    taken = refused = 0
    for wire in wires:
        for value in [*EDGES, ...]:
            raw = _canonical(_set(dict(base), wire, value))
            if agree(event.TYPE, raw):
                taken += 1
            elif _strict(event.TYPE, raw)[0] == "refused":
                refused += 1
    # The edges hold both sides of every check, so both outcomes come up for each kind.
    assert taken > len(wires) and refused > len(wires)


def test_the_edges_reach_every_check_the_types_leave_out() -> None:
    """Each check the fast path runs itself (events._AFTER, and each kind's _check)
    refuses one of the edge bodies above: without it, the test above would fail."""
    assigned = _body(SAMPLES[0])

    def taken(**changes: object) -> bool:
        body = codec.encode({**assigned, **changes})
        return EVENT_PATHS.fast("item.assigned", body) is not None

    assert taken()
    assert not taken(title=" ")  # _AFTER title
    assert not taken(co_units=["a", "a"])  # _AFTER units
    assert not taken(parent_item="14-000000")  # _AFTER item
    assert not taken(deadlines={"deploy": MAX_MS, "feedback": 2, "resolve": MAX_MS})  # _AFTER
    assert not taken(assigner="someone-else")  # Assigned._check
    # The string patterns msgspec leaves to _AFTER; each refused value is refused
    # again (only matches are remembered), and a non-printable allowed text is taken.
    for _ in range(2):
        assert not taken(to="a b", assignee="a b")  # _AFTER node
        assert not taken(board="Daily")  # _AFTER code
        assert not taken(lead_unit="a b")  # _AFTER unit
        assert not taken(co_units=["water", "a b"])  # _AFTER units, each member
        assert not taken(description="a\x00")  # _AFTER text
        assert not taken(title="a\u2028")  # _AFTER title
    assert taken(to="140105002", assignee="140105002")
    assert taken(description="第一段\n第二段\u3000", title="修\u3000路")
    reviewed = _body(next(e for e in SAMPLES if isinstance(e, Reviewed)))
    for changes, fast in (
        ({}, True),
        ({"grade": "unqualified"}, True),
        ({"outcome": "return"}, False),  # Reviewed._check: a return is not graded
        ({"outcome": "return", "grade": ...}, True),
        ({"grade": "Excellent"}, False),
    ):
        body = codec.encode(
            {k: v for k, v in {**reviewed, **changes}.items() if v is not ...}
        )
        assert (EVENT_PATHS.fast("item.reviewed", body) is not None) is fast
        assert agree("item.reviewed", body) is fast
    decided = _body(SAMPLES[-1])
    for request, fast in (("ab" * 32, True), ("AB" * 32, False), ("ab" * 31 + "ag", False)):
        body = codec.encode({**decided, "request": request})
        assert (EVENT_PATHS.fast("item.extension_decided", body) is not None) is fast  # _AFTER
        assert agree("item.extension_decided", body) is fast


# -- several faults, and other encodings of the same value ------------------------------------


@_relaxed(300)
@given(valid_events, st.data())
def test_several_edges_at_once(event: Event, data: st.DataObject) -> None:
    body = _body(event)
    names = WIRES[type(event)]
    for _ in range(data.draw(st.integers(1, 3))):
        value = data.draw(st.sampled_from([*EDGES, ...]))
        body = _set(body, data.draw(st.sampled_from(names)), value)
    agree(event.TYPE, _canonical(body))


def _map(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """A msgpack map of already encoded (key, value) pairs, in the order given."""
    n = len(pairs)
    head = bytes([0x80 | n]) if n < 16 else b"\xde" + n.to_bytes(2, "big")
    return head + b"".join(k + v for k, v in pairs)


def _pairs(value: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    return [(codec.encode(k), codec.encode(v)) for k, v in sorted(value.items())]


@_relaxed(150)
@given(valid_events, st.data())
def test_other_encodings_go_to_the_strict_path(event: Event, data: st.DataObject) -> None:
    """The same value encoded otherwise than Duban encodes it (keys in another order, a
    key twice, a nil for an absent field, a wider integer, a trailing byte): the fast
    path leaves it to the strict path, which takes or refuses it as before."""
    type_, body = encode_event(event)
    value = _body(event)
    pairs = _pairs(value)
    assert _map(pairs) == body
    i = data.draw(st.integers(0, len(pairs) - 1))
    seq = codec.encode("seq")
    # "seq" as a uint64 although it fits in fewer bytes (made small enough to fit).
    wide = [(k, b"\xcf" + (value["seq"] % 2**32).to_bytes(8, "big") if k == seq else v)
            for k, v in pairs]
    absent = [w for w in WIRES[type(event)] if w not in value]  # optional ones
    variants = [
        _map(pairs[::-1]),
        _map([*pairs[: i + 1], pairs[i], *pairs[i + 1 :]]),
        _map(wide),
        body + b"\x00",
    ]
    if absent:
        variants.append(_map(_pairs({**value, absent[0]: None})))
    for raw in variants:
        assert raw != body
        assert EVENT_PATHS.fast(type_, raw) is None
        assert _answer(decode_event, type_, raw) == _strict(type_, raw)


# -- envelopes ---------------------------------------------------------------------------------


def _envelope_answer(parse: Any, raw: bytes) -> tuple[Any, ...]:
    try:
        return ("envelope", parse(raw))
    except ProtocolError as exc:
        return ("refused", exc.reason, exc.detail)


def _strict_envelope(raw: bytes) -> tuple[Any, ...]:
    return _envelope_answer(ENVELOPE_PATHS.strict, raw)


def _envelope_edges() -> list[dict[str, object]]:
    batch = envelope.sign_batch(KEY, [("item.deployed", bytes([n]) * 9) for n in range(5)])
    good = codec.decode(batch[3].raw)
    single = codec.decode(envelope.sign(KEY, "item.deployed", b"x").raw)
    assert isinstance(good, dict) and isinstance(single, dict)
    proof = good["m"]
    assert isinstance(proof, dict)
    path = proof["p"]
    assert isinstance(path, list)
    edges: dict[str, list[object]] = {
        "v": [1, 0, 2, True, "1", None, ...],
        "t": ["item.deployed", "", "a", "a" * 64, "a" * 65, "T.x", "1x", "a b", b"t", None, ...],
        "b": [b"", b"x" * (1 << 20), b"x" * ((1 << 20) + 1), "text", None, ...],
        "k": [b"k" * 16, b"k" * 15, b"k" * 17, "k" * 16, None, ...],
        "s": [b"s" * 64, b"s" * 63, b"s" * 65, None, ...],
        "m": [
            {**proof, "i": 0}, {**proof, "i": 4}, {**proof, "i": 5}, {**proof, "i": -1},
            {**proof, "n": 1}, {**proof, "n": 2}, {**proof, "n": 1 << 16},
            {**proof, "n": (1 << 16) + 1}, {**proof, "i": True}, {**proof, "p": []},
            {**proof, "p": [b"h" * 32] * 17}, {**proof, "p": [b"h" * 32] * 18},
            {**proof, "p": [b"h" * 31]}, {**proof, "p": ["h" * 32]}, {"i": 0, "n": 2},
            {**proof, "x": 1}, [1], None, ...,
        ],
        "x": [1, ...],
    }
    out: list[dict[str, object]] = [good, single]
    for base in (good, single):
        for key, values in edges.items():
            for value in values:
                changed = dict(base)
                if value is ...:
                    changed.pop(key, None)
                else:
                    changed[key] = value
                out.append(changed)
    return out


def test_envelopes_at_their_edges() -> None:
    taken = 0
    for value in _envelope_edges():
        raw = msgpack.packb(dict(sorted(value.items())), use_bin_type=True)
        assert _envelope_answer(envelope.parse, raw) == _strict_envelope(raw)
        fast = ENVELOPE_PATHS.fast(raw)
        if fast is not None:
            taken += 1
            assert _strict_envelope(raw) == ("envelope", fast)
            assert fast.raw == raw and type(fast.raw) is bytes
    assert taken > 10


@_relaxed(300)
@given(st.data())
def test_mutated_envelopes_agree(data: st.DataObject) -> None:
    envs = envelope.sign_batch(KEY, [("item.deployed", bytes([n])) for n in range(3)])
    raw = bytearray(data.draw(st.sampled_from(envs)).raw)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] ^= data.draw(st.integers(1, 255))
    assert _envelope_answer(envelope.parse, bytes(raw)) == _strict_envelope(bytes(raw))
    fast = ENVELOPE_PATHS.fast(bytes(raw))
    if fast is not None:
        assert _strict_envelope(bytes(raw)) == ("envelope", fast)


def test_a_bytearray_envelope_gives_bytes() -> None:
    env = envelope.sign(KEY, "item.deployed", b"x")
    for raw in (bytearray(env.raw), memoryview(env.raw)):
        parsed = envelope.parse(raw)  # type: ignore[arg-type]
        assert parsed == env and type(parsed.raw) is bytes
