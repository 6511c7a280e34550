"""Request bodies: one msgspec Struct per JSON body, the one statement of what it may hold.

Both the checks and the OpenAPI document come from these classes: :func:`decode`
turns a parsed JSON object into a Struct with ``msgspec.convert`` (types,
lengths, bounds, patterns, required and unknown fields), and
``node.http.api.openapi`` publishes ``msgspec.json.schema_components`` of
:data:`ALL` as the request schemas. The protocol's own bounds and patterns
(``protocol.events``) are used as they are, so the API never lets through what
signing the event would refuse; the bounds that are the node's alone are the
``MAX_*`` constants here.

Three rules JSON Schema cannot state are applied by :func:`decode` around
``msgspec.convert``, and said in the document's descriptions instead:

- a ``null`` value counts as an absent field (so a required field given
  ``null`` is ``missing_field``);
- strings are stripped of surrounding white space before they are checked
  (a field whose type carries ``Meta(extra={"strip": False})``, the password,
  is not), so ``min_length=1`` means "not only white space"; the patterns
  rely on it (Python's ``$`` also matches before a final newline);
- rules across fields (a reason required only when returning, class or
  deadline but not both, at least one field to update) are each Struct's
  :meth:`Body.check`, run after conversion; rules that need the node (its
  boards, units, clock) stay with the handler.

A refusal is the API's 400: ``missing_field``, ``unknown_field`` or
``bad_field`` (or the reason a field's type names in ``extra={"reason": ...}``),
with the field's path (``parts[0].assignee``, ``milestones[1].due``).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct, field
from msgspec import inspect as mi

from node.http.errors import ApiError, bad
from protocol.events import (
    CALENDARS,
    CLASSES,
    CODE_PATTERN,
    DIGEST_LEN,
    ITEM_ID_PATTERN,
    LINE_CONTROLS,
    MAX_ATTACHMENTS,
    MAX_MILESTONES,
    MAX_MS,
    MAX_REASON,
    MAX_TEXT,
    MAX_TITLE,
    MAX_UNITS,
    NODE_ID_PATTERN,
    OUTCOMES,
    TEXT_CONTROLS,
)

# -- the node's own bounds (the protocol's are imported above) -----------------------------

MAX_JSON_BYTES = 256 * 1024
"""Default cap of a JSON body (the item endpoints take ``api.max_body_bytes``)."""
SMALL_JSON_BYTES = 4096
"""Cap of the small bodies: sign-in and contact details."""
MAX_NAME = 64
MAX_PASSWORD = 1024
MAX_PHONE = 32
MAX_EMAIL = 254
MAX_PLAN_MILESTONES = 24
"""A plan submitted here has at most this many milestones (the protocol allows
:data:`protocol.events.MAX_MILESTONES`; two years of monthly steps is plenty)."""
MAX_PARTS = 50
"""Sub-items made by one decomposition."""
MAX_MOMENT_TEXT = 40

# -- patterns, anchored (msgspec searches; JSON Schema patterns are unanchored too) ---------

LINE = f"^[^{LINE_CONTROLS}]*$"
TEXT = f"^[^{TEXT_CONTROLS}]*$"
NODE_ID = f"^{NODE_ID_PATTERN}$"
CODE = f"^{CODE_PATTERN}$"
ITEM_ID = f"^{ITEM_ID_PATTERN}$"
DIGEST = f"^[0-9a-f]{{{2 * DIGEST_LEN}}}$"
DIGEST_RE = re.compile(f"[0-9a-f]{{{2 * DIGEST_LEN}}}\\Z")

PATTERN_MEANINGS: dict[str, str] = {
    LINE: "contains a control character or a line break",
    TEXT: "contains a control character",
    NODE_ID: "must be a node id or unit code: a letter or digit, then up to 63 of "
    "letters, digits, '_', '.', '-'",
    CODE: "must be a code of 1-32 of a-z, 0-9, '_'",
    DIGEST: f"must be a {2 * DIGEST_LEN}-character hex SHA-256",
}
"""What a refusal says for each pattern (msgspec's message quotes the pattern)."""

# -- field types ---------------------------------------------------------------------------

Title = Annotated[str, Meta(min_length=1, max_length=MAX_TITLE, pattern=LINE)]
Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT, pattern=TEXT)]
MaybeText = Annotated[str, Meta(max_length=MAX_TEXT, pattern=TEXT)]
Reason = Annotated[str, Meta(min_length=1, max_length=MAX_REASON, pattern=TEXT)]
MaybeReason = Annotated[str, Meta(max_length=MAX_REASON, pattern=TEXT)]
Code = Annotated[str, Meta(pattern=NODE_ID)]
"""A unit code of this node or a node id (the protocol's ``unit`` and ``node``)."""
Units = Annotated[
    tuple[Code, ...],
    Meta(
        max_length=MAX_UNITS,
        description="Co-operating unit codes.",
        extra_json_schema={"uniqueItems": True},
    ),
]
Digest = Annotated[str, Meta(pattern=DIGEST)]
Digests = Annotated[
    tuple[Digest, ...],
    Meta(
        max_length=MAX_ATTACHMENTS,
        description="SHA-256 digests (hex) of files uploaded with POST /api/v1/attachments.",
        extra_json_schema={"uniqueItems": True},
    ),
]
Moment = (
    Annotated[int, Meta(ge=1, le=MAX_MS, description="Unix milliseconds.")]
    | Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_MOMENT_TEXT,
            description="A date (2026-12-01: the end of that day, China time) or an ISO "
            "date-time (2026-12-01T18:00 is China time; or give an offset).",
            examples=["2026-12-01", "2026-12-01T18:00", "2026-12-01T18:00:00+08:00"],
        ),
    ]
)
Percent = Annotated[int, Meta(ge=0, le=100)]
Index = Annotated[
    int,
    Meta(
        ge=0,
        le=MAX_MILESTONES - 1,
        description="Index of the approved plan's milestone this report says is reached.",
    ),
]
Board = Annotated[
    str,
    Meta(
        pattern=CODE,
        description="The '1+5' board (plus this node's extra boards).",
        extra={"reason": "unknown_board"},
    ),
]
Source = Annotated[str, Meta(pattern=CODE, extra={"reason": "unknown_source"})]

