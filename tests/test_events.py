"""Item events: round trips for every kind, strict refusals, and the fuzz promise
that decoding any bytes either gives an event or raises ProtocolError."""

from __future__ import annotations

import dataclasses
import string

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec, errors
from protocol.errors import ProtocolError
from protocol.events import (
    BOARDS,
    EVENT_TYPES,
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
    make_item_id,
    parse_item_id,
)

# -- strategies ------------------------------------------------------------------------------

_ID_HEAD = string.ascii_letters + string.digits
nodes = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(_ID_HEAD),
    st.text(alphabet=_ID_HEAD + "_.-", max_size=12),
)
units = nodes
codes = st.text(alphabet=string.ascii_lowercase + string.digits + "_", min_size=1, max_size=32)
counters = st.integers(1, 2**63 - 1)
times = st.integers(0, MAX_MS)
_chars = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))
titles = st.text(alphabet=_chars, min_size=1, max_size=40).filter(lambda s: s.strip() != "")
texts = st.text(alphabet=st.one_of(_chars, st.sampled_from("\n\t\r")), max_size=60)
non_blank_texts = texts.filter(lambda s: s.strip() != "")
digests = st.lists(st.binary(min_size=32, max_size=32), max_size=4, unique=True).map(tuple)
unit_lists = st.lists(units, max_size=4, unique=True).map(tuple)


@st.composite
def deadlines(draw: st.DrawFn, after: int = 0) -> Deadlines:
    a, b, c = sorted(draw(st.lists(st.integers(after + 1, MAX_MS), min_size=3, max_size=3)))
    return Deadlines(deploy=a, feedback=b, resolve=c)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, object]:
    assigner = draw(nodes)
    return {
        "item": make_item_id(assigner, draw(counters)),
        "origin": draw(nodes),
        "seq": draw(counters),
        "lamport": draw(counters),
        "at": draw(times),
        "to": draw(nodes),
    }


@st.composite
def assigned(draw: st.DrawFn) -> Assigned:
    assigner = draw(nodes)
    seq = draw(counters)
    at = draw(st.integers(0, MAX_MS - 10))
    assignee = draw(st.one_of(st.just(assigner), nodes))
    unit = draw(units) if assignee == assigner else draw(st.none() | units)
    return Assigned(
        item=make_item_id(assigner, seq),
        origin=assigner,
        seq=seq,
        lamport=draw(counters),
        at=at,
        to=assignee,
        title=draw(titles),
        description=draw(texts),
        board=draw(st.sampled_from(BOARDS) | codes),
        source=draw(codes),
        item_class=draw(st.sampled_from(("general", "major", "explicit"))),
        assigner=assigner,
        assignee=assignee,
        assignee_unit=unit,
        lead_unit=draw(st.none() | units),
        co_units=draw(unit_lists),
        parent_item=draw(
            st.none()
            | st.builds(make_item_id, nodes, counters).filter(
                lambda p: p != f"{assigner}-{seq:06d}"
            )
        ),
        calendar=draw(st.sampled_from(("natural", "working"))),
        deadlines=draw(deadlines(after=at)),
        cascade=draw(st.none() | codes),
    )


@st.composite
def updated(draw: st.DrawFn) -> Updated:
    changes = {
        "title": draw(st.none() | titles),
        "description": draw(st.none() | texts),
        "deadlines": draw(st.none() | deadlines()),
        "lead_unit": draw(st.none() | units),
        "co_units": draw(st.none() | unit_lists),
        "assignee_unit": draw(st.none() | units),
    }
    if all(v is None for v in changes.values()):
        changes["title"] = draw(titles)
    return Updated(**draw(headers()), **changes)  # type: ignore[arg-type]


@st.composite
def milestones(draw: st.DrawFn) -> tuple[Milestone, ...]:
    dues = sorted(draw(st.lists(times, min_size=1, max_size=5, unique=True)))
    return tuple(Milestone(title=draw(titles), due=due) for due in dues)


media_types = st.sampled_from(("image/jpeg", "application/pdf", "text/plain", "a/b", "x+y.z/1-2"))


