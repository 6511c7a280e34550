"""Units inside a node, the roles people hold there, and what each role may do.

A node (one government) holds units: its general office and its departments
(the horizontal coverage, 横向到边). People act with one role inside one node:

==========  =================================================================
leader      assigns, updates, withdraws, decomposes, approves plans and
            extensions, deploys, reviews and closes (the assigning leader's word is
            final); urges, and alone writes instructions (批示)
supervisor  the supervision office (督查室): registers and assigns items, urges
            (催办), decides extensions, reviews feedback and closes them, and
            reports for the node as a whole (an extension request too)
unit_head   the head (一把手) of one unit: deploys and reports for that unit only,
            and asks for an extension of its items
operator    the unit's operator (联络员): as the unit head
viewer      reads
==========  =================================================================

Roles limit what a *person* may do; whether the *node* may do it at all (scope,
assigner, assignee) is :mod:`hierarchy.permissions`. Both must allow an action.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from hierarchy import errors
from hierarchy.errors import HierarchyError


class Action(StrEnum):
    """Everything a person can do to an item (stable names; also event kinds)."""

    ASSIGN = "assign"
    UPDATE = "update"
    WITHDRAW = "withdraw"
    DEPLOY = "deploy"
    FEEDBACK = "feedback"
    PLAN = "plan"
    DECIDE_PLAN = "decide_plan"
    RESOLVE = "resolve"
    REVIEW = "review"
    CLOSE = "close"
    DECOMPOSE = "decompose"
    URGE = "urge"
    INSTRUCT = "instruct"
    REQUEST_EXTENSION = "request_extension"
    DECIDE_EXTENSION = "decide_extension"
    READ = "read"


class Role(StrEnum):
    LEADER = "leader"
    SUPERVISOR = "supervisor"
    UNIT_HEAD = "unit_head"
    OPERATOR = "operator"
    VIEWER = "viewer"


#: Actions of the assigning side: only the node that assigned the item does them.
ASSIGNER_ACTIONS = frozenset(
    {
        Action.UPDATE,
        Action.WITHDRAW,
        Action.DECIDE_PLAN,
        Action.DECIDE_EXTENSION,
        Action.REVIEW,
        Action.CLOSE,
    }
)
#: Actions of the handling side: only the node the item is assigned to does them.
ASSIGNEE_ACTIONS = frozenset(
    {
        Action.DEPLOY,
        Action.FEEDBACK,
        Action.PLAN,
        Action.REQUEST_EXTENSION,
        Action.RESOLVE,
        Action.DECOMPOSE,
    }
)
#: Actions of the supervising side: the assigner or any node above it does them.
SUPERVISOR_ACTIONS = frozenset({Action.URGE, Action.INSTRUCT})
#: Handling actions a unit-bound role does only for an item of its own unit.
UNIT_ACTIONS = frozenset(
    {Action.DEPLOY, Action.FEEDBACK, Action.PLAN, Action.REQUEST_EXTENSION, Action.RESOLVE}
)

ROLE_ACTIONS: Mapping[Role, frozenset[Action]] = {
    Role.LEADER: frozenset(
        {
            Action.ASSIGN,
            Action.UPDATE,
            Action.WITHDRAW,
            Action.DECOMPOSE,
            Action.DECIDE_PLAN,
            Action.DECIDE_EXTENSION,
            Action.DEPLOY,
            Action.REVIEW,
            Action.CLOSE,
            Action.URGE,
            Action.INSTRUCT,
            Action.READ,
        }
    ),
    Role.SUPERVISOR: frozenset(
        {
            Action.ASSIGN,
            Action.UPDATE,
            Action.WITHDRAW,
            Action.DECOMPOSE,
            Action.DEPLOY,
            Action.FEEDBACK,
            Action.PLAN,
            Action.RESOLVE,
            Action.REVIEW,
            Action.CLOSE,
            Action.URGE,
            Action.REQUEST_EXTENSION,
            Action.DECIDE_EXTENSION,
            Action.READ,
        }
    ),
    Role.UNIT_HEAD: frozenset(
        {Action.DEPLOY, Action.FEEDBACK, Action.PLAN, Action.REQUEST_EXTENSION, Action.RESOLVE,
         Action.READ}
    ),
    Role.OPERATOR: frozenset(
        {Action.DEPLOY, Action.FEEDBACK, Action.PLAN, Action.REQUEST_EXTENSION, Action.RESOLVE,
         Action.READ}
    ),
    Role.VIEWER: frozenset({Action.READ}),
}

#: Roles that belong to one unit and act only for it.
UNIT_ROLES = frozenset({Role.UNIT_HEAD, Role.OPERATOR})


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise HierarchyError(errors.UNKNOWN_ROLE, repr(value)[:80]) from None


def parse_action(value: str) -> Action:
    try:
        return Action(value)
    except ValueError:
        raise HierarchyError(errors.UNKNOWN_ACTION, repr(value)[:80]) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """A unit inside a node: the general office or a department."""

    id: str
    name: str
    node: str
    office: bool = False

    def __post_init__(self) -> None:
        for what, value in (("id", self.id), ("name", self.name), ("node", self.node)):
            if type(value) is not str or not value.strip() or value != value.strip():
                raise HierarchyError(errors.BAD_UNIT, f"unit {what} must be a non-empty string")


class Units:
    """The units of one node; exactly one of them is the general office."""

    __slots__ = ("_by_id", "node")

    def __init__(self, node: str, units: Iterable[Unit]) -> None:
        self.node = node
        self._by_id: dict[str, Unit] = {}
        for unit in units:
            if unit.node != node:
                raise HierarchyError(errors.BAD_UNIT, f"unit {unit.id} belongs to {unit.node}")
            if unit.id in self._by_id:
                raise HierarchyError(errors.BAD_UNIT, f"unit {unit.id} twice")
            self._by_id[unit.id] = unit
        offices = [u.id for u in self._by_id.values() if u.office]
        if len(offices) != 1:
            raise HierarchyError(errors.BAD_UNIT, f"{node} needs one office, has {offices}")

    @property
    def office(self) -> Unit:
        return next(u for u in self._by_id.values() if u.office)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._by_id

    def __iter__(self) -> Iterator[Unit]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, unit_id: str) -> Unit:
        unit = self._by_id.get(unit_id)
        if unit is None:
            raise HierarchyError(errors.UNKNOWN_UNIT, f"{unit_id} in {self.node}")
        return unit


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """A person acting: in which node, with which role, for which unit.

    ``unit`` is required for unit_head and operator (they act for it) and
    optional otherwise (a leader's or viewer's own department, for display).
    """

    node: str
    role: Role
    unit: str | None = None
    person: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            raise HierarchyError(errors.UNKNOWN_ROLE, repr(self.role)[:80])
        if type(self.node) is not str or not self.node:
            raise HierarchyError(errors.UNKNOWN_NODE, "actor node must be a non-empty string")
        if self.role in UNIT_ROLES and not self.unit:
            raise HierarchyError(errors.BAD_UNIT, f"a {self.role} acts for a unit")


def role_allows(role: Role, action: Action) -> bool:
    return action in ROLE_ACTIONS[role]
