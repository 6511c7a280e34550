"""Item events: the fourteen kinds of change an item goes through, and their wire form.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import Field, dataclass, field, fields
from operator import attrgetter
from typing import Annotated, Any, ClassVar, Final, Literal, NamedTuple

from msgspec import Meta

from protocol import codec, errors, fastpath
from protocol.errors import ProtocolError

BOARDS: Final = ("daily", "key_task", "reform", "engineering", "tech_upgrade", "investment")
"""The "1+5" boards. Any ``[a-z0-9_]{1,32}`` code is accepted ("1+X")."""
SOURCES: Final = ("plenary", "executive", "office", "topical", "instruction", "other")
"""Known sources of an item; extensible like boards."""
CLASSES: Final = ("general", "major", "explicit")
CALENDARS: Final = ("natural", "working")
OUTCOMES: Final = ("accept", "return")
GRADES: Final = ("excellent", "qualified", "unqualified")
"""The closing review's grade (评价): 优秀, 合格, 不合格 (docs/rules.md, "The grade")."""

MAX_TITLE = 200
MAX_TEXT = 20_000
MAX_REASON = 2_000
MAX_UNITS = 64
MAX_ATTACHMENTS = 32
MAX_FILE_NAME = 200
MAX_MEDIA_TYPE = 127
MAX_MILESTONES = 64
MAX_MS = 2**53 - 1
MAX_COUNTER = 2**63 - 1
LAMPORT_CEILING = 2**62
"""The highest clock a node adopts from a received event: above it, the event is
refused (``clock_too_far_ahead``), so a node's own clock, which moves by one per
event it writes, always keeps 2**62 events of room below :data:`MAX_COUNTER`."""
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

# The patterns as text (unanchored, in the syntax Python's re and JSON Schema share),
# for the node's request schemas; the compiled forms below are what this module checks.
NODE_ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
"""A node id, also a unit code (:data:`UNIT_RE`)."""
CODE_PATTERN: Final = r"[a-z0-9_]{1,32}"
"""A board or source code."""
_SEQ_PATTERN: Final = r"[0-9]{6,19}"
ITEM_ID_PATTERN: Final = f"{NODE_ID_PATTERN}-{_SEQ_PATTERN}"
"""An item id (:func:`parse_item_id` also wants it canonical)."""
LINE_CONTROLS: Final = r"\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029"
"""The characters a one-line string (a title) may not hold, as a character-class range."""
TEXT_CONTROLS: Final = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff"
"""The characters free text may not hold: as :data:`LINE_CONTROLS` but tab, LF, CR
and the line and paragraph separators."""

MEDIA_TYPE_PATTERN: Final = r"[a-z0-9!#$&^_.+-]{1,63}/[a-z0-9!#$&^_.+-]{1,63}"
"""A media type as a node records it (lower case, no parameters)."""

EVENT_ID_PATTERN: Final = r"[0-9a-f]{64}"
"""An event id: the SHA-256 of its envelope bytes, in lowercase hex."""

NODE_ID_RE: Final = re.compile(f"{NODE_ID_PATTERN}\\Z")
EVENT_ID_RE: Final = re.compile(f"{EVENT_ID_PATTERN}\\Z")
MEDIA_TYPE_RE: Final = re.compile(f"{MEDIA_TYPE_PATTERN}\\Z")
UNIT_RE: Final = NODE_ID_RE
CODE_RE: Final = re.compile(f"{CODE_PATTERN}\\Z")
ITEM_RE: Final = re.compile(f"({NODE_ID_PATTERN})-({_SEQ_PATTERN})\\Z")
_BAD_LINE: Final = re.compile(f"[{LINE_CONTROLS}]")
_BAD_TEXT: Final = re.compile(f"[{TEXT_CONTROLS}]")


def make_item_id(node: str, seq: int) -> str:
    """The id of the item assigned by ``node`` in its event number ``seq``."""
    return f"{node}-{seq:06d}"