@st.composite
def reports(draw: st.DrawFn, cls: type, **fields: st.SearchStrategy[object]) -> Event:
    """A Feedback or Resolved: its attachments, named in ``files`` or not."""
    attachments = draw(digests)
    files = draw(
        st.none()
        | st.tuples(*(
            st.builds(FileRef, digest=st.just(d), name=titles, size=times, type=media_types)
            for d in attachments
        ))
    )
    values = {k: draw(v) for k, v in fields.items()}
    return cls(**draw(headers()), attachments=attachments, files=files, **values)  # type: ignore[no-any-return]


def _kind(cls: type, **fields: st.SearchStrategy[object]) -> st.SearchStrategy[Event]:
    return headers().flatmap(
        lambda h: st.builds(cls, **{k: st.just(v) for k, v in h.items()}, **fields)
    )


event_ids = st.binary(min_size=32, max_size=32).map(bytes.hex)


@st.composite
def extension_requests(draw: st.DrawFn) -> ExtensionRequested:
    header = draw(headers())
    at = min(int(header["at"]), MAX_MS - 1)  # type: ignore[call-overload]
    return ExtensionRequested(
        **{**header, "at": at},  # type: ignore[arg-type]
        reason=draw(short_texts),
        deadline=draw(st.integers(at + 1, MAX_MS)),
        progress=draw(non_blank_texts),
    )


short_texts = non_blank_texts.filter(lambda s: len(s) <= 2000)

KINDS: dict[type, st.SearchStrategy[Event]] = {
    Assigned: assigned(),
    Updated: updated(),
    Withdrawn: _kind(Withdrawn, reason=non_blank_texts),
    Deployed: _kind(Deployed, note=texts),
    Feedback: reports(
        Feedback,
        text=non_blank_texts,
        progress=st.integers(0, 100),
        milestone=st.none() | st.integers(0, 63),
        answers=st.none() | event_ids,
    ),
    PlanSubmitted: _kind(PlanSubmitted, milestones=milestones(), note=texts),
    PlanDecided: _kind(PlanDecided, approved=st.just(True), reason=texts)
    | _kind(PlanDecided, approved=st.just(False), reason=non_blank_texts),
    Resolved: reports(Resolved, text=non_blank_texts),
    Reviewed: _kind(Reviewed, outcome=st.just("accept"), reason=texts)
    | _kind(Reviewed, outcome=st.just("return"), reason=non_blank_texts),
    Closed: _kind(Closed, note=texts),
    Urged: _kind(Urged, author=titles, text=short_texts),
    Instructed: _kind(Instructed, author=titles, text=non_blank_texts),
    ExtensionRequested: extension_requests(),
    ExtensionDecided: _kind(ExtensionDecided, request=event_ids, approved=st.just(True),
                            reason=texts)
    | _kind(ExtensionDecided, request=event_ids, approved=st.just(False),
            reason=short_texts),
}
"""A strategy of valid events for every kind."""
events = st.one_of(*KINDS.values())

_fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- round trips -----------------------------------------------------------------------------


def test_every_kind_has_a_strategy() -> None:
    assert set(KINDS) == set(EVENT_TYPES.values())


@pytest.mark.parametrize("kind", sorted(KINDS, key=lambda cls: cls.__name__))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip(kind: type, data: st.DataObject) -> None:
    event = data.draw(KINDS[kind])
    assert type(event) is kind
    type_, body = encode_event(event)
    assert type_ == event.TYPE
    decoded = decode_event(type_, body)
    assert decoded == event
    assert encode_event(decoded) == (type_, body)