if TYPE_CHECKING:
    ItemClass = str
    Calendar = str
    Outcome = str
else:
    # Literal of the protocol's tuples: one list of values, checked and documented.
    ItemClass = Literal[CLASSES]
    Calendar = Literal[CALENDARS]
    Outcome = Literal[OUTCOMES]
PART_CLASSES = (*(c for c in CLASSES if c != "explicit"), "inherit")
if TYPE_CHECKING:
    PartClass = str
else:
    PartClass = Literal[PART_CLASSES]

_FUTURE = " In the future."


# -- the bodies ----------------------------------------------------------------------------


class Body(Struct, forbid_unknown_fields=True, kw_only=True):
    """A JSON request body (subclasses are the API's bodies)."""

    schema_extra: ClassVar[dict[str, Any]] = {}
    """JSON Schema keywords stating :meth:`check`'s rules in the document, if it can."""

    def check(self, at: str = "") -> None:
        """Rules across fields; ``at`` prefixes the field names (a nested body)."""


class Login(Body):
    """Sign in with name and password."""

    name: Annotated[str, Meta(min_length=1, max_length=MAX_NAME, pattern=LINE)]
    password: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_PASSWORD,
            pattern=TEXT,
            description="Not stripped.",
            extra={"strip": False},
        ),
    ]


class Contact(Body):
    """Your own phone (SMS) and email for reminders; "" clears one; at least one."""

    phone: (
        Annotated[
            str,
            Meta(
                max_length=MAX_PHONE,
                pattern=LINE,
                description="5-20 digits, optionally after +; spaces and dashes are dropped.",
            ),
        ]
        | None
    ) = None
    email: Annotated[str, Meta(max_length=MAX_EMAIL, pattern=LINE)] | None = None

    schema_extra: ClassVar[dict[str, Any]] = {"minProperties": 1}

    def check(self, at: str = "") -> None:
        if self.phone is None and self.email is None:
            raise bad(f"{at}phone", 'give phone or email ("" clears one)', "missing_field")