def parse_item_id(item: str, name: str = "item") -> tuple[str, int]:
    """Split an item id into (assigning node, sequence); ``bad_field`` if malformed."""
    match = ITEM_RE.match(item) if type(item) is str else None
    if match is None:
        raise _bad(name, "not an item id")
    node, digits = match.groups()
    seq = int(digits)
    # Canonical means as make_item_id writes it: zero-padded to six digits and no
    # other leading zero (checked on the digits: formatting the id again costs
    # more than the rest of this check, which runs for every event).
    if seq < 1 or seq > MAX_COUNTER or (len(digits) > 6 and digits[0] == "0"):
        raise _bad(name, "not a canonical item id")
    return node, seq


# -- field checks: each takes the wire name and the value, raises bad_field ----------------


def _bad(name: str, why: str) -> ProtocolError:
    return ProtocolError(errors.BAD_FIELD, f"{name}: {why}")


Check = Callable[[str, object], None]
"""A field check: takes the wire name and the value, raises ``bad_field``.

Each is one plain function, its parameters bound by a factory rather than a
lambda calling another function: checks run for every field of every event
decoded, the commonest work of a catch-up.
"""


def _string(lo: int, hi: int, bad: re.Pattern[str]) -> Check:
    def check(name: str, value: object) -> None:
        if type(value) is not str:
            raise _bad(name, "must be a string")
        if not lo <= len(value) <= hi:
            raise _bad(name, f"length must be {lo}..{hi}")
        if bad.search(value):
            raise _bad(name, "control or surrogate character")

    return check


def _int_in(lo: int, hi: int) -> Check:
    def check(name: str, value: object) -> None:
        if type(value) is not int or not lo <= value <= hi:
            raise _bad(name, f"must be an integer in {lo}..{hi}")

    return check


def _matches(pattern: re.Pattern[str], what: str) -> Check:
    def check(name: str, value: object) -> None:
        if type(value) is not str or not pattern.match(value):
            raise _bad(name, f"not a {what}")

    return check


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(name: str, value: object) -> None:
        if type(value) is not str or value not in choices:
            raise _bad(name, f"must be one of {', '.join(choices)}")

    return check


def _type_is(cls: type) -> Check:
    def check(name: str, value: object) -> None:
        if type(value) is not cls:
            raise _bad(name, f"must be a {cls.__name__}")

    return check


_check_text = _string(0, MAX_TEXT, _BAD_TEXT)
_check_reason = _string(0, MAX_REASON, _BAD_TEXT)
_check_line = _string(1, MAX_TITLE, _BAD_LINE)
_check_counter = _int_in(1, MAX_COUNTER)
_check_ms = _int_in(0, MAX_MS)
_check_unit = _matches(UNIT_RE, "unit code")
_check_file_name = _string(1, MAX_FILE_NAME, _BAD_LINE)
_check_media_type = _matches(MEDIA_TYPE_RE, "media type")
_check_event_id = _matches(EVENT_ID_RE, "event id (64 lowercase hex digits)")


def _check_item(name: str, value: object) -> None:
    if type(value) is not str:
        raise _bad(name, "must be a string")
    parse_item_id(value, name)


def _check_title(name: str, value: object) -> None:
    _check_line(name, value)
    if type(value) is str and not value.strip():  # a str: _check_line said so
        raise _bad(name, "must not be blank")


def _check_units(name: str, value: object) -> None:
    if type(value) is not tuple or len(value) > MAX_UNITS:
        raise _bad(name, f"must be a list of at most {MAX_UNITS} unit codes")
    for unit in value:
        _check_unit(name, unit)
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


def _check_files(name: str, value: object) -> None:
    if type(value) is not tuple or len(value) > MAX_ATTACHMENTS:
        raise _bad(name, f"must be a list of at most {MAX_ATTACHMENTS} files")
    for file in value:
        if type(file) is not FileRef:
            raise _bad(name, "not a file")
    if len({file.digest for file in value}) != len(value):
        raise _bad(name, "duplicate file")


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


def _check_deadlines(name: str, value: object) -> None:
    if type(value) is not Deadlines:
        raise _bad(name, "must be a Deadlines")


