"""Item events: the ten kinds of change an item goes through, and their wire form.

Every event is authored and signed by exactly one node and travels as a signed
envelope (see :mod:`protocol.envelope`) whose body is a strict msgpack map. The
map carries a common header, so that origin, destination, ordering and time are
inside the signed bytes (STYLE.md, convention 3)::

    item     item id, "<assigner node>-<seq:06d>" of the item.assigned event
    origin   node id of the signing node
    seq      the origin's own gapless sequence over all its events (>= 1)
    lamport  Lamport clock (>= 1); the fold orders by (lamport, origin, seq)
    at       unix milliseconds UTC, the author's clock
    to       the other party: the assignee node for the assigner's events, the
             assigner node for the assignee's; equal to origin when a node
             assigns to one of its own units

plus the fields of each kind. Wire rules, all enforced when decoding:

* every required field is present, no unknown field is accepted;
* an optional field is omitted when absent; ``nil`` is refused, so one value
  has one encoding;
* integers are real integers (``True`` is not 1); times are in [0, 2**53) so
  JavaScript clients read them exactly;
* strings carry no control characters (free text may hold tabs and newlines).

Classes validate themselves on construction, so an :data:`Event` that exists
is well-formed; :func:`decode_event` raises :class:`ProtocolError` and nothing
else. Which node may sign which kind is :mod:`protocol.ownership`'s job, and
whether an event fits the item's history is :mod:`protocol.fold`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, ClassVar, Final

from protocol import codec, errors
from protocol.errors import ProtocolError

BOARDS: Final = ("daily", "key_task", "reform", "engineering", "tech_upgrade", "investment")
"""The "1+5" boards. Any ``[a-z0-9_]{1,32}`` code is accepted ("1+X")."""
SOURCES: Final = ("plenary", "executive", "office", "topical", "instruction", "other")
"""Known sources of an item; extensible like boards."""
CLASSES: Final = ("general", "major", "explicit")
CALENDARS: Final = ("natural", "working")
OUTCOMES: Final = ("accept", "return")

MAX_TITLE = 200
MAX_TEXT = 20_000
MAX_REASON = 2_000
MAX_UNITS = 64
MAX_ATTACHMENTS = 32
MAX_MILESTONES = 64
MAX_MS = 2**53 - 1
MAX_COUNTER = 2**63 - 1
DIGEST_LEN = 32

EVENT_LIMITS = codec.Limits(
    max_size=256 * 1024,
    max_str=4 * MAX_TEXT,
    max_bin=DIGEST_LEN,
    max_array=MAX_MILESTONES,
    max_map=32,
    max_depth=4,
)
"""Decoding caps for one event body: far above any honest event, far below harm."""

NODE_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
UNIT_RE: Final = NODE_ID_RE
CODE_RE: Final = re.compile(r"[a-z0-9_]{1,32}\Z")
_ITEM_RE: Final = re.compile(r"(?P<node>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})-(?P<seq>[0-9]{6,19})\Z")
_BAD_LINE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_BAD_TEXT: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def make_item_id(node: str, seq: int) -> str:
    """The id of the item assigned by ``node`` in its event number ``seq``."""
    return f"{node}-{seq:06d}"


def parse_item_id(item: str, name: str = "item") -> tuple[str, int]:
    """Split an item id into (assigning node, sequence); ``bad_field`` if malformed."""
    match = _ITEM_RE.match(item) if type(item) is str else None
    if match is None:
        raise _bad(name, "not an item id")
    node, seq = match["node"], int(match["seq"])
    if seq < 1 or seq > MAX_COUNTER or make_item_id(node, seq) != item:
        raise _bad(name, "not a canonical item id")
    return node, seq


# -- field checks: each takes the wire name and the value, raises bad_field ----------------


def _bad(name: str, why: str) -> ProtocolError:
    return ProtocolError(errors.BAD_FIELD, f"{name}: {why}")


def _check_str(name: str, value: object, *, lo: int, hi: int, bad: re.Pattern[str]) -> str:
    if type(value) is not str:
        raise _bad(name, "must be a string")
    if not lo <= len(value) <= hi:
        raise _bad(name, f"length must be {lo}..{hi}")
    if bad.search(value):
        raise _bad(name, "control or surrogate character")
    return value


def _check_text(name: str, value: object, hi: int) -> None:
    _check_str(name, value, lo=0, hi=hi, bad=_BAD_TEXT)


def _check_item(name: str, value: object) -> None:
    if type(value) is not str:
        raise _bad(name, "must be a string")
    parse_item_id(value, name)


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if type(value) is not int or not lo <= value <= hi:
        raise _bad(name, f"must be an integer in {lo}..{hi}")


def _check_re(name: str, value: object, pattern: re.Pattern[str], what: str) -> None:
    if type(value) is not str or not pattern.match(value):
        raise _bad(name, f"not a {what}")


def _check_title(name: str, value: object) -> None:
    if not _check_str(name, value, lo=1, hi=MAX_TITLE, bad=_BAD_LINE).strip():
        raise _bad(name, "must not be blank")


def _check_units(name: str, value: object) -> None:
    if type(value) is not tuple or len(value) > MAX_UNITS:
        raise _bad(name, f"must be a list of at most {MAX_UNITS} unit codes")
    for unit in value:
        _check_re(name, unit, UNIT_RE, "unit code")
    if len(set(value)) != len(value):
        raise _bad(name, "duplicate unit")


def _check_digests(name: str, value: object) -> None:
    if type(value) is not tuple or len(value) > MAX_ATTACHMENTS:
        raise _bad(name, f"must be a list of at most {MAX_ATTACHMENTS} digests")
    for digest in value:
        if type(digest) is not bytes or len(digest) != DIGEST_LEN:
            raise _bad(name, "each attachment is a 32-byte SHA-256 digest")
    if len(set(value)) != len(value):
        raise _bad(name, "duplicate attachment")


def _check_milestones(name: str, value: object) -> None:
    if type(value) is not tuple or not 1 <= len(value) <= MAX_MILESTONES:
        raise _bad(name, f"must list 1..{MAX_MILESTONES} milestones")
    previous = -1
    for milestone in value:
        if type(milestone) is not Milestone:
            raise _bad(name, "not a milestone")
        if milestone.due <= previous:
            raise _bad(name, "due dates must strictly increase")
        previous = milestone.due


def _one_of(choices: tuple[str, ...]) -> Callable[[str, object], None]:
    def check(name: str, value: object) -> None:
        if type(value) is not str or value not in choices:
            raise _bad(name, f"must be one of {', '.join(choices)}")

    return check


def _type_is(cls: type) -> Callable[[str, object], None]:
    def check(name: str, value: object) -> None:
        if type(value) is not cls:
            raise _bad(name, f"must be a {cls.__name__}")

    return check


_CHECKS: Final[Mapping[str, Callable[[str, object], None]]] = {
    "node": lambda n, v: _check_re(n, v, NODE_ID_RE, "node id"),
    "unit": lambda n, v: _check_re(n, v, UNIT_RE, "unit code"),
    "code": lambda n, v: _check_re(n, v, CODE_RE, "code [a-z0-9_]{1,32}"),
    "item": lambda n, v: _check_item(n, v),
    "title": _check_title,
    "text": lambda n, v: _check_text(n, v, MAX_TEXT),
    "reason": lambda n, v: _check_text(n, v, MAX_REASON),
    "counter": lambda n, v: _check_int(n, v, 1, MAX_COUNTER),
    "ms": lambda n, v: _check_int(n, v, 0, MAX_MS),
    "percent": lambda n, v: _check_int(n, v, 0, 100),
    "index": lambda n, v: _check_int(n, v, 0, MAX_MILESTONES - 1),
    "bool": _type_is(bool),
    "class": _one_of(CLASSES),
    "calendar": _one_of(CALENDARS),
    "outcome": _one_of(OUTCOMES),
    "units": _check_units,
    "digests": _check_digests,
    "milestones": _check_milestones,
    "deadlines": lambda n, v: _type_is(Deadlines)(n, v),
}


def _k(kind: str, *, wire: str = "", optional: bool = False) -> dict[str, object]:
    """Field metadata: its check kind, wire name and whether it may be absent (omitted)."""
    return {"kind": kind, "wire": wire, "optional": optional}


def _wire_name(f: Field[Any]) -> str:
    return str(f.metadata["wire"] or f.name)


_Spec = tuple[tuple[str, str, str, bool, Callable[[str, object], None]], ...]
_SPECS: dict[type, _Spec] = {}


def _spec(cls: type) -> _Spec:
    """Per class, once: (attribute, wire name, kind, optional, check) of every field.

    ``dataclasses.fields`` and the metadata look-ups cost more than the checks
    themselves when done per event; the classes never change after import.
    """
    spec = _SPECS.get(cls)
    if spec is None:
        spec = tuple(
            (f.name, _wire_name(f), f.metadata["kind"], bool(f.metadata["optional"]),
             _CHECKS[f.metadata["kind"]])
            for f in fields(cls)
        )
        _SPECS[cls] = spec
    return spec


# -- nested values -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Milestone:
    """One dated step of a plan (解决方案和时间节点)."""

    title: str
    due: int

    def __post_init__(self) -> None:
        _check_title("milestones.title", self.title)
        _CHECKS["ms"]("milestones.due", self.due)


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadlines:
    """The three 13710 deadlines in unix ms, computed once by the assigner.

    Carried in the event so every node agrees without recomputing (holiday
    tables differ between library versions). Ordered deploy <= feedback <= resolve.
    """

    deploy: int
    feedback: int
    resolve: int

    def __post_init__(self) -> None:
        for name in ("deploy", "feedback", "resolve"):
            _CHECKS["ms"](f"deadlines.{name}", getattr(self, name))
        if not self.deploy <= self.feedback <= self.resolve:
            raise _bad("deadlines", "must be ordered deploy <= feedback <= resolve")


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemEvent:
    """The common header of every item event (see the module docstring)."""

    TYPE: ClassVar[str] = ""

    item: str = field(metadata=_k("item"))
    origin: str = field(metadata=_k("node"))
    seq: int = field(metadata=_k("counter"))
    lamport: int = field(metadata=_k("counter"))
    at: int = field(metadata=_k("ms"))
    to: str = field(metadata=_k("node"))

    def __post_init__(self) -> None:
        for name, wire, _kind, optional, check in _spec(type(self)):
            value = getattr(self, name)
            if value is None and optional:
                continue
            check(wire, value)
        self._check()

    def _check(self) -> None:
        """Checks across fields of one kind; the default has none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Assigned(ItemEvent):
    """The assigner creates the item (交办). Its id is derived from origin and seq."""

    TYPE: ClassVar[str] = "item.assigned"

    title: str = field(metadata=_k("title"))
    description: str = field(metadata=_k("text"))
    board: str = field(metadata=_k("code"))
    source: str = field(metadata=_k("code"))
    item_class: str = field(metadata=_k("class", wire="class"))
    assigner: str = field(metadata=_k("node"))
    assignee: str = field(metadata=_k("node"))
    assignee_unit: str | None = field(default=None, metadata=_k("unit", optional=True))
    lead_unit: str | None = field(default=None, metadata=_k("unit", optional=True))
    co_units: tuple[str, ...] = field(metadata=_k("units"))
    parent_item: str | None = field(default=None, metadata=_k("item", optional=True))
    calendar: str = field(metadata=_k("calendar"))
    deadlines: Deadlines = field(metadata=_k("deadlines"))

    def _check(self) -> None:
        if self.item != make_item_id(self.origin, self.seq):
            raise _bad("item", "must be '<origin>-<seq:06d>' of the assigned event")
        if self.assigner != self.origin:
            raise _bad("assigner", "must be the origin")
        if self.to != self.assignee:
            raise _bad("to", "must be the assignee")
        if self.assignee == self.assigner and self.assignee_unit is None:
            raise _bad("assignee_unit", "required when a node assigns to itself")
        if self.parent_item == self.item:
            raise _bad("parent_item", "an item is not its own parent")
        if self.deadlines.deploy <= self.at:
            raise _bad("deadlines", "must fall after the assignment")