def test_wire_names() -> None:
    ev = Assigned(
        item="14-000123",
        origin="14",
        seq=123,
        lamport=1,
        at=1_000,
        to="140105001",
        title="t",
        description="",
        board="daily",
        source="plenary",
        item_class="major",
        assigner="14",
        assignee="140105001",
        co_units=(),
        calendar="working",
        deadlines=Deadlines(deploy=2_000, feedback=3_000, resolve=4_000),
    )
    type_, body = encode_event(ev)
    value = codec.decode(body)
    assert type_ == "item.assigned"
    assert isinstance(value, dict)
    assert value["class"] == "major"
    assert "item_class" not in value
    assert "lead_unit" not in value  # absent optional fields are omitted
    assert value["deadlines"] == {"deploy": 2_000, "feedback": 3_000, "resolve": 4_000}


# -- strict refusals -------------------------------------------------------------------------


def _body(event: Event) -> dict[str, object]:
    value = codec.decode(encode_event(event)[1])
    assert isinstance(value, dict)
    return value


def _reason(type_: str, body: object) -> str:
    with pytest.raises(ProtocolError) as info:
        decode_event(type_, msgpack.packb(body, use_bin_type=True))
    return info.value.reason


DEPLOYED = Deployed(item="14-000001", origin="1401", seq=5, lamport=3, at=10, to="14", note="ok")


@pytest.mark.parametrize(
    ("change", "reason", "detail"),
    [
        ({"extra": 1}, errors.UNKNOWN_FIELD, "extra"),
        ({"seq": 0}, errors.BAD_FIELD, "seq"),
        ({"seq": True}, errors.BAD_FIELD, "seq"),
        ({"lamport": -1}, errors.BAD_FIELD, "lamport"),
        ({"at": MAX_MS + 1}, errors.BAD_FIELD, "at"),
        ({"item": "14-1"}, errors.BAD_FIELD, "item"),
        ({"item": "14-0000001"}, errors.BAD_FIELD, "item"),
        ({"item": "14-000000"}, errors.BAD_FIELD, "item"),
        ({"origin": ""}, errors.BAD_FIELD, "origin"),
        ({"origin": "a b"}, errors.BAD_FIELD, "origin"),
        ({"to": None}, errors.BAD_FIELD, "to"),
        ({"note": "a\x00b"}, errors.BAD_FIELD, "note"),
        ({"note": b"bytes"}, errors.BAD_FIELD, "note"),
    ],
)
def test_header_refusals(change: dict[str, object], reason: str, detail: str) -> None:
    body = {**_body(DEPLOYED), **change}
    with pytest.raises(ProtocolError) as info:
        decode_event("item.deployed", msgpack.packb(body, use_bin_type=True))
    assert info.value.reason == reason
    assert detail in info.value.detail


def test_missing_field_is_named() -> None:
    body = _body(DEPLOYED)
    del body["lamport"]
    with pytest.raises(ProtocolError) as info:
        decode_event("item.deployed", msgpack.packb(body))
    assert (info.value.reason, info.value.detail) == (errors.MISSING_FIELD, "lamport")


def test_unknown_kind_and_non_map() -> None:
    assert _reason("item.exploded", {}) == errors.UNKNOWN_KIND
    assert _reason("item.deployed", [1, 2]) == errors.BAD_FIELD
    with pytest.raises(ProtocolError) as info:
        decode_event("item.deployed", encode_event(DEPLOYED)[1] + b"\x00")
    assert info.value.reason == errors.TRAILING_BYTES


def test_nil_for_optional_field_is_refused() -> None:
    body = {**_body(DEPLOYED), "text": "x", "progress": 5, "attachments": [], "milestone": None}
    del body["note"]
    assert _reason("item.feedback", body) == errors.BAD_FIELD