_CHECKS: Final[Mapping[str, Check]] = {
    "node": _matches(NODE_ID_RE, "node id"),
    "unit": _check_unit,
    "code": _matches(CODE_RE, "code [a-z0-9_]{1,32}"),
    "item": _check_item,
    "title": _check_title,
    "text": _check_text,
    "reason": _check_reason,
    "counter": _check_counter,
    "ms": _check_ms,
    "percent": _int_in(0, 100),
    "index": _int_in(0, MAX_MILESTONES - 1),
    "bool": _type_is(bool),
    "class": _one_of(CLASSES),
    "calendar": _one_of(CALENDARS),
    "outcome": _one_of(OUTCOMES),
    "grade": _one_of(GRADES),
    "units": _check_units,
    "digests": _check_digests,
    "files": _check_files,
    "milestones": _check_milestones,
    "deadlines": _check_deadlines,
    "event_id": _check_event_id,
}


def _k(kind: str, *, wire: str = "", optional: bool = False) -> dict[str, object]:
    """Field metadata: its check kind, wire name and whether it may be absent (omitted)."""
    return {"kind": kind, "wire": wire, "optional": optional}


def _wire_name(f: Field[Any]) -> str:
    return str(f.metadata["wire"] or f.name)


class _Field(NamedTuple):
    name: str
    wire: str
    kind: str
    optional: bool
    check: Check


@dataclass(frozen=True, slots=True)
class _Schema:
    """What construction and decoding need to know of one class, worked out once.

    ``dataclasses.fields`` and the metadata look-ups cost more than the checks
    themselves when done per event; the classes never change after import.
    """

    fields: tuple[_Field, ...]
    checks: tuple[tuple[str, bool, Check], ...]
    """(wire name, optional, check) of every field, in field order."""
    values: Callable[[object], tuple[object, ...]]
    """Every field's value, in field order (one ``attrgetter``: every class has
    at least the six header fields, so it always returns a tuple)."""
    wire_names: frozenset[str]
    required: frozenset[str]
    """Wire names that must be present."""
    renamed: tuple[tuple[str, str], ...]
    """(wire name, attribute) where they differ."""
    nested: tuple[tuple[str, str, str], ...]
    """(attribute, wire name, kind) of the fields whose wire form is converted."""


_NESTED: Final = frozenset({"units", "digests", "files", "milestones", "deadlines"})
_SCHEMAS: dict[type, _Schema] = {}


def _schema(cls: type) -> _Schema:
    schema = _SCHEMAS.get(cls)
    if schema is None:
        specs = tuple(
            _Field(f.name, _wire_name(f), f.metadata["kind"], bool(f.metadata["optional"]),
                   _CHECKS[f.metadata["kind"]])
            for f in fields(cls)
        )
        schema = _Schema(
            fields=specs,
            checks=tuple((f.wire, f.optional, f.check) for f in specs),
            values=attrgetter(*(f.name for f in specs)),
            wire_names=frozenset(f.wire for f in specs),
            required=frozenset(f.wire for f in specs if not f.optional),
            renamed=tuple((f.wire, f.name) for f in specs if f.wire != f.name),
            nested=tuple((f.name, f.wire, f.kind) for f in specs if f.kind in _NESTED),
        )
        _SCHEMAS[cls] = schema
    return schema


def field_kinds(cls: type) -> tuple[tuple[str, str], ...]:
    """(attribute, check kind) of every field of an event class, in field order."""
    return tuple((f.name, f.kind) for f in _schema(cls).fields)


