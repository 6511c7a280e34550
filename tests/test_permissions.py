"""Permissions: every rule, and every refusal with its reason."""

from __future__ import annotations

import pytest

from hierarchy import errors
from hierarchy.errors import HierarchyError, Refusal
from hierarchy.permissions import ItemScope, can_assign, can_see, check, node_may, role_may
from hierarchy.roles import (
    ROLE_ACTIONS,
    Action,
    Actor,
    Role,
    Unit,
    Units,
    parse_action,
    parse_role,
)
from hierarchy.tree import Node, Tree

TREE = Tree(
    [
        Node(id="14", name="山西省", level="province"),
        Node(id="1401", name="太原市", level="city", parent="14"),
        Node(id="1402", name="大同市", level="city", parent="14"),
        Node(id="140105", name="小店区", level="county", parent="1401"),
        Node(id="140106", name="迎泽区", level="county", parent="1401"),
        Node(id="140105001", name="坞城街道", level="township", parent="140105"),
        Node(id="140201", name="新荣区", level="county", parent="1402"),
    ]
)

# The city assigns an item to the county's water bureau (lead) with its finance bureau.
ITEM = ItemScope(
    assigner="1401", assignee="140105", assignee_unit="water", co_units=frozenset({"finance"})
)


def reason(refusal: Refusal | None) -> str | None:
    return refusal.reason if refusal is not None else None


def person(node: str, role: Role, unit: str | None = None) -> Actor:
    return Actor(node=node, role=role, unit=unit)


# ------------------------------------------------------------------ reading


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ("1401", None),  # the assigner: its own item
        ("140105", None),  # the assignee: addressed to it
        ("14", None),  # an ancestor: its subtree's
        ("140105001", errors.NOT_IN_SCOPE),  # below the assignee: not its business
        ("140106", errors.NOT_IN_SCOPE),  # the assignee's sibling
        ("1402", errors.NOT_IN_SCOPE),  # the assigner's sibling
        ("140201", errors.NOT_IN_SCOPE),  # a cousin
        ("9999", errors.UNKNOWN_NODE),
    ],
)
def test_who_sees_an_item(node: str, expected: str | None) -> None:
    assert reason(can_see(TREE, node, ITEM)) == expected


def test_an_item_assigned_over_a_level_is_seen_by_the_hops_between() -> None:
    direct = ItemScope(assigner="14", assignee="140105001")
    assert can_see(TREE, "1401", direct) is None  # its subtree's
    assert can_see(TREE, "140105", direct) is None
    assert reason(can_see(TREE, "1402", direct)) == errors.NOT_IN_SCOPE


def test_the_rest_of_an_ancestors_items_stay_hidden() -> None:
    provinces_own = ItemScope(assigner="14", assignee="1402")
    assert reason(can_see(TREE, "1401", provinces_own)) == errors.NOT_IN_SCOPE
    assert reason(can_see(TREE, "140105", provinces_own)) == errors.NOT_IN_SCOPE


# ---------------------------------------------------------------- assigning


@pytest.mark.parametrize(
    ("assigner", "assignee", "unit", "expected"),
    [
        ("1401", "140105", None, None),  # parent to child
        ("14", "140105001", None, None),  # any ancestor, straight down
        ("140105", "140105", "water", None),  # a node to its own unit
        ("140105", "140105", None, errors.NOT_ANCESTOR),  # to itself, but no unit
        ("140105", "140106", None, errors.NOT_ANCESTOR),  # sibling assign
        ("140105", "1401", None, errors.NOT_ANCESTOR),  # upwards
        ("1402", "140105", None, errors.NOT_ANCESTOR),  # uncle
        ("1401", "nowhere", None, errors.UNKNOWN_NODE),
    ],
)
def test_only_an_ancestor_assigns(
    assigner: str, assignee: str, unit: str | None, expected: str | None
) -> None:
    assert reason(can_assign(TREE, assigner, assignee, unit)) == expected
    item = ItemScope(assigner=assigner, assignee=assignee, assignee_unit=unit)
    assert reason(check(TREE, person(assigner, Role.LEADER), Action.ASSIGN, item)) == expected


def test_a_node_cannot_assign_in_another_nodes_name() -> None:
    item = ItemScope(assigner="1401", assignee="140105")
    refusal = check(TREE, person("14", Role.LEADER), Action.ASSIGN, item)
    assert reason(refusal) == errors.NOT_ASSIGNER