def test_assigned_consistency() -> None:
    good = _body(
        Assigned(
            item="14-000007",
            origin="14",
            seq=7,
            lamport=1,
            at=1_000,
            to="1401",
            title="t",
            description="",
            board="x_board",
            source="instruction",
            item_class="general",
            assigner="14",
            assignee="1401",
            co_units=("a", "b"),
            calendar="natural",
            deadlines=Deadlines(deploy=2_000, feedback=3_000, resolve=4_000),
        )
    )
    assert decode_event("item.assigned", msgpack.packb(good)).item == "14-000007"
    bad: list[dict[str, object]] = [
        {"item": "14-000008"},
        {"assigner": "13"},
        {"to": "14"},
        {"assignee": "14", "to": "14"},  # self-assignment needs a unit
        {"board": "Daily"},
        {"class": "urgent"},
        {"calendar": "lunar"},
        {"co_units": ["a", "a"]},
        {"parent_item": "14-000007"},
        {"deadlines": {"deploy": 3_000, "feedback": 2_000, "resolve": 4_000}},
        {"deadlines": {"deploy": 1_000, "feedback": 2_000, "resolve": 4_000}},
        {"title": "   "},
        {"title": "a\nb"},
    ]
    for change in bad:
        assert _reason("item.assigned", {**good, **change}) == errors.BAD_FIELD, change
    assert (
        _reason("item.assigned", {**good, "deadlines": {"deploy": 2_000}}) == errors.MISSING_FIELD
    )
    extra = {"deploy": 2, "feedback": 3, "resolve": 4, "x": 5}
    assert _reason("item.assigned", {**good, "deadlines": extra}) == errors.UNKNOWN_FIELD
    ok = decode_event(
        "item.assigned",
        msgpack.packb({**good, "assignee": "14", "to": "14", "assignee_unit": "office"}),
    )
    assert isinstance(ok, Assigned) and ok.assignee_unit == "office"


def test_kind_rules() -> None:
    header = dataclasses.asdict(DEPLOYED)
    del header["note"]
    with pytest.raises(ProtocolError, match="no field to change"):
        Updated(**header)
    with pytest.raises(ProtocolError, match="reason"):
        Reviewed(**header, outcome="return", reason=" ")
    with pytest.raises(ProtocolError, match="outcome"):
        Reviewed(**header, outcome="maybe", reason="")
    with pytest.raises(ProtocolError, match="reason"):
        PlanDecided(**header, approved=False, reason="")
    with pytest.raises(ProtocolError, match="approved"):
        PlanDecided(**header, approved=1, reason="x")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="milestones"):
        PlanSubmitted(**header, milestones=(), note="")
    with pytest.raises(ProtocolError, match="increase"):
        PlanSubmitted(
            **header,
            milestones=(Milestone(title="a", due=5), Milestone(title="b", due=5)),
            note="",
        )
    with pytest.raises(ProtocolError, match="progress"):
        Feedback(**header, text="x", progress=101, attachments=())
    with pytest.raises(ProtocolError, match="attachments"):
        Feedback(**header, text="x", progress=1, attachments=(b"short",))
    with pytest.raises(ProtocolError, match="attachments"):
        Feedback(**header, text="x", progress=1, attachments=[b"x" * 32])  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="text"):
        Resolved(**header, text="", attachments=())
    with pytest.raises(ProtocolError, match="reason"):
        Withdrawn(**header, reason="")


def test_item_ids() -> None:
    assert make_item_id("14", 123) == "14-000123"
    assert make_item_id("140105001", 1_234_567) == "140105001-1234567"
    assert parse_item_id("140105001-1234567") == ("140105001", 1_234_567)
    assert parse_item_id("a-b-000001") == ("a-b", 1)
    for bad in ("14", "14-12345", "-000001", "14-0000001", "14-000000", "14 -000001"):
        with pytest.raises(ProtocolError):
            parse_item_id(bad)


# -- fuzz: ProtocolError and nothing else ----------------------------------------------------


def _decode_or_protocol_error(type_: str, data: bytes) -> None:
    try:
        event = decode_event(type_, data)
    except ProtocolError:
        return
    assert encode_event(event)[0] == type_


@_fast
@given(st.sampled_from(sorted(EVENT_TYPES)), st.binary(max_size=300))
def test_random_bytes(type_: str, data: bytes) -> None:
    _decode_or_protocol_error(type_, data)


