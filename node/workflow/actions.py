"""The 13710 actions a person takes on an item, checked before anything is signed.

Every action goes through the same three gates, in this order, each refusing
with a stable reason and changing nothing:

1. the node and the person may do it (``hierarchy.permissions.check``: scope,
   assigner/assignee, role and unit) — ``Forbidden`` (``NotFound`` for an unknown node);
2. it fits the item's state (``protocol.fold.can_apply``, run again inside the
   write transaction so no other writer can slip in between) — ``Conflict``;
3. the event itself is valid (``protocol.events`` validation) — ``Invalid``.

Then one event (or, for assign and decompose, a batch under one signature) is
signed by this node, stored and synced like any other. New attachments that a
feedback or resolution cites are stored in that same transaction, after the
three gates (node/workflow/attachments.py): a refused action keeps no file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from hierarchy.errors import HierarchyError
from hierarchy.permissions import ItemScope, check
from hierarchy.roles import Action, Actor
from hierarchy.tree import Tree
from node.clock import Clock, iso
from node.errors import Conflict, Invalid, NodeError, NotFound, invalid, refused
from node.items.projection import load_state
from node.storage import schema as t
from node.storage import unit_lists
from node.storage.accounts import Accounts, User
from node.storage.db import Database
from node.storage.events import Appended, Draft, EventLog, States
from node.sync.routing import KnownTree
from node.workflow import attachments
from node.workflow.attachments import NewFile, Quotas
from node.workflow.drafts import act, assign
from protocol import rules
from protocol.errors import ProtocolError
from protocol.events import MAX_TITLE, Assigned, Event, ItemEvent
from protocol.fold import ItemState, can_apply
from protocol.ownership import Role, role_of

logger = logging.getLogger(__name__)

DEADLINE_AFTER_PARENT = "deadline_after_parent"
"""A sub-item's resolve deadline falls after its item's own (or that has passed)."""
INHERIT_MARGIN_MS = 60_000
"""A part inheriting the item's deadline needs it at least this far ahead."""


def actor_of(me: str, user: User) -> Actor:
    """``user`` of node ``me`` as ``hierarchy.permissions`` sees them."""
    return Actor(node=me, role=user.role, unit=user.unit, person=user.name)


def author_of(user: User) -> str:
    """How an urge or instruction names the person who wrote it (signed, shown at every
    node that holds it): their display name, else their account name."""
    return " ".join((user.display_name or user.name).split())[:MAX_TITLE] or user.name


def scope_of(state: ItemState) -> ItemScope:
    return ItemScope(
        assigner=state.assigner,
        assignee=state.assignee,
        assignee_unit=state.assignee_unit or state.lead_unit,
        co_units=frozenset(state.co_units),
    )


def permit(tree: Tree, actor: Actor, action: Action, scope: ItemScope) -> None:
    try:
        refusal = check(tree, actor, action, scope)
    except HierarchyError as exc:
        raise refused(exc) from None
    if refusal is not None:
        raise refused(refusal)


def levels_below(tree: Tree, me: str) -> tuple[str, ...]:
    """The levels of ``tree`` ranked below node ``me``'s, top first."""
    if me not in tree:
        return ()
    rank = tree.level_rank(tree.node(me).level)
    return tree.levels[rank + 1 :]


def check_cascade(tree: Tree, me: str, assignee: str, level: str) -> None:
    """Refuse (``bad_cascade``, field ``cascade``) an assignment by ``me`` to ``assignee``
    that cascades to ``level``, unless ``level`` ranks below ``me`` and not above
    ``assignee`` (who either passes the item down or, at ``level``, handles it)."""
    below = levels_below(tree, me)
    if level not in below:
        choices = "、".join(below) or "none: this node is at the lowest level"
        raise Invalid(
            "bad_cascade",
            f"cascade: {level!r} is not a level below this node's; choose one of {choices}",
            "cascade",
        )
    if assignee != me and tree.level_rank(tree.node(assignee).level) > tree.level_rank(level):
        raise Invalid(
            "bad_cascade",
            f"cascade: the assignee {assignee} ({tree.node(assignee).level}) is below "
            f"the level {level}; it could not pass the item down",
            "cascade",
        )