# -- nested values -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Milestone:
    """One dated step of a plan (解决方案和时间节点)."""

    title: str
    due: int

    def __post_init__(self) -> None:
        _check_title("milestones.title", self.title)
        _check_ms("milestones.due", self.due)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileRef:
    """One attached file as a report names it, inside the signed bytes: its SHA-256,
    its name, its size in bytes and its media type. The bytes themselves travel
    apart, up the tree behind the report (docs/sync.md, "Attachments"), and every
    hop checks them against ``digest`` and ``size``."""

    digest: bytes
    name: str
    size: int
    type: str

    def __post_init__(self) -> None:
        if type(self.digest) is not bytes or len(self.digest) != DIGEST_LEN:
            raise _bad("files.digest", "must be a 32-byte SHA-256 digest")
        _check_file_name("files.name", self.name)
        _check_ms("files.size", self.size)
        _check_media_type("files.type", self.type)


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
        _check_ms("deadlines.deploy", self.deploy)
        _check_ms("deadlines.feedback", self.feedback)
        _check_ms("deadlines.resolve", self.resolve)
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
        schema = _schema(type(self))
        for (wire, optional, check), value in zip(schema.checks, schema.values(self), strict=True):
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
    cascade: str | None = field(default=None, metadata=_k("code", optional=True))
    """The level the item goes down to ("township": every township below): each
    node on the way passes it to its children (docs/cascade.md). Absent: no cascade."""

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
    files: tuple[FileRef, ...] | None = field(default=None, metadata=_k("files", optional=True))
    """Name, size and type of each attachment, in the order of ``attachments``
    (absent in reports written before files were named)."""
    answers: str | None = field(default=None, metadata=_k("event_id", optional=True))
    """The event id of the leader's instruction (:class:`Instructed`) this report
    answers (落实批示情况); absent when it answers none."""
    monthly: bool | None = field(default=None, metadata=_k("bool", optional=True))
    """True: the month's progress report under an approved plan (按月反馈进展情况);
    absent otherwise (never false: one value, one encoding)."""

    def _check(self) -> None:
        if not self.text.strip():
            raise _bad("text", "feedback must say something")
        if self.monthly is False:
            raise _bad("monthly", "true or absent")
        _check_named(self.attachments, self.files)


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
    files: tuple[FileRef, ...] | None = field(default=None, metadata=_k("files", optional=True))
    """As :attr:`Feedback.files`."""

    def _check(self) -> None:
        if not self.text.strip():
            raise _bad("text", "a resolution must say what was done")
        _check_named(self.attachments, self.files)


def _check_named(attachments: tuple[bytes, ...], files: tuple[FileRef, ...] | None) -> None:
    if files is not None and tuple(f.digest for f in files) != attachments:
        raise _bad("files", "must name exactly the attachments, in their order")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reviewed(ItemEvent):
    """The assigner accepts the resolution or returns it for rework (退回).

    An acceptance may carry the closing ``grade`` (评价); absent in acceptances
    signed before grades, and never on a return. A grade other than the rules'
    default (:func:`protocol.fold.default_grade`) needs a ``reason``: the fold
    checks that, as it needs the item's history."""

    TYPE: ClassVar[str] = "item.reviewed"

    outcome: str = field(metadata=_k("outcome"))
    reason: str = field(metadata=_k("reason"))
    grade: str | None = field(default=None, metadata=_k("grade", optional=True))

    def _check(self) -> None:
        if self.outcome == "return" and not self.reason.strip():
            raise _bad("reason", "required when returning")
        if self.outcome == "return" and self.grade is not None:
            raise _bad("grade", "only an accepted resolution is graded")


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed(ItemEvent):
    """The assigner closes the accepted item (销号): the "0"."""

    TYPE: ClassVar[str] = "item.closed"

    note: str = field(metadata=_k("text"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Urged(ItemEvent):
    """The assigner, or a node above it, urges the handling node on (催办).

    Signed by the assigner or any ancestor of it (a supervisor); addressed to the
    assignee. ``author`` names the person who urged, as the signing node knows them."""

    TYPE: ClassVar[str] = "item.urged"

    author: str = field(metadata=_k("title"))
    text: str = field(metadata=_k("reason"))

    def _check(self) -> None:
        if not self.text.strip():
            raise _bad("text", "an urge says what is wanted")


@dataclass(frozen=True, slots=True, kw_only=True)
class Instructed(ItemEvent):
    """A leader of the assigner, or of a node above it, writes an instruction (批示).

    Signed and addressed as :class:`Urged`; the handling node's feedback may answer it
    (:attr:`Feedback.answers`)."""

    TYPE: ClassVar[str] = "item.instructed"

    author: str = field(metadata=_k("title"))
    text: str = field(metadata=_k("text"))

    def _check(self) -> None:
        if not self.text.strip():
            raise _bad("text", "an instruction must say something")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtensionRequested(ItemEvent):
    """The handling node asks, before the resolve deadline, to move it (延期申请):
    why, to when, and what has been done so far."""

    TYPE: ClassVar[str] = "item.extension_requested"

    reason: str = field(metadata=_k("reason"))
    deadline: int = field(metadata=_k("ms"))
    progress: str = field(metadata=_k("text"))

    def _check(self) -> None:
        if not self.reason.strip():
            raise _bad("reason", "an extension request says why")
        if not self.progress.strip():
            raise _bad("progress", "an extension request says what is done so far")
        if self.deadline <= self.at:
            raise _bad("deadline", "must fall after the request")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtensionDecided(ItemEvent):
    """The assigner approves or refuses the pending extension request ``request``
    (its event id); a refusal says why. An approval moves the resolve deadline."""

    TYPE: ClassVar[str] = "item.extension_decided"

    request: str = field(metadata=_k("event_id"))
    approved: bool = field(metadata=_k("bool"))
    reason: str = field(metadata=_k("reason"))

    def _check(self) -> None:
        if not self.approved and not self.reason.strip():
            raise _bad("reason", "required when an extension is refused")


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
    | Urged
    | Instructed
    | ExtensionRequested
    | ExtensionDecided
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
        Urged,
        Instructed,
        ExtensionRequested,
        ExtensionDecided,
    )
}
"""Envelope type string -> event class."""


