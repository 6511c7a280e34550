"""What is waiting for me (待办): the items a signed-in person has to act on now.

One table, :data:`KINDS`, says what each kind of work is: which side of the item
does it (the assignee handles, the assigner decides), the action it takes
(``hierarchy.roles.Action``: whoever's role may not do it never sees the kind,
and a unit head or operator sees only their own unit's items, the same rule
``hierarchy.permissions.role_may`` applies when they act), the statuses it
waits in, the column giving its deadline and the one it is sorted by (oldest
first), and any further condition. The page, the API and the count in the
navigation all read this table, so a new kind is one more entry:

1. add a :class:`Kind` to :data:`KINDS` (its ``name`` is the API's code, its
   ``label`` the i18n key of its heading, ``node/http/web/i18n.py``);
2. if it waits on something besides a status, give it a ``where`` over the
   columns (as ``extension`` reads ``extension_asked_at``) or over the folded
   state (:func:`state_field`, as ``plan`` does);
3. name it in a test of ``tests/integration/test_todo.py`` (``tests/test_todo_kinds.py``
   fails for a kind no integration test names, or with no label in both languages).

Everything is read through indexes of ``items``, never by folding: an
assignee-side kind is a range of ``ix_items_assignee`` (the items addressed to
this node); an assigner-side kind is a range of ``ix_items_assigner`` (the open
items this node assigned, in the kind's statuses). What waits besides a deadline
is a column that ``node.items.projection.row_of`` fills from the folded state
(``extension_asked_at``, ``instruction_open_at``, ``urge_open_at``), checked on
the rows the index chose. A province's mirror of a million items is thus never
scanned; the work grows with this node's own open items. On SQLite every other
column is written opaque (``node.queries.ledger.columns``), so the planner takes
that index and no other. ``docs/pages.md`` ("待办") has the table in words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Text, and_, cast, func, literal, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from hierarchy.roles import UNIT_ACTIONS, UNIT_ROLES, Action, Role, role_allows
from node.clock import Clock, iso
from node.queries.ledger import LIST_COLUMNS, Columns, columns, summary
from node.queries.messages import unread_statement
from node.storage import schema as t
from node.storage.db import Database
from node.sync.routing import KnownTree
from protocol.fold import Status
from protocol.rules import DEFAULT_POLICY

Side = Literal["assignee", "assigner"]

PER_KIND: Final = 100
"""Items listed per kind at most (the count says how many there are)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Who:
    """The person asking: their role and unit in this node (``User``'s fields)."""

    name: str
    role: Role
    unit: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """What a kind's condition may depend on, besides the person."""

    me: str
    now: int
    below: tuple[str, ...]
    """Levels below this node's: a cascade item naming one of them is passed down here."""
    cascade_auto: bool
    dialect: str


Where = Callable[[Scope, Columns], Sequence[ColumnElement[bool]]]
"""A kind's further condition, over the columns as :func:`conditions` names them."""


def _none(_: Scope, __: Columns) -> Sequence[ColumnElement[bool]]:
    return ()


def _always(_: Scope) -> bool:
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    """One kind of work waiting for a person (see the module docstring)."""

    name: str
    label: str
    side: Side
    action: Action
    statuses: tuple[Status, ...]
    due: str
    """The ``items`` column of the deadline shown (deploy_due, feedback_due, resolve_due)."""
    order: str
    """The ``items`` column sorted on, oldest first: the deadline, or when it arrived."""
    since: str = "updated_at"
    """The ``items`` column of when the work arrived (waiting since)."""
    where: Where = _none
    shown: Callable[[Scope], bool] = _always
    """Whether the kind is listed at all on this node (a node policy may do it for people)."""


def state_field(path: tuple[str, ...], dialect: str) -> ColumnElement[Any]:
    """A field of the folded state stored in ``items.state`` (its ``to_dict()`` JSON), as
    text: for conditions the columns do not carry. Read only on rows an index already
    chose, never to find them."""
    if dialect == "postgresql":
        doc = cast(func.convert_from(t.items.c.state, "UTF8"), JSONB)
        field: ColumnElement[Any] = doc[path].astext
        return field
    return func.json_extract(cast(t.items.c.state, Text), "$." + ".".join(path))


def _waiting_cascade(s: Scope, c: Columns) -> ColumnElement[bool]:
    """A cascade item this node is to pass down and has not yet (node/workflow/cascade.py)."""
    sub = t.items.alias("sub")
    passed = (
        select(sub.c.item_id)
        .where(sub.c.parent_item == t.items.c.item_id)
        .where(sub.c.assigner == s.me)
        .where(sub.c.cascade.is_not(None))
        .exists()
    )
    if not s.below:
        return literal(False)
    return and_(c["cascade"].in_(s.below), ~passed)


def _pass_down(s: Scope, c: Columns) -> Sequence[ColumnElement[bool]]:
    return (_waiting_cascade(s, c),)