@dataclass(frozen=True, slots=True, kw_only=True)
class Updated(ItemEvent):
    """The assigner changes assignment fields; only the fields present change."""

    TYPE: ClassVar[str] = "item.updated"

    title: str | None = field(default=None, metadata=_k("title", optional=True))
    description: str | None = field(default=None, metadata=_k("text", optional=True))
    deadlines: Deadlines | None = field(default=None, metadata=_k("deadlines", optional=True))
    lead_unit: str | None = field(default=None, metadata=_k("unit", optional=True))
    co_units: tuple[str, ...] | None = field(default=None, metadata=_k("units", optional=True))
    assignee_unit: str | None = field(default=None, metadata=_k("unit", optional=True))

    def _check(self) -> None:
        changes = (
            self.title,
            self.description,
            self.deadlines,
            self.lead_unit,
            self.co_units,
            self.assignee_unit,
        )
        if all(value is None for value in changes):
            raise ProtocolError(errors.MISSING_FIELD, "updated: no field to change")


@dataclass(frozen=True, slots=True, kw_only=True)
class Withdrawn(ItemEvent):
    """The assigner cancels the item (撤回); it stays on record, never deleted."""

    TYPE: ClassVar[str] = "item.withdrawn"

    reason: str = field(metadata=_k("reason"))

    def _check(self) -> None:
        if not self.reason.strip():
            raise _bad("reason", "a withdrawal says why")


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployed(ItemEvent):
    """The assignee has studied and deployed the item (研究部署): the "1"."""

    TYPE: ClassVar[str] = "item.deployed"

    note: str = field(metadata=_k("text"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Feedback(ItemEvent):
    """A progress report (反馈办理情况); the first one meets the "3".

    ``milestone`` optionally marks an approved plan's milestone as reached.
    """

    TYPE: ClassVar[str] = "item.feedback"

    text: str = field(metadata=_k("text"))
    progress: int = field(metadata=_k("percent"))
    attachments: tuple[bytes, ...] = field(metadata=_k("digests"))
    milestone: int | None = field(default=None, metadata=_k("index", optional=True))

    def _check(self) -> None:
        if not self.text.strip():
            raise _bad("text", "feedback must say something")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSubmitted(ItemEvent):
    """The assignee proposes a plan with dated milestones; the last is the new target."""

    TYPE: ClassVar[str] = "item.plan_submitted"

    milestones: tuple[Milestone, ...] = field(metadata=_k("milestones"))
    note: str = field(metadata=_k("text"))


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanDecided(ItemEvent):
    """The assigner approves or rejects the pending plan; a rejection says why."""

    TYPE: ClassVar[str] = "item.plan_decided"

    approved: bool = field(metadata=_k("bool"))
    reason: str = field(metadata=_k("reason"))

    def _check(self) -> None:
        if not self.approved and not self.reason.strip():
            raise _bad("reason", "required when a plan is rejected")


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved(ItemEvent):
    """The assignee reports the item solved (落实解决); the assigner then reviews it."""

    TYPE: ClassVar[str] = "item.resolved"

    text: str = field(metadata=_k("text"))
    attachments: tuple[bytes, ...] = field(metadata=_k("digests"))

    def _check(self) -> None:
        if not self.text.strip():
            raise _bad("text", "a resolution must say what was done")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reviewed(ItemEvent):
    """The assigner accepts the resolution or returns it for rework (退回)."""

    TYPE: ClassVar[str] = "item.reviewed"

    outcome: str = field(metadata=_k("outcome"))
    reason: str = field(metadata=_k("reason"))

    def _check(self) -> None:
        if self.outcome == "return" and not self.reason.strip():
            raise _bad("reason", "required when returning")


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed(ItemEvent):
    """The assigner closes the accepted item (销号): the "0"."""

    TYPE: ClassVar[str] = "item.closed"

    note: str = field(metadata=_k("text"))


Event = (
    Assigned
    | Updated
    | Withdrawn
    | Deployed
    | Feedback
    | PlanSubmitted
    | PlanDecided
    | Resolved
    | Reviewed
    | Closed
)

EVENT_TYPES: Final[Mapping[str, type[Event]]] = {
    cls.TYPE: cls
    for cls in (
        Assigned,
        Updated,
        Withdrawn,
        Deployed,
        Feedback,
        PlanSubmitted,
        PlanDecided,
        Resolved,
        Reviewed,
        Closed,
    )
}
"""Envelope type string -> event class."""


# -- wire form -----------------------------------------------------------------------------


def _to_wire(kind: str, value: Any) -> codec.Value:
    if kind in ("units", "digests"):
        return list(value)
    if kind == "milestones":
        return [{"title": m.title, "due": m.due} for m in value]
    if kind == "deadlines":
        return {"deploy": value.deploy, "feedback": value.feedback, "resolve": value.resolve}
    return value  # type: ignore[no-any-return]


def encode_event(event: Event) -> tuple[str, bytes]:
    """The envelope type and body bytes of ``event`` (keys sorted, optional fields omitted)."""
    body: dict[str, codec.Value] = {}
    for name, wire, kind, _optional, _check in _spec(type(event)):
        value = getattr(event, name)
        if value is not None:
            body[wire] = _to_wire(kind, value)
    return event.TYPE, codec.encode(body)


def _map(name: str, value: object, keys: tuple[str, ...]) -> dict[str, Any]:
    if type(value) is not dict:
        raise _bad(name, "must be a map")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise ProtocolError(errors.UNKNOWN_FIELD, f"{name}.{unknown[0]}"[:100])
    for key in keys:
        if key not in value:
            raise ProtocolError(errors.MISSING_FIELD, f"{name}.{key}")
    return value


def _from_wire(kind: str, name: str, value: object) -> object:
    if kind in ("units", "digests", "milestones"):
        if type(value) is not list:
            raise _bad(name, "must be a list")
        if kind != "milestones":
            return tuple(value)
        out = []
        for entry in value:
            m = _map(name, entry, ("title", "due"))
            out.append(Milestone(title=m["title"], due=m["due"]))
        return tuple(out)
    if kind == "deadlines":
        d = _map(name, value, ("deploy", "feedback", "resolve"))
        return Deadlines(deploy=d["deploy"], feedback=d["feedback"], resolve=d["resolve"])
    return value


_ABSENT: Final = object()
_NESTED: Final = frozenset({"units", "digests", "milestones", "deadlines"})
_WIRE_NAMES: Final[dict[type, frozenset[str]]] = {
    cls: frozenset(wire for _n, wire, *_rest in _spec(cls)) for cls in EVENT_TYPES.values()
}


def decode_event(type_: str, body: bytes) -> Event:
    """Decode and validate an event body of envelope type ``type_``.

    Raises :class:`ProtocolError` (``unknown_kind``, ``unknown_field``,
    ``missing_field``, ``bad_field`` or a codec reason) and nothing else.
    """
    cls = EVENT_TYPES.get(type_) if type(type_) is str else None
    if cls is None:
        raise ProtocolError(errors.UNKNOWN_KIND, repr(type_)[:80])
    value = codec.decode(body, EVENT_LIMITS)
    try:
        spec = _spec(cls)
        if type(value) is not dict:
            raise _bad("body", "must be a map")
        if len(value) > len(spec) or not value.keys() <= _WIRE_NAMES[cls]:
            unknown = sorted(set(value) - _WIRE_NAMES[cls])
            raise ProtocolError(errors.UNKNOWN_FIELD, unknown[0][:80])
        kwargs: dict[str, object] = {}
        for name, wire, kind, optional, _check in spec:
            raw = value.get(wire, _ABSENT)
            if raw is _ABSENT:
                if optional:
                    continue
                raise ProtocolError(errors.MISSING_FIELD, wire)
            if raw is None:
                raise _bad(wire, "nil is not allowed; omit an absent field")
            kwargs[name] = raw if kind not in _NESTED else _from_wire(kind, wire, raw)
        return cls(**kwargs)  # type: ignore[arg-type]
    except ProtocolError:
        raise
    except Exception as exc:  # the promise is: nothing else escapes
        raise ProtocolError(errors.BAD_FIELD, type(exc).__name__) from None