# -- wire form -----------------------------------------------------------------------------


def _to_wire(kind: str, value: Any) -> codec.Value:
    if kind in ("units", "digests"):
        return list(value)
    if kind == "milestones":
        return [{"title": m.title, "due": m.due} for m in value]
    if kind == "files":
        return [{"digest": f.digest, "name": f.name, "size": f.size, "type": f.type} for f in value]
    if kind == "deadlines":
        return {"deploy": value.deploy, "feedback": value.feedback, "resolve": value.resolve}
    return value  # type: ignore[no-any-return]


def encode_event(event: Event) -> tuple[str, bytes]:
    """The envelope type and body bytes of ``event`` (keys sorted, optional fields omitted)."""
    body: dict[str, codec.Value] = {}
    for name, wire, kind, _optional, _check in _schema(type(event)).fields:
        value = getattr(event, name)
        if value is not None:
            body[wire] = _to_wire(kind, value)
    return event.TYPE, codec.encode(body)


def _map(name: str, value: object, keys: frozenset[str], order: tuple[str, ...]) -> dict[str, Any]:
    """``value`` as a map with exactly ``keys``; else the first unknown, then missing, key."""
    if type(value) is not dict:
        raise _bad(name, "must be a map")
    if value.keys() == keys:
        return value
    unknown = sorted(set(value) - keys)
    if unknown:
        raise ProtocolError(errors.UNKNOWN_FIELD, f"{name}.{unknown[0]}"[:100])
    for key in order:
        if key not in value:
            raise ProtocolError(errors.MISSING_FIELD, f"{name}.{key}")
    return value  # pragma: no cover - neither unknown nor missing means equal keys


_MILESTONE_KEYS: Final = ("title", "due")
_DEADLINE_KEYS: Final = ("deploy", "feedback", "resolve")
_FILE_KEYS: Final = ("digest", "name", "size", "type")
_FILE_SET: Final = frozenset(_FILE_KEYS)
_MILESTONE_SET: Final = frozenset(_MILESTONE_KEYS)
_DEADLINE_SET: Final = frozenset(_DEADLINE_KEYS)


def _from_wire(kind: str, name: str, value: object) -> object:
    if kind == "deadlines":
        d = _map(name, value, _DEADLINE_SET, _DEADLINE_KEYS)
        return Deadlines(deploy=d["deploy"], feedback=d["feedback"], resolve=d["resolve"])
    if type(value) is not list:
        raise _bad(name, "must be a list")
    if kind == "files":
        files = []
        for entry in value:
            f = _map(name, entry, _FILE_SET, _FILE_KEYS)
            files.append(
                FileRef(digest=f["digest"], name=f["name"], size=f["size"], type=f["type"])
            )
        return tuple(files)
    if kind != "milestones":  # units, digests
        return tuple(value)
    out = []
    for entry in value:
        m = _map(name, entry, _MILESTONE_SET, _MILESTONE_KEYS)
        out.append(Milestone(title=m["title"], due=m["due"]))
    return tuple(out)


_ABSENT: Final = object()


