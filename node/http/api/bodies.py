"""Request bodies: one msgspec Struct per JSON body, the one statement of what it may hold.

Both the checks and the OpenAPI document come from these classes:
``node.http.api.validate.decode`` turns a parsed JSON object into a Struct with
``msgspec.convert`` (types, lengths, bounds, patterns, required and unknown
fields), and ``node.http.api.openapi`` publishes
``msgspec.json.schema_components`` of :data:`ALL` as the request schemas. The
protocol's bounds and patterns (``protocol.events``) are used as they are, so
the API never lets through what signing the event would refuse; the bounds
that are the node's alone are the ``MAX_*`` constants here.

What JSON Schema cannot state is done around ``msgspec.convert`` (see
``validate.decode``) and said in the document's descriptions: a ``null``
counts as an absent field; strings are stripped before they are checked
(not a type marked ``Meta(extra={"strip": False})``: the password), so
``min_length=1`` means "not only white space" (and the patterns may end in
``$``, which in Python also matches before a final newline); rules across
fields (a reason required only when returning, class or deadline but not
both, at least one field to update) are each Struct's :meth:`Body.check`,
stated for the document in its ``schema_extra`` where JSON Schema can. Rules
that need the node (its boards, units, clock) stay with the handlers. A field
type's ``Meta(extra={"reason": ...})`` names the reason code of its refusals
(``unknown_board``) instead of ``bad_field``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from msgspec import Meta, Struct, field

from node.clock import MAX_MOMENT_TEXT as MAX_MOMENT_TEXT  # read by parse_moment there
from node.http.errors import ApiError, bad
from protocol.events import (
    CALENDARS,
    CLASSES,
    CODE_PATTERN,
    DIGEST_LEN,
    EVENT_ID_PATTERN,
    GRADES,
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
EventId = Annotated[str, Meta(pattern=f"^{EVENT_ID_PATTERN}$")]
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


MAX_MESSAGE_IDS = 500
"""Messages marked read in one request (``POST /api/v1/messages/read``)."""
MessageId = Annotated[int, Meta(ge=1, le=2**62)]


class MarkRead(Body):
    """Mark messages read: the ``ids`` of ``GET /api/v1/messages``, or ``all``."""

    ids: Annotated[list[MessageId], Meta(min_length=1, max_length=MAX_MESSAGE_IDS)] | None = (
        None
    )
    all: bool | None = None

    schema_extra: ClassVar[dict[str, Any]] = {"minProperties": 1}

    def check(self, at: str = "") -> None:
        if self.ids is None and not self.all:
            raise bad(f"{at}ids", 'give the ids, or "all": true', "missing_field")
        if self.ids is not None and self.all:
            raise bad(f"{at}all", "give the ids or all, not both")


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
    cascade: (
        Annotated[
            str,
            Meta(
                pattern=CODE,
                description="A level below this node's (e.g. township): the item goes "
                "down to every node of that level below the assignee, each level "
                "passing it on (docs/cascade.md).",
            ),
        ]
        | None
    ) = None

    def check(self, at: str = "") -> None:
        if self.deadline is not None:
            if self.item_class not in (None, "explicit"):
                raise bad(f"{at}class", "give either class or deadline, not both")
        elif self.item_class == "explicit":
            raise bad(f"{at}class", "explicit needs a deadline (or give general or major)")
        _distinct(self.co_units, f"{at}co_units")


class Part(Body):
    """One sub-item of a decomposition.

    `class` inherit (the default): the parent's resolve deadline. A part's resolve
    deadline (given, inherited or of its class) is never later than the parent's
    (`deadline_after_parent`). Not together with `deadline`.
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
    answers: (
        Annotated[
            EventId,
            Meta(description="The event id of the leader's instruction (批示) this report "
                             "answers (落实批示情况)."),
        ]
        | None
    ) = None

    def check(self, at: str = "") -> None:
        _distinct(self.attachments, f"{at}attachments")