# --------------------------------------------------------- assigner's side


@pytest.mark.parametrize(
    "action", [Action.UPDATE, Action.WITHDRAW, Action.DECIDE_PLAN, Action.REVIEW, Action.CLOSE]
)
def test_only_the_assigner_reviews_approves_updates_withdraws_and_closes(action: Action) -> None:
    assert node_may(TREE, "1401", action, ITEM) is None
    # The child closing (reviewing, approving...) its own item is refused.
    assert reason(node_may(TREE, "140105", action, ITEM)) == errors.NOT_ASSIGNER
    # So is an ancestor of the assigner: it reads, it does not act.
    assert reason(node_may(TREE, "14", action, ITEM)) == errors.NOT_ASSIGNER
    assert reason(node_may(TREE, "1402", action, ITEM)) == errors.NOT_IN_SCOPE


def test_a_child_closing_its_own_item_is_refused_whatever_its_role() -> None:
    for role in (Role.LEADER, Role.SUPERVISOR):
        refusal = check(TREE, person("140105", role), Action.CLOSE, ITEM)
        assert refusal == Refusal(errors.NOT_ASSIGNER, "only 1401 may close")
    assert check(TREE, person("1401", Role.SUPERVISOR), Action.CLOSE, ITEM) is None


# ---------------------------------------------------------- assignee's side


@pytest.mark.parametrize(
    "action", [Action.DEPLOY, Action.FEEDBACK, Action.PLAN, Action.RESOLVE, Action.DECOMPOSE]
)
def test_only_the_assignee_deploys_reports_plans_resolves_and_decomposes(action: Action) -> None:
    assert node_may(TREE, "140105", action, ITEM) is None
    assert reason(node_may(TREE, "1401", action, ITEM)) == errors.NOT_ASSIGNEE
    assert reason(node_may(TREE, "14", action, ITEM)) == errors.NOT_ASSIGNEE
    assert reason(node_may(TREE, "140106", action, ITEM)) == errors.NOT_IN_SCOPE


def test_feedback_by_a_node_that_is_not_the_assignee() -> None:
    # The assigner cannot write the answer to its own question...
    assert reason(check(TREE, person("1401", Role.SUPERVISOR), Action.FEEDBACK, ITEM)) == (
        errors.NOT_ASSIGNEE
    )
    # ...nor can a township below the assignee answer for it.
    below = check(TREE, person("140105001", Role.SUPERVISOR), Action.FEEDBACK, ITEM)
    assert reason(below) == errors.NOT_IN_SCOPE
    # A sibling does not even learn the item exists.
    assert reason(check(TREE, person("140106", Role.LEADER), Action.READ, ITEM)) == (
        errors.NOT_IN_SCOPE
    )


# --------------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("role", "action", "allowed"),
    [
        (Role.LEADER, Action.ASSIGN, True),
        (Role.LEADER, Action.DECIDE_PLAN, True),
        (Role.LEADER, Action.FEEDBACK, False),
        (Role.SUPERVISOR, Action.ASSIGN, True),
        (Role.SUPERVISOR, Action.REVIEW, True),
        (Role.SUPERVISOR, Action.CLOSE, True),
        (Role.SUPERVISOR, Action.DECIDE_PLAN, False),
        (Role.UNIT_HEAD, Action.ASSIGN, False),
        (Role.UNIT_HEAD, Action.CLOSE, False),
        (Role.OPERATOR, Action.REVIEW, False),
        (Role.OPERATOR, Action.DECOMPOSE, False),
        (Role.VIEWER, Action.FEEDBACK, False),
        (Role.VIEWER, Action.READ, True),
    ],
)
def test_roles_limit_what_a_person_does(role: Role, action: Action, allowed: bool) -> None:
    unit = "water" if role in (Role.UNIT_HEAD, Role.OPERATOR) else None
    refusal = role_may(person("140105", role, unit), action, ITEM)
    assert (refusal is None) is allowed
    if not allowed:
        assert reason(refusal) == errors.ROLE_FORBIDDEN