class Assignment(Body):
    """A new item, assigned to a unit of this node or a node below it.

    `class` general: resolve in 7 days; major: in 1 month; giving `deadline`
    instead makes it explicit (`class` then absent or `explicit`).
    """

    title: Annotated[Title, Meta(description="What is to be done.")]
    assignee: Annotated[
        Code, Meta(description="A unit code of this node, or the id of a node below it.")
    ]
    description: Annotated[MaybeText, Meta(description="Details.")] = ""
    board: Board = "daily"
    source: Source = "office"
    calendar: (
        Annotated[Calendar, Meta(description="Day counting; default workflow.calendar.")]
        | None
    ) = None
    item_class: ItemClass | None = field(default=None, name="class")
    deadline: Annotated[Moment, Meta(description="The resolve deadline." + _FUTURE)] | None = (
        None
    )
    lead_unit: (
        Annotated[Code, Meta(description="Lead unit (a unit of this node when assigning here).")]
        | None
    ) = None
    co_units: Units = ()

    def check(self, at: str = "") -> None:
        if self.deadline is not None:
            if self.item_class not in (None, "explicit"):
                raise bad(f"{at}class", "give either class or deadline, not both")
        elif self.item_class == "explicit":
            raise bad(f"{at}class", "explicit needs a deadline (or give general or major)")
        _distinct(self.co_units, f"{at}co_units")


class Part(Body):
    """One sub-item of a decomposition.

    `class` inherit (the default): the parent's resolve deadline (general when
    that is less than an hour away). Not together with `deadline`.
    """

    assignee: Annotated[Code, Meta(description="A unit code of this node, or a node below it.")]
    title: Title
    description: MaybeText = ""
    lead_unit: Code | None = None
    co_units: Units = ()
    item_class: PartClass | None = field(default=None, name="class")
    deadline: Moment | None = None

    def check(self, at: str = "") -> None:
        if self.deadline is not None and self.item_class is not None:
            raise bad(f"{at}class", "give either class or deadline, not both")
        _distinct(self.co_units, f"{at}co_units")


class Decompose(Body):
    """Split the item into sub-items assigned further down (or to own units)."""

    parts: Annotated[tuple[Part, ...], Meta(min_length=1, max_length=MAX_PARTS)]

    def check(self, at: str = "") -> None:
        for i, part in enumerate(self.parts):
            part.check(f"{at}parts[{i}].")


class Deploy(Body):
    """Record that the item was studied and deployed (研究部署)."""

    note: Text = "已研究部署"


class Feedback(Body):
    """Report progress (反馈)."""

    text: Annotated[Text, Meta(description="The report.")]
    progress: Percent
    milestone: Index | None = None
    attachments: Digests = ()

    def check(self, at: str = "") -> None:
        _distinct(self.attachments, f"{at}attachments")


class Milestone(Body):
    """One dated step of a plan."""

    title: Title
    due: Moment


class Plan(Body):
    """Submit a plan with dated milestones; the last one becomes the resolve deadline
    once approved."""

    milestones: Annotated[
        tuple[Milestone, ...],
        Meta(min_length=1, max_length=MAX_PLAN_MILESTONES, description="In time order."),
    ]
    note: MaybeText = ""


class Approve(Body):
    """Approve the pending plan."""

    reason: Annotated[MaybeReason, Meta(description="Optional remark.")] = ""


class Reject(Body):
    """Reject the pending plan, saying why."""

    reason: Reason


class Resolve(Body):
    """Report the item done (办结)."""

    text: Annotated[Text, Meta(description="What was done.")]
    attachments: Digests = ()

    def check(self, at: str = "") -> None:
        _distinct(self.attachments, f"{at}attachments")


class Review(Body):
    """Accept or return a resolution; returning needs a reason."""

    outcome: Outcome
    reason: Annotated[MaybeReason, Meta(description="Required when returning.")] | None = None

    schema_extra: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"outcome": {"const": "return"}}, "required": ["outcome"]},
        "then": {"required": ["reason"], "properties": {"reason": {"minLength": 1}}},
    }

    def check(self, at: str = "") -> None:
        if self.outcome == "return":
            if self.reason is None:
                raise bad(f"{at}reason", "is required when returning", "missing_field")
            if not self.reason:
                raise bad(f"{at}reason", "must not be empty when returning")


class Close(Body):
    """Close (销号) an accepted item."""

    note: Text = "销号"


class Withdraw(Body):
    """Withdraw an open item, saying why."""

    reason: Reason


class Update(Body):
    """Change title, description, deadline or units of an open item (at least one)."""

    title: Title | None = None
    description: MaybeText | None = None
    deadline: (
        Annotated[
            Moment,
            Meta(
                description="The new resolve deadline; deploy and feedback deadlines are "
                "pulled in to it if later." + _FUTURE
            ),
        ]
        | None
    ) = None
    lead_unit: Code | None = None
    co_units: Units | None = None

    schema_extra: ClassVar[dict[str, Any]] = {"minProperties": 1}

    def check(self, at: str = "") -> None:
        if all(
            value is None
            for value in (self.title, self.description, self.deadline, self.lead_unit,
                          self.co_units)
        ):
            raise ApiError(
                400,
                "missing_field",
                "give at least one of title, description, deadline, lead_unit, co_units",
                f"{at}body" if at else "body",
            )
        _distinct(self.co_units or (), f"{at}co_units")


