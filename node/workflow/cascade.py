"""The cascade: an item marked to go down to a level is passed on by each node on the way.

An item assigned with ``cascade`` L (``Assigned.cascade``, e.g. "township") is
*waiting* at this node when:

- it is assigned to this node (``assignee`` is this node; an item a node assigns
  to one of its own units counts too: the node is its assignee);
- this node's level ranks above L (a node of level L handles the item itself);
- it is open and not resolved (assigned, deployed, reporting, planned, returned);
- this node has not passed it down yet: no sub-item of it (``items.parent_item``)
  signed here carries a cascade.

Passing it down signs, in one batch under one signature: ``item.deployed`` on the
item (when it is still only assigned; note "已转办至N个下级单位"), and one
``item.assigned`` per child whose level ranks at or above L — the same title,
description, board, source, class, calendar and cascade, ``parent_item`` the
item, the deadlines copied and clamped after the moment of signing
(``node.workflow.drafts.clamp``). Each level thus signs its own sub-items and
stays their assigner and reviewer (docs/cascade.md has the table).

Idempotent and crash-safe: whether a cascade sub-item exists is checked again in
the write transaction that signs (``EventLog.append_own``'s precheck), where a
sub-item's row is written with it; the service and a person, or a restarted
node, can never both pass the same item down.

Policy (``cascade.auto``, on by default): :meth:`Cascade.run` passes down every
waiting item as soon as its row is folded here (and, at start, any left waiting
by a stop); off, the item waits for a supervisor or leader
(``POST /api/v1/items/{id}/pass_down``, the button on the item's page).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hierarchy.roles import Action
from hierarchy.tree import Tree
from node.background import Watch, run_forever
from node.errors import Conflict, NotFound, invalid
from node.items.projection import load_state
from node.storage import schema as t
from node.storage.accounts import User
from node.storage.db import Database
from node.storage.events import Draft, EventLog, States
from node.sync.routing import KnownTree
from node.workflow.actions import actor_of, levels_below, permit, scope_of
from node.workflow.drafts import act, assign
from protocol.errors import ProtocolError
from protocol.events import Assigned, Deadlines, Deployed, Event
from protocol.fold import ItemState, Status, can_apply

logger = logging.getLogger(__name__)

WATCH_NAME: Final = "cascade"
"""The service's task, as the status pages name it."""
PASSABLE: Final = frozenset(
    {Status.ASSIGNED, Status.DEPLOYED, Status.REPORTING, Status.PLANNED, Status.RETURNED}
)
"""The statuses in which an item may be passed down (open, not awaiting review)."""


def deployed_note(children: int) -> str:
    return f"已转办至{children}个下级单位"


def children_for(tree: Tree, me: str, level: str) -> list[str]:
    """The children of ``me`` an item cascading to ``level`` goes to: those whose level
    ranks at or above it (a city's county, or a township it governs directly)."""
    rank = tree.level_rank(level)
    return [c for c in tree.children(me) if tree.level_rank(tree.node(c).level) <= rank]


@dataclass(frozen=True, slots=True)
class PassedDown:
    """What one pass-down signed."""

    item: str
    deployed: bool
    sub_items: tuple[Assigned, ...]