def _deploy(s: Scope, c: Columns) -> Sequence[ColumnElement[bool]]:
    # Listed to pass down instead, when people pass items down here.
    return () if s.cascade_auto or not s.below else (~_waiting_cascade(s, c),)


def _due_soon(s: Scope, c: Columns) -> Sequence[ColumnElement[bool]]:
    # Inside a reminder window or past a deadline: the colour's own thresholds.
    return (c["yellow_from"].is_not(None), c["yellow_from"] <= s.now)


def _plan_submitted(s: Scope, c: Columns) -> Sequence[ColumnElement[bool]]:
    return (state_field(("plan", "status"), s.dialect) == "submitted",)


def _extension_pending(_: Scope, c: Columns) -> Sequence[ColumnElement[bool]]:
    return (c["extension_asked_at"].is_not(None),)


def _instruction_open(_: Scope, c: Columns) -> Sequence[ColumnElement[bool]]:
    return (c["instruction_open_at"].is_not(None),)


def _urge_open(_: Scope, c: Columns) -> Sequence[ColumnElement[bool]]:
    return (c["urge_open_at"].is_not(None),)


def _monthly_soon(s: Scope, c: Columns) -> Sequence[ColumnElement[bool]]:
    # From the reminder before the date (rules.ReminderPolicy.monthly_before) on.
    return (c["monthly_due"].is_not(None),
            c["monthly_due"] <= s.now + DEFAULT_POLICY.monthly_before)


_HANDLING = (Status.DEPLOYED, Status.REPORTING, Status.PLANNED, Status.RETURNED)
_WAITING = (Status.ASSIGNED, *_HANDLING)

KINDS: Final[tuple[Kind, ...]] = (
    Kind(name="deploy", label="todo.kind.deploy", side="assignee", action=Action.DEPLOY,
         statuses=(Status.ASSIGNED,), due="deploy_due", order="deploy_due", where=_deploy),
    Kind(name="pass_down", label="todo.kind.pass_down", side="assignee",
         action=Action.DECOMPOSE,
         statuses=(Status.ASSIGNED, *_HANDLING), due="deploy_due", order="assigned_at",
         where=_pass_down, shown=lambda s: not s.cascade_auto and bool(s.below)),
    Kind(name="feedback", label="todo.kind.feedback", side="assignee", action=Action.FEEDBACK,
         statuses=(Status.DEPLOYED,), due="feedback_due", order="feedback_due"),
    Kind(name="redo", label="todo.kind.redo", side="assignee", action=Action.RESOLVE,
         statuses=(Status.RETURNED,), due="resolve_due", order="updated_at"),
    Kind(name="due_soon", label="todo.kind.due_soon", side="assignee", action=Action.RESOLVE,
         statuses=(Status.REPORTING, Status.PLANNED), due="resolve_due", order="resolve_due",
         where=_due_soon),
    Kind(name="plan", label="todo.kind.plan", side="assigner", action=Action.DECIDE_PLAN,
         statuses=(*_HANDLING, Status.RESOLVED), due="resolve_due", order="updated_at",
         where=_plan_submitted),
    Kind(name="review", label="todo.kind.review", side="assigner", action=Action.REVIEW,
         statuses=(Status.RESOLVED,), due="resolve_due", order="updated_at"),
    Kind(name="extension", label="todo.kind.extension", side="assigner",
         action=Action.DECIDE_EXTENSION, statuses=_WAITING, due="resolve_due",
         order="extension_asked_at", since="extension_asked_at", where=_extension_pending),
    Kind(name="instruction", label="todo.kind.instruction", side="assignee",
         action=Action.FEEDBACK, statuses=_HANDLING, due="resolve_due",
         order="instruction_open_at", since="instruction_open_at", where=_instruction_open),
    Kind(name="monthly", label="todo.kind.monthly", side="assignee", action=Action.FEEDBACK,
         statuses=_HANDLING, due="monthly_due", order="monthly_due", where=_monthly_soon),
    Kind(name="urged", label="todo.kind.urged", side="assignee", action=Action.FEEDBACK,
         statuses=_WAITING, due="resolve_due", order="urge_open_at", since="urge_open_at",
         where=_urge_open),
)
"""Every kind of work, in the order the page shows them."""
KIND_NAMES: Final = tuple(k.name for k in KINDS)


def kinds_for(who: Who, scope: Scope) -> tuple[Kind, ...]:
    """The kinds this person may ever have to do here: their role allows the action,
    and the node lists the kind. A viewer has none."""
    return tuple(k for k in KINDS if role_allows(who.role, k.action) and k.shown(scope))


