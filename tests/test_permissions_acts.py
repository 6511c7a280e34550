"""Who may urge (催办), instruct (批示), ask for and decide an extension (延期申请)."""

from __future__ import annotations

import pytest

from hierarchy import errors
from hierarchy.permissions import check
from hierarchy.roles import Action, Role
from tests.test_permissions import ITEM, TREE, person, reason


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ("1401", None),  # the assigner
        ("14", None),  # above the assigner
        ("140105", errors.NOT_SUPERVISOR),  # the assignee does not urge itself
        ("1402", errors.NOT_IN_SCOPE),  # the assigner's sibling sees nothing
        ("140106", errors.NOT_IN_SCOPE),  # the assignee's sibling neither
    ],
)
@pytest.mark.parametrize("action", [Action.URGE, Action.INSTRUCT])
def test_the_assigner_and_the_nodes_above_it_supervise(
    node: str, expected: str | None, action: Action
) -> None:
    assert reason(check(TREE, person(node, Role.LEADER), action, ITEM)) == expected


def test_a_supervisor_urges_but_only_a_leader_instructs() -> None:
    office = person("14", Role.SUPERVISOR)
    assert check(TREE, office, Action.URGE, ITEM) is None
    assert reason(check(TREE, office, Action.INSTRUCT, ITEM)) == errors.ROLE_FORBIDDEN
    for role in (Role.UNIT_HEAD, Role.OPERATOR, Role.VIEWER):
        assert reason(check(TREE, person("1401", role, "water"), Action.URGE, ITEM)) == (
            errors.ROLE_FORBIDDEN
        )


def test_the_handling_unit_asks_and_the_assigner_decides() -> None:
    for role, unit in ((Role.UNIT_HEAD, "water"), (Role.OPERATOR, "water"),
                       (Role.SUPERVISOR, None)):
        assert check(TREE, person("140105", role, unit), Action.REQUEST_EXTENSION, ITEM) is None
    other_unit = person("140105", Role.OPERATOR, "finance")  # a co-unit does not ask
    assert reason(check(TREE, other_unit, Action.REQUEST_EXTENSION, ITEM)) == errors.WRONG_UNIT
    assert reason(check(TREE, person("1401", Role.SUPERVISOR), Action.REQUEST_EXTENSION, ITEM)) \
        == errors.NOT_ASSIGNEE
    for role in (Role.LEADER, Role.SUPERVISOR):
        assert check(TREE, person("1401", role), Action.DECIDE_EXTENSION, ITEM) is None
    # Not the assignee, nor a node above the assigner: only the assigner decides.
    for node in ("140105", "14"):
        assert reason(check(TREE, person(node, Role.LEADER), Action.DECIDE_EXTENSION, ITEM)) \
            == errors.NOT_ASSIGNER