def _arguments(schema: _Schema, value: dict[str, Any]) -> dict[str, object]:
    """The constructor's keyword arguments from a decoded body map.

    Checks presence, nil and the nested values; the constructor's
    ``__post_init__`` then checks every value. The first problem found is the
    one raised, in field order: :func:`_arguments_in_order` says which.
    """
    if not value.keys() <= schema.wire_names:
        unknown = sorted(set(value) - schema.wire_names)
        raise ProtocolError(errors.UNKNOWN_FIELD, unknown[0][:80])
    # Set operations instead of a loop over the fields: the common case has
    # every required field and no nil.
    if not schema.required <= value.keys() or None in value.values():
        return _arguments_in_order(schema, value)
    kwargs: dict[str, object] = dict(value)
    for wire, name in schema.renamed:
        if wire in kwargs:
            kwargs[name] = kwargs.pop(wire)
    # No field is missing or nil, so the first problem is the first nested value
    # that does not convert, in field order: the same as the loop would raise.
    for name, wire, kind in schema.nested:
        if wire in value:
            kwargs[name] = _from_wire(kind, wire, value[wire])
    return kwargs


def _arguments_in_order(schema: _Schema, value: dict[str, Any]) -> dict[str, object]:
    """:func:`_arguments` field by field, raising the first missing or nil field or
    nested value that does not convert, whichever comes first in field order."""
    kwargs: dict[str, object] = {}
    for name, wire, kind, optional, _check in schema.fields:
        raw = value.get(wire, _ABSENT)
        if raw is _ABSENT:
            if optional:
                continue
            raise ProtocolError(errors.MISSING_FIELD, wire)
        if raw is None:
            raise _bad(wire, "nil is not allowed; omit an absent field")
        kwargs[name] = raw if kind not in _NESTED else _from_wire(kind, wire, raw)
    return kwargs


# -- the compiled fast path (protocol/fastpath.py) ----------------------------------------


def _without(controls: str) -> str:
    return f"^[^{controls}]*\\Z"


def _one_of_type(choices: tuple[str, ...]) -> Any:
    return Literal[choices]  # a tuple subscript is the literal of its members


_TITLE_TYPE: Final[Any] = Annotated[
    str, Meta(min_length=1, max_length=MAX_TITLE, pattern=_without(LINE_CONTROLS))
]
# The fields of an event body itself leave their patterns to :data:`_AFTER`: msgspec
# calls into Python's ``re`` for each, which cost much of its decoding
# (docs/performance.md); the checks there accept most values without a match.
_TITLE_FIELD: Final[Any] = Annotated[str, Meta(min_length=1, max_length=MAX_TITLE)]
_MS_TYPE: Final[Any] = Annotated[int, Meta(ge=0, le=MAX_MS)]
_DIGEST_TYPE: Final[Any] = fastpath.sized_bytes(DIGEST_LEN)
_WIRE_MILESTONE: Final = fastpath.struct(
    "Milestone", [("title", _TITLE_TYPE, False), ("due", _MS_TYPE, False)]
)
_WIRE_FILE: Final = fastpath.struct(
    "FileRef",
    [
        ("digest", _DIGEST_TYPE, False),
        (
            "name",
            Annotated[
                str, Meta(min_length=1, max_length=MAX_FILE_NAME, pattern=_without(LINE_CONTROLS))
            ],
            False,
        ),
        ("size", _MS_TYPE, False),
        ("type", Annotated[str, Meta(pattern=f"^{MEDIA_TYPE_PATTERN}\\Z")], False),
    ],
)
_WIRE_DEADLINES: Final = fastpath.struct(
    "Deadlines", [(key, _MS_TYPE, False) for key in _DEADLINE_KEYS]
)
_WIRE_TYPES: Final[Mapping[str, Any]] = {
    "node": str,
    "unit": str,
    "code": str,
    "item": str,
    "title": _TITLE_FIELD,
    "text": Annotated[str, Meta(max_length=MAX_TEXT)],
    "reason": Annotated[str, Meta(max_length=MAX_REASON)],
    "counter": Annotated[int, Meta(ge=1, le=MAX_COUNTER)],
    "ms": _MS_TYPE,
    "percent": Annotated[int, Meta(ge=0, le=100)],
    "index": Annotated[int, Meta(ge=0, le=MAX_MILESTONES - 1)],
    "bool": bool,
    "class": _one_of_type(CLASSES),
    "calendar": _one_of_type(CALENDARS),
    "outcome": _one_of_type(OUTCOMES),
    "grade": _one_of_type(GRADES),
    "units": Annotated[tuple[str, ...], Meta(max_length=MAX_UNITS)],
    "digests": Annotated[tuple[_DIGEST_TYPE, ...], Meta(max_length=MAX_ATTACHMENTS)],
    "files": Annotated[
        tuple[_WIRE_FILE, ...],  # type: ignore[valid-type]  # a type made at run time
        Meta(max_length=MAX_ATTACHMENTS),
    ],
    "milestones": Annotated[
        tuple[_WIRE_MILESTONE, ...],  # type: ignore[valid-type]  # a type made at run time
        Meta(min_length=1, max_length=MAX_MILESTONES),
    ],
    "deadlines": _WIRE_DEADLINES,
    "event_id": Annotated[str, Meta(min_length=64, max_length=64)],
}
"""Each field kind as a type msgspec checks: everything of its check (``_CHECKS``) but
what :data:`_AFTER` checks afterwards."""