class MonthlyReport(Body):
    """The month's progress report under an approved plan (按月反馈进展情况): a feedback
    signed ``monthly``."""

    text: Annotated[Text, Meta(description="This month's progress.")]
    progress: Percent
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
    """Accept or return a resolution; returning needs a reason. An acceptance is graded
    (评价): ``grade`` defaults to the rules' grade (docs/rules.md, "The grade"); a
    different one needs a ``reason`` (``grade_needs_reason``)."""

    outcome: Outcome
    reason: Annotated[
        MaybeReason,
        Meta(description="Required when returning, and for a grade other than the default."),
    ] | None = None
    grade: Annotated[
        Literal[GRADES],  # type: ignore[valid-type]
        Meta(description="excellent (优秀), qualified (合格) or unqualified (不合格); "
             "only when accepting. Absent: the rules' default."),
    ] | None = None

    schema_extra: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"outcome": {"const": "return"}}, "required": ["outcome"]},
        "then": {"required": ["reason"], "properties": {"reason": {"minLength": 1}}},
    }

    def check(self, at: str = "") -> None:
        if self.outcome == "return" and self.grade is not None:
            raise bad(f"{at}grade", "only an accepted resolution is graded")
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
    """Change title, description or units of an open item (at least one). The deadline
    moves only by an approved extension request (``request_extension``,
    ``decide_extension``): a ``deadline`` here is refused (``deadline_by_extension``)."""

    title: Title | None = None
    description: MaybeText | None = None
    lead_unit: Code | None = None
    co_units: Units | None = None

    schema_extra: ClassVar[dict[str, Any]] = {"minProperties": 1}

    def check(self, at: str = "") -> None:
        if all(
            value is None
            for value in (self.title, self.description, self.lead_unit, self.co_units)
        ):
            raise ApiError(
                400,
                "missing_field",
                "give at least one of title, description, lead_unit, co_units",
                f"{at}body" if at else "body",
            )
        _distinct(self.co_units or (), f"{at}co_units")


class Urge(Body):
    """Urge the handling unit (催办): the assigner or a node above it; the unit's head
    and operator are notified at once."""

    text: Annotated[Reason, Meta(description="What is wanted, briefly.")]


class Instruct(Body):
    """A leader's instruction (批示) on the item: shown at the top of the item at every
    node holding it; the handling unit is notified and answers it in a feedback."""

    text: Annotated[Text, Meta(description="The instruction.")]


class RequestExtension(Body):
    """Ask the assigner, before the resolve deadline, to move it (延期申请)."""

    text: Annotated[Reason, Meta(description="Why the deadline cannot be met.")]
    deadline: Annotated[
        Moment, Meta(description="The resolve deadline asked for: later than the current one.")
    ]
    progress: Annotated[Text, Meta(description="What has been done so far.")]


class DecideExtension(Body):
    """Approve or refuse the pending extension request; a refusal says why."""

    approve: bool
    text: Annotated[MaybeReason, Meta(description="Required when refusing.")] = ""

    schema_extra: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"approve": {"const": False}}, "required": ["approve"]},
        "then": {"required": ["text"], "properties": {"text": {"minLength": 1}}},
    }

    def check(self, at: str = "") -> None:
        if not self.approve and not self.text:
            raise bad(f"{at}text", "is required when refusing: say why", "missing_field")


ACTIONS: dict[str, type[Body]] = {
    "deploy": Deploy,
    "feedback": Feedback,
    "monthly_report": MonthlyReport,
    "plan": Plan,
    "approve": Approve,
    "reject": Reject,
    "resolve": Resolve,
    "review": Review,
    "close": Close,
    "withdraw": Withdraw,
    "update": Update,
    "urge": Urge,
    "instruct": Instruct,
    "request_extension": RequestExtension,
    "decide_extension": DecideExtension,
    "decompose": Decompose,
}
"""``POST /api/v1/items/{item}/{action}``: the body of each action."""

ALL: tuple[type[Body], ...] = (Login, Contact, MarkRead, Assignment, *ACTIONS.values())
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