ACTIONS: dict[str, type[Body]] = {
    "deploy": Deploy,
    "feedback": Feedback,
    "plan": Plan,
    "approve": Approve,
    "reject": Reject,
    "resolve": Resolve,
    "review": Review,
    "close": Close,
    "withdraw": Withdraw,
    "update": Update,
    "decompose": Decompose,
}
"""``POST /api/v1/items/{item}/{action}``: the body of each action."""

ALL: tuple[type[Body], ...] = (Login, Contact, Assignment, *ACTIONS.values())
"""Every request body of the API (nested ones, Part and Milestone, come with them)."""

REF = "#/components/schemas/{name}"
"""Where the OpenAPI document keeps the bodies' schemas."""


def ref(kind: type[Body]) -> dict[str, str]:
    """The OpenAPI reference to ``kind``'s schema."""
    return {"$ref": REF.format(name=kind.__name__)}


def _distinct(values: tuple[str, ...], name: str) -> None:
    """JSON Schema's ``uniqueItems``, which msgspec does not check."""
    if len(set(values)) != len(values):
        seen: set[str] = set()
        for i, value in enumerate(values):
            if value in seen:
                raise bad(f"{name}[{i}]", "is given twice")
            seen.add(value)


# -- decoding ------------------------------------------------------------------------------

B = TypeVar("B", bound=Body)


def decode(value: Any, kind: type[B], at: str = "") -> B:
    """``value`` (a parsed JSON object) as a ``kind``, or the API's 400 saying why."""
    prepared = _prepare(value, _plan(kind), at)
    try:
        body = msgspec.convert(prepared, kind)
    except msgspec.ValidationError as exc:
        raise _refusal(kind, str(exc), at) from None
    body.check(at)
    return body


class _Plan:
    """What :func:`_prepare` does to the fields of one Struct, worked out once."""

    def __init__(self, fields: frozenset[str]) -> None:
        self.fields = fields
        self.strip: set[str] = set()
        self.strip_items: set[str] = set()
        self.nested: dict[str, _Plan] = {}
        self.nested_items: dict[str, _Plan] = {}


@functools.cache
def _plan(kind: type[Struct]) -> _Plan:
    info = mi.type_info(kind)
    assert isinstance(info, mi.StructType)
    plan = _Plan(frozenset(f.encode_name for f in info.fields))
    for f in info.fields:
        name = f.encode_name
        for t, strip in _members(f.type):
            if isinstance(t, mi.StrType) and strip:
                plan.strip.add(name)
            elif isinstance(t, mi.StructType):
                plan.nested[name] = _plan(t.cls)
            elif isinstance(t, mi.VarTupleType | mi.ListType):
                for item, item_strip in _members(t.item_type):
                    if isinstance(item, mi.StrType) and item_strip:
                        plan.strip_items.add(name)
                    elif isinstance(item, mi.StructType):
                        plan.nested_items[name] = _plan(item.cls)
    return plan


def _members(t: mi.Type, strip: bool = True) -> list[tuple[mi.Type, bool]]:
    """The types a value of ``t`` may have (unions and Meta unwrapped), each with
    whether its strings are stripped."""
    if isinstance(t, mi.Metadata):
        return _members(t.type, strip and bool((t.extra or {}).get("strip", True)))
    if isinstance(t, mi.UnionType):
        return [m for member in t.types for m in _members(member, strip)]
    return [(t, strip)]


def _prepare(value: Any, plan: _Plan, at: str) -> Any:
    """``value`` with nulls dropped and strings stripped, or an unknown field refused
    (here, by its exact key: msgspec's message would have to be parsed for it)."""
    if not isinstance(value, dict):
        return value  # msgspec says what it should be
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in plan.fields:
            raise bad(f"{at}{key}", "is not a known field", "unknown_field")
        if item is None:
            continue
        if key in plan.strip and isinstance(item, str):
            item = item.strip()
        elif key in plan.strip_items and isinstance(item, list):
            item = [v.strip() if isinstance(v, str) else v for v in item]
        elif key in plan.nested:
            item = _prepare(item, plan.nested[key], f"{at}{key}.")
        elif key in plan.nested_items and isinstance(item, list):
            item = [
                _prepare(v, plan.nested_items[key], f"{at}{key}[{i}].")
                for i, v in enumerate(item)
            ]
        out[key] = item
    return out