def _known_matches(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    """Whether a string matches ``pattern``, remembering the strings that did: a
    batch names the same few nodes, units and codes again and again."""
    matched: set[str] = set()

    def check(value: Any) -> bool:
        if value in matched:
            return True
        if pattern.match(value) is None:
            return False
        if len(matched) >= _KNOWN_MAX:
            matched.clear()
        matched.add(value)
        return True

    return check


_KNOWN_MAX: Final = 4096
_node_id = _known_matches(NODE_ID_RE)
_code = _known_matches(CODE_RE)
_unit = _known_matches(UNIT_RE)


def _text(value: Any) -> bool:
    # isprintable() is false for every control, surrogate and line or paragraph
    # separator (and for some allowed characters: then the pattern decides).
    return value.isprintable() or _BAD_TEXT.search(value) is None


def _title(value: Any) -> bool:
    return (value.isprintable() or _BAD_LINE.search(value) is None) and bool(value.strip())


def _units(value: Any) -> bool:
    return all(map(_unit, value)) and _distinct(value)


def _distinct(value: Any) -> bool:
    return len(set(value)) == len(value)


def _item_id(value: Any) -> bool:
    parse_item_id(value)
    return True


def _plan(value: Any) -> bool:
    previous = -1
    for milestone in value:
        if milestone.due <= previous or not milestone.title.strip():
            return False
        previous = milestone.due
    return True


def _ordered(value: Any) -> bool:
    return bool(value.deploy <= value.feedback <= value.resolve)


_AFTER: Final[Mapping[str, Callable[[Any], bool]]] = {
    "node": _node_id,
    "unit": _unit,
    "code": _code,
    "item": _item_id,
    "title": _title,
    "text": _text,
    "reason": _text,
    "units": _units,
    "digests": _distinct,
    "files": lambda value: len({f.digest for f in value}) == len(value),
    "milestones": _plan,
    "deadlines": _ordered,
    "event_id": lambda value: EVENT_ID_RE.match(value) is not None,
}
"""What each field kind's check (with Milestone's and Deadlines') asks that its type in
:data:`_WIRE_TYPES` does not: false, or a ProtocolError, when it fails."""

unchecked_milestone: Final = fastpath.builder(Milestone, _MILESTONE_KEYS)
"""A Milestone from (title, due) without its checks: only for values that passed them
(the fast path, or this node's decoding worker)."""
unchecked_deadlines: Final = fastpath.builder(Deadlines, _DEADLINE_KEYS)
"""Deadlines from (deploy, feedback, resolve) without their checks (see above)."""
unchecked_file: Final = fastpath.builder(FileRef, _FILE_KEYS)
"""A FileRef from (digest, name, size, type) without its checks (see above)."""
file_values: Final = attrgetter(*_FILE_KEYS)
"""A file's (digest, name, size, type), as unchecked_file takes them."""
milestone_values: Final = attrgetter(*_MILESTONE_KEYS)
"""A milestone's (title, due), as unchecked_milestone takes them."""
deadline_values: Final = attrgetter(*_DEADLINE_KEYS)
"""The (deploy, feedback, resolve) of deadlines, as unchecked_deadlines takes them."""
_CONVERT: Final[Mapping[str, Callable[[Any], object]]] = {
    "deadlines": lambda wire: unchecked_deadlines(deadline_values(wire)),
    "milestones": lambda wire: tuple(unchecked_milestone(milestone_values(m)) for m in wire),
    "files": lambda wire: tuple(unchecked_file(file_values(f)) for f in wire),
}


class _Fast(NamedTuple):
    mirror: fastpath.Mirror[Any]
    values: Callable[[Any], tuple[object, ...]]
    build: Callable[[Sequence[object]], Any]
    after: tuple[tuple[int, Callable[[Any], bool]], ...]
    """(position in the values, check) of the fields :data:`_AFTER` checks."""


def _fast(cls: type) -> _Fast:
    specs = _schema(cls).fields
    shape = fastpath.struct(
        cls.__name__, [(f.wire, _WIRE_TYPES[f.kind], f.optional) for f in specs]
    )
    return _Fast(
        mirror=fastpath.Mirror(shape),
        values=attrgetter(*(f.wire for f in specs)),
        build=fastpath.builder(
            cls,
            [f.name for f in specs],
            {i: _CONVERT[f.kind] for i, f in enumerate(specs) if f.kind in _CONVERT},
        ),
        after=tuple((i, _AFTER[f.kind]) for i, f in enumerate(specs) if f.kind in _AFTER),
    )


_FAST: Final = {cls.TYPE: _fast(cls) for cls in EVENT_TYPES.values()}


def _decode_fast(type_: str, body: bytes) -> Event | None:
    """``decode_event(type_, body)`` when the fast path accepts it, else None."""
    fast = _FAST.get(type_) if type(type_) is str else None
    if fast is None or len(body) > EVENT_LIMITS.max_size:
        return None
    wire = fast.mirror.decode(body)
    if wire is None:
        return None
    values = fast.values(wire)
    try:
        for i, check in fast.after:
            value = values[i]
            if value is not None and not check(value):
                return None
        event: Event = fast.build(values)
        event._check()
    except Exception:  # a ProtocolError or worse: the strict path says which
        return None
    return event


def decode_event(type_: str, body: bytes) -> Event:
    """Decode and validate an event body of envelope type ``type_``.

    Raises :class:`ProtocolError` (``unknown_kind``, ``unknown_field``,
    ``missing_field``, ``bad_field`` or a codec reason) and nothing else.
    """
    event = _decode_fast(type_, body)
    return _decode_strict(type_, body) if event is None else event


def _decode_strict(type_: str, body: bytes) -> Event:
    """:func:`decode_event` with the strict codec and the classes' own checks: the only
    path that refuses, and the one that says why."""
    cls = EVENT_TYPES.get(type_) if type(type_) is str else None
    if cls is None:
        raise ProtocolError(errors.UNKNOWN_KIND, errors.shown(type_))
    try:
        # Every field's check tests the type of what it accepts (strings, integers,
        # bytes, and lists or maps of those of a known shape: at most a list of
        # maps inside the body's map, depth 3), so the codec's walk over the
        # decoded tree (depth, no floats) would find nothing more in an event
        # that decodes.
        return _event_of(cls, codec.decode(body, EVENT_LIMITS, check_tree=False))
    except ProtocolError:
        pass
    # Refused: decode again with every check, so the reason is the one a full
    # decode gives first (a float or a deep value before a bad field).
    return _event_of(cls, codec.decode(body, EVENT_LIMITS))


EVENT_PATHS: Final = fastpath.Paths(fast=_decode_fast, strict=_decode_strict)
""":func:`decode_event`'s two paths, named for the tests that hold the fast one to the
strict one (protocol/fastpath.py)."""


def _event_of(cls: type[Event], value: codec.Value) -> Event:
    try:
        if type(value) is not dict:
            raise _bad("body", "must be a map")
        return cls(**_arguments(_schema(cls), value))  # type: ignore[arg-type]
    except ProtocolError:
        raise
    except Exception as exc:  # the promise is: nothing else escapes
        raise ProtocolError(errors.BAD_FIELD, type(exc).__name__) from None