class Cascade:
    """Passes cascade items down for one node: reads the rows in ``db``, signs
    through the event log ``events``, picks children on the tree its certificates
    draw (``tree``); ``auto`` is the node's policy (``cascade.auto``)."""

    def __init__(self, *, db: Database, events: EventLog, tree: KnownTree, auto: bool) -> None:
        self.db = db
        self.events = events
        self.known = tree
        self.auto = auto
        self._poke = asyncio.Event()
        self._stuck: dict[str, int] = {}
        """Items the service could not pass down (no child at the level), with the
        number of children then: tried again when the tree has more."""

    @property
    def me(self) -> str:
        return self.known.me

    def wake(self) -> None:
        """Look for waiting items now (an item this node assigned to itself)."""
        self._poke.set()

    # ------------------------------------------------------------ the rule

    def refusal(self, state: ItemState) -> Conflict | None:
        """Why ``state`` cannot be passed down by this node (None: it can), apart from
        whether it was already (checked in the transaction that signs)."""
        tree = self.known.tree
        if state.cascade is None:
            return Conflict(
                "not_cascade", f"{state.item} does not cascade: it names no level to go down to"
            )
        if state.assignee != self.me:
            return Conflict(
                "not_assignee", f"{state.item} is assigned to {state.assignee}, not to this node"
            )
        if state.cascade not in levels_below(tree, self.me):
            level = tree.node(self.me).level if self.me in tree else "?"
            return Conflict(
                "wrong_level",
                f"this node ({level}) is not above the level {state.cascade}: it handles "
                f"{state.item} itself",
            )
        if state.status not in PASSABLE:
            return Conflict(
                "invalid_transition",
                f"{state.item} is {state.status.value}: only an open item not awaiting "
                "review is passed down",
            )
        if not children_for(tree, self.me, state.cascade):
            return Conflict(
                "no_children",
                f"no child of this node is at or above the level {state.cascade} yet",
            )
        return None

    async def waiting(self) -> list[str]:
        """The items waiting here to be passed down (see the module docstring)."""
        below = levels_below(self.known.tree, self.me)
        if not below:
            return []
        items, sub = t.items, t.items.alias("sub")
        passed = (
            select(sub.c.item_id)
            .where(sub.c.parent_item == items.c.item_id)
            .where(sub.c.assigner == self.me)
            .where(sub.c.cascade.is_not(None))
            .exists()
        )
        query = (
            select(items.c.item_id)
            .where(items.c.assignee == self.me)
            .where(items.c.done.is_(False))
            .where(items.c.status.in_([str(s) for s in PASSABLE]))
            .where(items.c.cascade.in_(below))
            .where(~passed)
            .order_by(items.c.item_id)
        )
        # A short read run at every fold here: ``run_read`` (on SQLite on the loop's
        # thread) spares the hand-offs to a database thread, which many nodes of one
        # process pay for in turn.
        return await self.db.run_read(lambda conn: list(conn.scalars(query).all()))

    # ------------------------------------------------------------ signing

    async def pass_down(self, item: str, user: User | None = None) -> PassedDown:
        """Pass ``item`` down to this node's children, for ``user`` (a supervisor or
        leader: permission ``decompose``) or, without one, for the node's policy.
        Refusals: ``not_cascade``, ``wrong_level``, ``not_assignee``, ``no_children``,
        ``invalid_transition``, ``already_passed_down`` (all ``Conflict``), or the
        person's (``Forbidden``)."""
        async with self.db.read() as conn:
            state = await load_state(conn, item)
        if state is None:
            raise NotFound("unknown_item", f"no item {item!r} is held here")
        if user is not None:
            permit(self.known.tree, actor_of(self.me, user), Action.DECOMPOSE, scope_of(state))
        refusal = self.refusal(state)
        if refusal is not None:
            raise refusal
        assert state.cascade is not None
        children = children_for(self.known.tree, self.me, state.cascade)
        drafts: list[Draft] = []
        deploy = state.status is Status.ASSIGNED
        if deploy:
            drafts.append(
                act(Deployed, me=self.me, item=item, to=state.assigner,
                    note=deployed_note(len(children)))
            )
        due = Deadlines(
            deploy=state.deploy.due, feedback=state.first_feedback.due, resolve=state.resolve.due
        )
        drafts.extend(
            assign(
                me=self.me, assignee=child, title=state.title, description=state.description,
                board=state.board, source=state.source, item_class=state.item_class,
                calendar=state.calendar, parent_item=item, cascade=state.cascade, deadlines=due,
            )
            for child in children
        )

        async def precheck(conn: AsyncConnection, events: list[Event], states: States) -> None:
            now_state = states.get(item) or await load_state(conn, item)
            if now_state is None:
                raise NotFound("unknown_item", f"no item {item!r} is held here")
            if user is not None:
                permit(self.known.tree, actor_of(self.me, user), Action.DECOMPOSE,
                       scope_of(now_state))
            again = self.refusal(now_state)
            if again is not None:
                raise again
            await self._not_passed_yet(conn, item)
            for event in events:
                refused = can_apply(states.get(event.item), event)
                if refused is not None:
                    raise Conflict(refused.reason, refused.detail)

        try:
            done = await self.events.append_own(drafts, precheck=precheck)
        except ProtocolError as exc:
            raise invalid(exc) from None
        subs = tuple(e for e, _ in done if isinstance(e, Assigned))
        logger.info(
            "passed %s down to %d children (cascade %s)%s", item, len(subs), state.cascade,
            f" for {user.name}" if user is not None else "",
        )
        return PassedDown(item=item, deployed=deploy, sub_items=subs)

    async def _not_passed_yet(self, conn: AsyncConnection, item: str) -> None:
        count = await conn.scalar(
            select(func.count())
            .select_from(t.items)
            .where(t.items.c.parent_item == item)
            .where(t.items.c.assigner == self.me)
            .where(t.items.c.cascade.is_not(None))
        )
        if count:
            raise Conflict(
                "already_passed_down",
                f"{item} was passed down here already ({count} sub-items)",
            )

    # ------------------------------------------------------------ the service

    async def pass_waiting(self) -> Sequence[PassedDown]:
        """Pass down every item waiting here; what could not be (another pass got there
        first, no child yet) is logged and left."""
        out = []
        children = len(self.known.tree.children(self.me)) if self.me in self.known.tree else 0
        for item in await self.waiting():
            if self._stuck.get(item) == children:
                continue
            try:
                out.append(await self.pass_down(item))
            except Conflict as exc:
                if exc.reason == "no_children":
                    self._stuck[item] = children
                logger.info("cascade: %s not passed down: %s", item, exc)
            else:
                self._stuck.pop(item, None)
        return out

    async def run(self, watch: Watch, stopping: asyncio.Event) -> None:
        """The policy ``cascade.auto``: pass down what waits at start, then whatever
        waits each time received events are folded into rows (or :meth:`wake` is
        called), until ``stopping``. Failures are retried with ``watch``'s backoff."""
        seen = 0

        async def once() -> None:
            nonlocal seen
            self._poke.clear()
            seen = self.events.folded_pos
            await self.events.rows_current()
            await self.pass_waiting()

        async def more() -> None:
            waits = [
                asyncio.ensure_future(self.events.folded_past(seen)),
                asyncio.ensure_future(self._poke.wait()),
                asyncio.ensure_future(stopping.wait()),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

        await run_forever(watch, once, stopping, between=more)