@_fast
@given(events, st.data())
def test_mutated_bytes(event: Event, data: st.DataObject) -> None:
    type_, body = encode_event(event)
    raw = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(("flip", "cut", "insert")))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del raw[at : at + data.draw(st.integers(1, 8))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    _decode_or_protocol_error(data.draw(st.sampled_from((type_, *EVENT_TYPES))), bytes(raw))


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=8)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@_fast
@given(events, st.data())
def test_mutated_fields(event: Event, data: st.DataObject) -> None:
    """Replace, drop or add one field of a valid body with an arbitrary value."""
    body = _body(event)
    key = data.draw(st.sampled_from(sorted(body)))
    op = data.draw(st.sampled_from(("replace", "drop", "add")))
    if op == "replace":
        body[key] = data.draw(_values)
    elif op == "drop":
        del body[key]
    else:
        body[data.draw(st.text(max_size=10))] = data.draw(_values)
    _decode_or_protocol_error(event.TYPE, codec.encode(body))  # type: ignore[arg-type]


# -- the decoder's shortcuts give the plain answer ---------------------------------------------


def test_codec_reasons_come_before_field_checks() -> None:
    """decode_event skips the codec's depth and float walk on the way to an event; a refused
    body still gets the reason a full decode gives first."""
    body = _body(DEPLOYED)
    assert _reason("item.deployed", {**body, "note": 1.5}) == errors.FLOAT_NOT_ALLOWED
    assert _reason("item.deployed", {**body, "seq": 0, "note": 1.5}) == errors.FLOAT_NOT_ALLOWED
    assert _reason("item.deployed", {**body, "note": [[[["x"]]]]}) == errors.TOO_DEEP
    assert _reason("item.deployed", {**body, "extra": [[[[1]]]]}) == errors.TOO_DEEP
    assigned = _body(
        Assigned(
            item="14-000007", origin="14", seq=7, lamport=1, at=1_000, to="1401", title="t",
            description="", board="daily", source="office", item_class="general",
            assigner="14", assignee="1401", co_units=(), calendar="natural",
            deadlines=Deadlines(deploy=2_000, feedback=3_000, resolve=4_000),
        )
    )
    floating = {**assigned, "deadlines": {"deploy": 2_000, "feedback": 3_000, "resolve": 4.5}}
    assert _reason("item.assigned", floating) == errors.FLOAT_NOT_ALLOWED


_near_values = st.one_of(
    _values,
    st.floats(allow_nan=False),
    st.sampled_from(["", " ", "a\x00", "a\nb", "x" * 201, "14-1", "14-0000001", "Daily", "urgent"]),
    st.sampled_from([-1, 0, 101, MAX_MS + 1, 2**63]),
    st.fixed_dictionaries({"deploy": st.integers(0, 3), "feedback": st.integers(0, 3)}),
    st.lists(st.fixed_dictionaries({"title": _values, "due": st.integers(-1, 3)}), max_size=2),
)


def _outcome(decode: object, *args: object) -> tuple[object, ...]:
    try:
        event = decode(*args)  # type: ignore[operator]
    except ProtocolError as exc:
        return ("refused", exc.reason, exc.detail)
    return ("event", encode_event(event))


def _plain_decode(type_: str, body: bytes) -> Event:
    """decode_event without its shortcuts: the full strict decode, then field by field."""
    from protocol import events as module

    cls = EVENT_TYPES[type_]
    value = codec.decode(body, module.EVENT_LIMITS)
    if type(value) is not dict:
        raise ProtocolError(errors.BAD_FIELD, "body: must be a map")
    schema = module._schema(cls)
    unknown = sorted(set(value) - schema.wire_names)
    if unknown:
        raise ProtocolError(errors.UNKNOWN_FIELD, unknown[0][:80])
    return cls(**module._arguments_in_order(schema, value))  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.data())
def test_shortcuts_give_the_plain_answer(event: Event, data: st.DataObject) -> None:
    """Several faults at once: the reason and detail are those of the plain decoder."""
    body = _body(event)
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(body)))
        if data.draw(st.integers(0, 4)) == 0:
            del body[key]
        else:
            body[key] = data.draw(_near_values)
    raw = msgpack.packb(body, use_bin_type=True)
    assert _outcome(decode_event, event.TYPE, raw) == _outcome(_plain_decode, event.TYPE, raw)
