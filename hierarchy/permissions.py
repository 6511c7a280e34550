"""Who may see and do what: pure checks that return None or a :class:`Refusal`.

Two questions, both must say yes:

1. May this *node* do it? (the relation between the node and the item)

   * read: the node is the item's assigner or assignee, or an ancestor of
     either: its own items, its subtree's, and those addressed to it. Never a
     sibling's, never the rest of an ancestor's (``not_in_scope``).
   * assign: only a proper ancestor assigns to a node, or a node to one of its
     own units (``not_ancestor``).
   * update, withdraw, decide_plan, review, close: only the assigner
     (``not_assigner``) — so a child can never close its own item.
   * deploy, feedback, plan, request_extension, resolve, decompose: only the assignee
     (``not_assignee``); decide_extension, like decide_plan, only the assigner.
   * urge, instruct: the assigner or any node above it (``not_supervisor``).

2. May this *person* do it? (their role inside the node, :mod:`hierarchy.roles`)
   ``role_forbidden`` when the role never does it; ``wrong_unit`` when a unit
   head or operator reports for an item that is not their unit's.

Scope is checked before the relation, so a sibling learns ``not_in_scope``
and nothing about the item's parties.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hierarchy import errors
from hierarchy.errors import Refusal
from hierarchy.roles import (
    ASSIGNEE_ACTIONS,
    ASSIGNER_ACTIONS,
    SUPERVISOR_ACTIONS,
    UNIT_ACTIONS,
    UNIT_ROLES,
    Action,
    Actor,
    role_allows,
)
from hierarchy.tree import Tree


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemScope:
    """What the checks need to know about an item (or an assignment being made).

    ``assignee_unit`` is the lead unit (牵头单位) inside the assignee node, None
    when the item is addressed to the node as a whole; ``co_units`` are the
    co-operating units (协同配合单位), which may give feedback too.
    """

    assigner: str
    assignee: str
    assignee_unit: str | None = None
    co_units: frozenset[str] = field(default_factory=frozenset)


def _unknown(tree: Tree, *nodes: str) -> Refusal | None:
    for node in nodes:
        if node not in tree:
            return Refusal(errors.UNKNOWN_NODE, repr(node)[:80])
    return None


def can_see(tree: Tree, node: str, item: ItemScope) -> Refusal | None:
    """May ``node`` read ``item``? Its own, its subtree's, or addressed to it."""
    unknown = _unknown(tree, node, item.assigner, item.assignee)
    if unknown is not None:
        return unknown
    if tree.in_subtree(node, item.assigner) or tree.in_subtree(node, item.assignee):
        return None
    return Refusal(errors.NOT_IN_SCOPE, f"{node} cannot see {item.assigner}->{item.assignee}")


def can_assign(tree: Tree, assigner: str, assignee: str, unit: str | None = None) -> Refusal | None:
    """May ``assigner`` assign to ``assignee`` (or, within itself, to ``unit``)?"""
    unknown = _unknown(tree, assigner, assignee)
    if unknown is not None:
        return unknown
    if assigner == assignee:
        if unit:
            return None
        return Refusal(errors.NOT_ANCESTOR, f"{assigner} assigns to itself only through a unit")
    if tree.is_ancestor(assigner, assignee):
        return None
    return Refusal(errors.NOT_ANCESTOR, f"{assigner} is not above {assignee}")


def node_may(tree: Tree, node: str, action: Action, item: ItemScope) -> Refusal | None:
    """The node-level rule for ``action`` on ``item`` (roles aside)."""
    if action is Action.ASSIGN:
        unknown = _unknown(tree, node, item.assigner, item.assignee)
        if unknown is not None:
            return unknown
        if node != item.assigner:
            return Refusal(errors.NOT_ASSIGNER, f"{node} cannot assign for {item.assigner}")
        return can_assign(tree, item.assigner, item.assignee, item.assignee_unit)
    seen = can_see(tree, node, item)
    if seen is not None or action is Action.READ:
        return seen
    if action in ASSIGNER_ACTIONS and node != item.assigner:
        return Refusal(errors.NOT_ASSIGNER, f"only {item.assigner} may {action}")
    if action in ASSIGNEE_ACTIONS and node != item.assignee:
        return Refusal(errors.NOT_ASSIGNEE, f"only {item.assignee} may {action}")
    if action in SUPERVISOR_ACTIONS and not tree.in_subtree(node, item.assigner):
        return Refusal(
            errors.NOT_SUPERVISOR, f"only {item.assigner} or a node above it may {action}"
        )
    return None


def role_may(actor: Actor, action: Action, item: ItemScope | None = None) -> Refusal | None:
    """The person-level rule: the role allows ``action``, and for their own unit."""
    if not role_allows(actor.role, action):
        return Refusal(errors.ROLE_FORBIDDEN, f"a {actor.role} may not {action}")
    if actor.role in UNIT_ROLES and action in UNIT_ACTIONS:
        if item is None or item.assignee_unit is None:
            return Refusal(errors.WRONG_UNIT, "the item is not assigned to a unit")
        mine = actor.unit == item.assignee_unit or (
            action is Action.FEEDBACK and actor.unit in item.co_units
        )
        if not mine:
            return Refusal(
                errors.WRONG_UNIT, f"{actor.unit} reports for itself, not {item.assignee_unit}"
            )
    return None


def check(tree: Tree, actor: Actor, action: Action, item: ItemScope) -> Refusal | None:
    """May ``actor`` do ``action`` to ``item``? None when allowed.

    For ``assign``, ``item`` describes the assignment being made (assigner,
    assignee and, within a node, the unit).
    """
    refusal = node_may(tree, actor.node, action, item)
    if refusal is not None:
        return refusal
    return role_may(actor, action, item)