class Workflow:
    """Checks and signs the actions of the people of one node.

    It reads the items' rows and states from ``db``, signs and stores through the
    event log ``events``, checks permissions on the tree its certificates draw
    (``tree``, whose ``me`` is this node), reads the node's units from ``accounts``,
    dates deadlines by ``clock`` and keeps new files within ``quotas``."""

    def __init__(
        self,
        *,
        db: Database,
        events: EventLog,
        tree: KnownTree,
        accounts: Accounts,
        clock: Clock,
        quotas: Quotas,
        cascaded: Callable[[], None] | None = None,
        noticed: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.events = events
        self.known = tree
        self.accounts = accounts
        self.clock = clock
        self.quotas = quotas
        self.cascaded = cascaded
        """Called after this node signs an item with a cascade: the node's
        :class:`node.workflow.cascade.Cascade` looks for items to pass down."""
        self.noticed = noticed
        """Called after this node signs an urge or an instruction: the reminder
        scheduler sends its notice now if the item is handled here (a unit's item)."""

    @property
    def me(self) -> str:
        return self.known.me

    @property
    def tree(self) -> Tree:
        """The tree this node knows, from its certificates."""
        return self.known.tree

    async def state(self, item: str) -> ItemState:
        async with self.db.read() as conn:
            state = await load_state(conn, item)
        if state is None:
            raise NotFound("unknown_item", f"no item {item!r} is held here")
        return state

    async def readable(self, user: User, item: str) -> ItemState:
        state = await self.state(item)
        permit(self.tree, actor_of(self.me, user), Action.READ, scope_of(state))
        return state

    # ------------------------------------------------------------- signing

    async def _sign(
        self,
        drafts: Sequence[Draft],
        *,
        user: User | None = None,
        files: Sequence[NewFile] = (),
        gate: Callable[[ItemState], None] | None = None,
    ) -> Appended:
        """Sign and store ``drafts`` if the items' states allow them; ``files`` (of
        ``user``) are stored in the same transaction, after every check. Each item's
        state is folded once, in the write transaction (``EventLog.append_own``):
        ``gate`` (the first gate, the person's permission) is checked again on it,
        then whether it allows the event; the states after are returned with the events."""

        async def precheck(conn: AsyncConnection, events: list[Event], states: States) -> None:
            for event in events:
                state = states.get(event.item)
                if gate is not None:
                    if state is None:
                        raise NotFound("unknown_item", f"no item {event.item!r} is held here")
                    gate(state)
                refusal = can_apply(state, event)
                if refusal is not None:
                    raise Conflict(refusal.reason, refusal.detail)
            if any(isinstance(e, Assigned) and e.parent_item for e in events):
                await self._check_parents(conn, events)
            if files:
                assert user is not None, "files are stored for the person who sent them"
                await attachments.store(conn, self.quotas, user, files, events[0].at)

        try:
            return await self.events.append_own(drafts, precheck=precheck)
        except ProtocolError as exc:
            field = exc.detail.split(":", 1)[0] if exc.detail else None
            raise invalid(exc, field) from None

    async def _check_parents(self, conn: AsyncConnection, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Assigned) and event.parent_item:
                parent = await load_state(conn, event.parent_item)
                if parent is None or parent.done:
                    raise Conflict(
                        "invalid_transition",
                        f"{event.parent_item} is not an open item here",
                    )

    # ------------------------------------------------------------- actions

    def levels_below(self) -> tuple[str, ...]:
        """The levels an item assigned here may cascade to (docs/cascade.md): those
        ranked below this node's own, top first."""
        return levels_below(self.tree, self.me)

    def resolve_assignee(self, assignee: str, units: dict[str, str]) -> tuple[str, str | None]:
        """(node, unit): a unit code of this node, or a node id."""
        if assignee in units:
            return self.me, assignee
        if assignee == self.me:
            raise Invalid("bad_field", "assignee: name one of this node's units", "assignee")
        if assignee not in self.tree:
            raise Invalid(
                "unknown_assignee",
                f"assignee: {assignee!r} is neither a unit here nor a known node",
                "assignee",
            )
        return assignee, None

    async def assign(self, user: User, fields: dict[str, Any]) -> tuple[Assigned, bool]:
        """Create one item. Returns the event and whether the holiday table was missing."""
        units = await self.accounts.units()
        node, unit = self.resolve_assignee(fields["assignee"], units)
        for key in ("lead_unit",):
            if fields.get(key) and node == self.me and fields[key] not in units:
                raise Invalid("unknown_unit", f"{key}: no unit {fields[key]!r} here", key)
        if fields.get("cascade") is not None:
            check_cascade(self.tree, self.me, node, fields["cascade"])
        permit(
            self.tree,
            actor_of(self.me, user),
            Action.ASSIGN,
            ItemScope(assigner=self.me, assignee=node, assignee_unit=unit),
        )
        draft = assign(
            me=self.me,
            assignee=node,
            assignee_unit=unit,
            title=fields["title"],
            description=fields.get("description", ""),
            board=fields["board"],
            source=fields["source"],
            item_class=fields["class"],
            calendar=fields["calendar"],
            explicit_resolve=fields.get("deadline"),
            lead_unit=fields.get("lead_unit") or unit,
            co_units=fields.get("co_units", ()),
            parent_item=fields.get("parent_item"),
            cascade=fields.get("cascade"),
        )
        estimated = self._estimated(fields)
        [(event, _)] = await self._sign([draft])
        assert isinstance(event, Assigned)
        if event.cascade is not None and self.cascaded is not None:
            self.cascaded()  # an item this node assigned to itself passes down now
        return event, estimated

    def _estimated(self, fields: dict[str, Any]) -> bool:
        try:
            return rules.compute_deadlines(
                assigned_at=self.clock.now_ms(),
                item_class=fields["class"],
                calendar=fields["calendar"],
                explicit_resolve=fields.get("deadline"),
            ).calendar_estimated
        except ProtocolError as exc:
            raise invalid(exc, "deadline") from None

    async def permitted(self, user: User, item: str, action: Action) -> tuple[str, str]:
        """The item's (assigner, assignee) if ``user`` may do ``action`` to it (NotFound or
        Forbidden otherwise): the first gate alone, to refuse before reading a body with files
        or signing anything. Read from the item's row, not folded again, while the
        rows hold every event received (else folded); :meth:`act` checks it again on
        the state it folds to write."""
        scope = await self._row_scope(item) if self.events.rows_are_current() else None
        if scope is None:
            scope = scope_of(await self.state(item))
        permit(self.tree, actor_of(self.me, user), action, scope)
        return scope.assigner, scope.assignee

    async def _row_scope(self, item: str) -> ItemScope | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        t.items.c.assigner,
                        t.items.c.assignee,
                        t.items.c.assignee_unit,
                        t.items.c.lead_unit,
                        t.items.c.state,
                    ).where(t.items.c.item_id == item)
                )
            ).first()
        if row is None:
            return None
        return ItemScope(
            assigner=row.assigner,
            assignee=row.assignee,
            assignee_unit=row.assignee_unit or row.lead_unit,
            co_units=frozenset(json.loads(row.state)["co_units"]),
        )

    async def act(
        self,
        user: User,
        item: str,
        action: Action,
        kind: type[ItemEvent],
        *,
        uploads: Sequence[NewFile] = (),
        **fields: Any,
    ) -> tuple[Event, ItemState]:
        """Check, sign and store one action; ``uploads`` (the new attachments the
        fields cite) are stored only if the event is, in its transaction. Returns the
        event and the item's state after it (the item folded once)."""
        assigner, assignee = await self.permitted(user, item, action)
        supervising = role_of(kind.TYPE) is Role.SUPERVISOR
        # The assigner's and a supervisor's events go to the assignee, the assignee's up.
        to = assignee if self.me == assigner or supervising else assigner
        if supervising:
            fields["author"] = author_of(user)
        draft = act(kind, me=self.me, item=item, to=to, **fields)
        actor = actor_of(self.me, user)

        def gate(state: ItemState) -> None:
            permit(self.tree, actor, action, scope_of(state))

        done = await self._sign([draft], user=user, files=uploads, gate=gate)
        [(event, _)] = done
        if supervising and self.noticed is not None:
            self.noticed()
        return event, done.states[item]

    async def decompose(self, user: User, item: str, parts: list[dict[str, Any]]) -> list[Assigned]:
        """Pass the item down (转办 / 任务分解): one sub-item per part, all signed in one
        batch, or none. Refuses with the first of :meth:`decompose_problems`."""
        drafts, problems = await self._parts(user, item, parts)
        if problems:
            raise problems[0]
        events = await self._sign(drafts)
        return [e for e, _ in events if isinstance(e, Assigned)]

    async def decompose_problems(
        self, user: User, item: str, parts: list[dict[str, Any]]
    ) -> list[NodeError]:
        """Every refusal :meth:`decompose` would meet in ``parts``, each naming its part and
        field (``parts[2].deadline``), so a form can show them all at once. Permission to
        decompose the item at all is raised, not listed."""
        return (await self._parts(user, item, parts))[1]

    async def _parts(
        self, user: User, item: str, parts: list[dict[str, Any]]
    ) -> tuple[list[Draft], list[NodeError]]:
        """Each part checked: who it goes to (a unit here or a node below that this
        person may assign to), its lead and co-units (this node's units, or the child's
        published list when one is held), and a resolve deadline no later than the
        item's own. ``class`` inherit takes the item's own deadline."""
        parent = await self.state(item)
        actor = actor_of(self.me, user)
        permit(self.tree, actor, Action.DECOMPOSE, scope_of(parent))
        units = await self.accounts.units()
        below = [p.get("assignee") for p in parts if p.get("assignee") not in units]
        published = await unit_lists.held(
            self.db, [n for n in below if isinstance(n, str) and n in self.tree]
        )
        drafts: list[Draft] = []
        problems: list[NodeError] = []
        now = self.clock.now_ms()
        due = parent.resolve.due
        for i, part in enumerate(parts):
            at = f"parts[{i}]."
            try:
                node, unit = self.resolve_assignee(part["assignee"], units)
                permit(
                    self.tree,
                    actor,
                    Action.ASSIGN,
                    ItemScope(assigner=self.me, assignee=node, assignee_unit=unit),
                )
            except NodeError as exc:
                exc.field = f"{at}assignee"
                problems.append(exc)
                continue
            if node == self.me:
                known: set[str] | None = set(units)
                where = "this node"
            else:
                held = published.get(node)
                known = {u.code for u in held.units} if held is not None else None
                where = node
            lead, co_units = part.get("lead_unit"), tuple(part.get("co_units", ()))
            if known is not None:
                if lead and lead not in known:
                    problems.append(Invalid(
                        "unknown_unit", f"{at}lead_unit: {where} has no unit {lead!r}",
                        f"{at}lead_unit",
                    ))
                unknown = [c for c in co_units if c not in known]
                if unknown:
                    problems.append(Invalid(
                        "unknown_unit", f"{at}co_units: {where} has no unit {unknown[0]!r}",
                        f"{at}co_units",
                    ))
            item_class, deadline = part["class"], part.get("deadline")
            if item_class == "inherit":
                item_class, deadline = "explicit", due
                if due <= now + INHERIT_MARGIN_MS:
                    problems.append(Invalid(
                        DEADLINE_AFTER_PARENT,
                        f"{at}deadline: the item's own deadline {iso(due)} has passed;"
                        " no sub-item can be due by it",
                        f"{at}deadline",
                    ))
                    continue
            try:
                resolve = rules.compute_deadlines(
                    assigned_at=now, item_class=item_class, calendar=parent.calendar,
                    explicit_resolve=deadline,
                ).resolve
            except ProtocolError as exc:
                problems.append(invalid(exc, f"{at}deadline"))
                continue
            if resolve > due:
                field = f"{at}deadline" if item_class == "explicit" else f"{at}class"
                problems.append(Invalid(
                    DEADLINE_AFTER_PARENT,
                    f"{field}: {iso(resolve)} is later than the item's own deadline {iso(due)}",
                    field,
                ))
                continue
            drafts.append(
                assign(
                    me=self.me,
                    assignee=node,
                    assignee_unit=unit,
                    title=part["title"],
                    description=part.get("description", ""),
                    board=parent.board,
                    source=parent.source,
                    item_class=item_class,
                    calendar=parent.calendar,
                    explicit_resolve=deadline,
                    lead_unit=lead or unit,
                    co_units=co_units,
                    parent_item=item,
                )
            )
        return drafts, problems

    async def sub_items(self, item: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    t.items.c.item_id,
                    t.items.c.assignee,
                    t.items.c.assignee_unit,
                    t.items.c.title,
                    t.items.c.status,
                    t.items.c.progress,
                    t.items.c.done,
                    t.items.c.yellow_from,
                    t.items.c.red_from,
                )
                .where(t.items.c.parent_item == item)
                .order_by(t.items.c.item_id)
            )
            now = self.clock.now_ms()
            return [
                {
                    "id": r.item_id,
                    "assignee": r.assignee,
                    "assignee_unit": r.assignee_unit,
                    "title": r.title,
                    "status": r.status,
                    "progress": r.progress,
                    "colour": str(rules.colour_at(r.done, r.yellow_from, r.red_from, now)),
                }
                for r in rows
            ]