def conditions(kind: Kind, who: Who, s: Scope) -> list[ColumnElement[bool]]:
    """The WHERE clause of ``kind`` for ``who``: the side, the statuses, the unit, the rest."""
    keys = {"assignee"} if kind.side == "assignee" else {"assigner", "done", "status"}
    c = columns(keys) if s.dialect == "sqlite" else t.items.c
    out: list[ColumnElement[bool]] = []
    if kind.side == "assignee":
        out.append(c["assignee"] == s.me)
    else:
        # ix_items_assigner: this node's open items of the kind's statuses, exactly.
        out.append(c["assigner"] == s.me)
    out.append(c["done"].is_(False))
    out.append(c["status"].in_([str(x) for x in kind.statuses]))
    if who.role in UNIT_ROLES and kind.action in UNIT_ACTIONS:
        # hierarchy.permissions.role_may: their unit is the item's (lead) unit.
        unit = who.unit or ""
        out.append(or_(
            c["assignee_unit"] == unit,
            and_(c["assignee_unit"].is_(None), c["lead_unit"] == unit),
        ))
    out.extend(kind.where(s, c))
    return out


def count_of(kind: Kind, who: Who, s: Scope) -> ColumnElement[int]:
    inner = select(literal(1)).where(*conditions(kind, who, s)).subquery()
    return select(func.count()).select_from(inner).scalar_subquery()


def total_statement(who: Who, s: Scope) -> ColumnElement[int]:
    """How many things wait for ``who``, as one scalar: the navigation's count."""
    counts = [count_of(k, who, s) for k in kinds_for(who, s)]
    if not counts:
        return literal(0)
    total: ColumnElement[int] = counts[0]
    for more in counts[1:]:
        total = total + more
    return type_coerce(total, t.items.c.progress.type)


def page_statement(kind: Kind, who: Who, s: Scope, limit: int = PER_KIND) -> Select[Any]:
    c = t.items.c
    return (
        select(*LIST_COLUMNS, c.cascade, c.extension_asked_at, c.instruction_open_at,
               c.urge_open_at, c.monthly_due)
        .where(*conditions(kind, who, s))
        .order_by(c[kind.order].asc(), c.item_id.asc())
        .limit(limit)
    )


def entry(kind: Kind, row: Any, now: int) -> dict[str, Any]:
    """One item of the to-do: the ledger's summary, the kind's deadline, since when."""
    due = row._mapping[kind.due]
    return {
        **summary(row, now),
        "kind": kind.name,
        "due": iso(due),
        "due_in_s": None if due is None else (due - now) // 1000,
        "waiting_since": iso(row._mapping[kind.since]),
        "cascade": row.cascade,
    }


class Todo:
    """The to-do of each person of one node (``cascade_auto``: the node's policy
    ``cascade.auto``; on, nobody passes items down by hand, so that kind is not listed)."""

    def __init__(self, db: Database, clock: Clock, tree: KnownTree, *, cascade_auto: bool
                 ) -> None:
        self.db = db
        self.clock = clock
        self.known = tree
        self.cascade_auto = cascade_auto

    def scope(self, now: int | None = None) -> Scope:
        tree, me = self.known.tree, self.known.me
        below: tuple[str, ...] = ()
        if me in tree:
            rank = tree.level_rank(tree.node(me).level)
            below = tuple(tree.levels[rank + 1 :])
        return Scope(
            me=me,
            now=self.clock.now_ms() if now is None else now,
            below=below,
            cascade_auto=self.cascade_auto,
            dialect=self.db.dialect,
        )

    def total(self, who: Who, scope: Scope | None = None) -> ColumnElement[int]:
        """The count for the navigation, as a scalar to select beside others."""
        return total_statement(who, scope or self.scope())

    async def count(self, who: Who) -> int:
        async with self.db.read() as conn:
            return int(await conn.scalar(select(self.total(who))) or 0)

    async def read(self, who: Who, conn: AsyncConnection | None = None) -> dict[str, Any]:
        """Every kind waiting for ``who``: ``{"kinds": [{kind, count, items}], "total"}``,
        each kind's items oldest first (at most :data:`PER_KIND`; ``count`` is all)."""
        if conn is None:
            async with self.db.read() as own:
                return await self.read(who, own)
        s = self.scope()
        kinds = kinds_for(who, s)
        out = []
        counts: list[int] = []
        if kinds:
            counted = (await conn.execute(select(*(count_of(k, who, s) for k in kinds)))).one()
            counts = [int(n) for n in counted]
        for kind, n in zip(kinds, counts, strict=True):
            rows = (await conn.execute(page_statement(kind, who, s))).all() if n else []
            out.append({
                "kind": kind.name,
                "label": kind.label,
                "count": n,
                "items": [entry(kind, r, s.now) for r in rows],
            })
        return {
            "person": who.name,
            "role": str(who.role),
            "unit": who.unit,
            "kinds": out,
            "total": sum(counts),
            "now": iso(s.now),
        }


async def waiting_counts(todo: Todo, who: Who) -> tuple[int, int]:
    """(things to do, unread messages) for ``who``, in one statement: the navigation's
    two numbers on every page."""
    async with todo.db.read() as conn:
        row = (await conn.execute(select(todo.total(who), unread_statement(who.name)))).one()
    return int(row[0] or 0), int(row[1] or 0)