def test_wrong_role_on_the_right_node() -> None:
    viewer = person("140105", Role.VIEWER)
    assert reason(check(TREE, viewer, Action.FEEDBACK, ITEM)) == errors.ROLE_FORBIDDEN
    assert check(TREE, viewer, Action.READ, ITEM) is None
    operator = person("1401", Role.OPERATOR, "office")
    assert reason(check(TREE, operator, Action.CLOSE, ITEM)) == errors.ROLE_FORBIDDEN
    leader = person("1401", Role.LEADER)
    assert check(TREE, leader, Action.DECIDE_PLAN, ITEM) is None
    supervisor = person("1401", Role.SUPERVISOR)
    assert reason(check(TREE, supervisor, Action.DECIDE_PLAN, ITEM)) == errors.ROLE_FORBIDDEN


def test_unit_roles_report_only_for_their_own_unit() -> None:
    for action in (Action.DEPLOY, Action.FEEDBACK, Action.PLAN, Action.RESOLVE):
        assert check(TREE, person("140105", Role.OPERATOR, "water"), action, ITEM) is None
        assert check(TREE, person("140105", Role.UNIT_HEAD, "water"), action, ITEM) is None
        wrong = check(TREE, person("140105", Role.OPERATOR, "police"), action, ITEM)
        assert reason(wrong) == errors.WRONG_UNIT
    # A co-unit gives feedback, but the lead unit resolves.
    co = person("140105", Role.OPERATOR, "finance")
    assert check(TREE, co, Action.FEEDBACK, ITEM) is None
    assert reason(check(TREE, co, Action.RESOLVE, ITEM)) == errors.WRONG_UNIT
    # An item addressed to the node as a whole is the supervision office's.
    whole = ItemScope(assigner="1401", assignee="140105")
    assert reason(
        check(TREE, person("140105", Role.UNIT_HEAD, "water"), Action.FEEDBACK, whole)
    ) == (errors.WRONG_UNIT)
    assert check(TREE, person("140105", Role.SUPERVISOR), Action.FEEDBACK, whole) is None
    # Everyone in scope reads, whatever the unit.
    assert check(TREE, person("140105", Role.OPERATOR, "police"), Action.READ, ITEM) is None


def test_a_node_assigns_to_its_own_unit_and_reviews_it() -> None:
    inner = ItemScope(assigner="140105", assignee="140105", assignee_unit="water")
    assert check(TREE, person("140105", Role.LEADER), Action.ASSIGN, inner) is None
    assert check(TREE, person("140105", Role.OPERATOR, "water"), Action.FEEDBACK, inner) is None
    assert check(TREE, person("140105", Role.SUPERVISOR), Action.CLOSE, inner) is None
    refusal = check(TREE, person("140105", Role.OPERATOR, "water"), Action.CLOSE, inner)
    assert reason(refusal) == errors.ROLE_FORBIDDEN
    assert reason(check(TREE, person("140105", Role.UNIT_HEAD, "water"), Action.ASSIGN, inner)) == (
        errors.ROLE_FORBIDDEN
    )


def test_every_role_has_an_entry_and_reads() -> None:
    assert set(ROLE_ACTIONS) == set(Role)
    assert all(Action.READ in actions for actions in ROLE_ACTIONS.values())


def test_names_parse_or_are_refused() -> None:
    assert parse_role("operator") is Role.OPERATOR
    assert parse_action("decide_plan") is Action.DECIDE_PLAN
    with pytest.raises(HierarchyError) as info:
        parse_role("mayor")
    assert info.value.reason == errors.UNKNOWN_ROLE
    with pytest.raises(HierarchyError) as info:
        parse_action("delete")
    assert info.value.reason == errors.UNKNOWN_ACTION


def test_actors_and_units_validate() -> None:
    with pytest.raises(HierarchyError) as info:
        Actor(node="140105", role=Role.OPERATOR)
    assert info.value.reason == errors.BAD_UNIT
    units = Units(
        "140105",
        [
            Unit(id="office", name="区政府办", node="140105", office=True),
            Unit(id="water", name="水务局", node="140105"),
        ],
    )
    assert units.office.id == "office"
    assert "water" in units and len(units) == 2
    with pytest.raises(HierarchyError) as info:
        units.get("police")
    assert info.value.reason == errors.UNKNOWN_UNIT
    with pytest.raises(HierarchyError) as info:
        Units("140105", [Unit(id="water", name="水务局", node="140105")])
    assert info.value.reason == errors.BAD_UNIT