# -- refusals ------------------------------------------------------------------------------

_AT = re.compile(r"(?s)(.*) - at `\$(.*)`\Z")
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_WORDS = {
    "str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
    "array": "a list", "object": "an object", "null": "null",
}


def _refusal(kind: type[Body], message: str, at: str) -> ApiError:
    """msgspec's ValidationError as the API's 400, naming the field by its path."""
    match = _AT.match(message)
    what, path = (match[1], match[2]) if match else (message, "")
    steps: list[str | int] = [
        name if name else int(index) for name, index in _PATH_STEP.findall(path)
    ]
    name = at + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps).lstrip(".")
    missing = re.fullmatch(r"Object missing required field `(.+)`", what)
    if missing:
        field_name = f"{name}.{missing[1]}" if name else f"{at}{missing[1]}"
        return bad(field_name, "is required", "missing_field")
    t = _type_at(mi.type_info(kind), steps)
    extra = _extra_at(mi.type_info(kind), steps)
    return bad(name or "body", _say(what, t), str(extra.get("reason", "bad_field")))


def _say(what: str, t: mi.Type | None) -> str:
    """msgspec's words for what is wrong, in the API's."""
    if m := re.fullmatch(r"Expected `(.+)`, got `(.+)`", what):
        wanted = [_WORDS.get(w, w) for w in m[1].split(" | ") if w != "null"]
        return f"must be {' or '.join(wanted)}, not {_WORDS.get(m[2], m[2])}"
    if what.startswith("Expected `str` matching regex") and isinstance(t, mi.StrType):
        return PATTERN_MEANINGS.get(t.pattern or "", what)
    if m := re.fullmatch(r"Expected `str` of length ([<>]=) (\d+)", what):
        if m[1] == ">=" and m[2] == "1":
            return "must not be empty"
        return f"{'at most' if m[1] == '<=' else 'at least'} {m[2]} characters"
    if m := re.fullmatch(r"Expected `array` of length ([<>]=) (\d+)", what):
        if isinstance(t, mi.VarTupleType | mi.ListType):
            return f"must list {t.min_length or 0} to {t.max_length}"
        return f"must list {'at most' if m[1] == '<=' else 'at least'} {m[2]}"
    if re.fullmatch(r"Expected `int` [<>]=? -?\d+", what) and isinstance(t, mi.IntType):
        return f"must be between {t.ge} and {t.le}"
    if what.startswith("Invalid enum value") and isinstance(t, mi.LiteralType):
        return f"must be one of {', '.join(map(str, t.values))}"
    return what


def _type_at(t: mi.Type, steps: list[str | int]) -> mi.Type | None:
    """The type at ``steps`` below ``t`` (Meta and optional unwrapped), if one."""
    for step in steps:
        t = _bare(t)
        if isinstance(step, str) and isinstance(t, mi.StructType):
            found = [f.type for f in t.fields if f.encode_name == step]
            if not found:
                return None
            t = found[0]
        elif isinstance(step, int) and isinstance(t, mi.VarTupleType | mi.ListType):
            t = t.item_type
        else:
            return None
    return _bare(t)


def _bare(t: mi.Type) -> mi.Type:
    while True:
        if isinstance(t, mi.Metadata):
            t = t.type
        elif isinstance(t, mi.UnionType) and len(t.types) == 2 and t.includes_none:
            t = next(m for m in t.types if not isinstance(m, mi.NoneType))
        else:
            return t


def _extra_at(t: mi.Type, steps: list[str | int]) -> dict[str, Any]:
    """The ``Meta(extra=...)`` of the field at ``steps``."""
    leaf = _type_at(t, steps[:-1]) if steps else None
    if not isinstance(leaf, mi.StructType) or not isinstance(steps[-1], str):
        return {}
    extra: dict[str, Any] = {}
    for f in leaf.fields:
        if f.encode_name == steps[-1]:
            for member in _metadata(f.type):
                extra |= member.extra or {}
    return extra


def _metadata(t: mi.Type) -> list[mi.Metadata]:
    if isinstance(t, mi.Metadata):
        return [t, *_metadata(t.type)]
    if isinstance(t, mi.UnionType):
        return [m for member in t.types for m in _metadata(member)]
    return []
