"""Single writer per field: who may sign which item event, addressed to whom."""

from __future__ import annotations

import pytest

from protocol import errors
from protocol.errors import ProtocolError
from protocol.events import (
    EVENT_TYPES,
    Closed,
    Deadlines,
    Deployed,
    Event,
    ExtensionDecided,
    ExtensionRequested,
    Feedback,
    Instructed,
    Milestone,
    PlanDecided,
    PlanSubmitted,
    Resolved,
    Reviewed,
    Updated,
    Urged,
    Withdrawn,
)
from protocol.ownership import ROLES, Refusal, Role, check_signer, role_of

ASSIGNER, ASSIGNEE, OTHER = "1401", "140105", "140106"
ITEM = "1401-000010"


def make(kind: type, origin: str, to: str) -> Event:
    header = {"item": ITEM, "origin": origin, "seq": 3, "lamport": 4, "at": 5, "to": to}
    extra: dict[str, object] = {
        Updated: {"deadlines": Deadlines(deploy=1, feedback=2, resolve=3)},
        Withdrawn: {"reason": "merged"},
        Deployed: {"note": ""},
        Feedback: {"text": "x", "progress": 5, "attachments": ()},
        PlanSubmitted: {"milestones": (Milestone(title="m", due=9),), "note": ""},
        PlanDecided: {"approved": True, "reason": ""},
        Resolved: {"text": "done", "attachments": ()},
        Reviewed: {"outcome": "accept", "reason": ""},
        Closed: {"note": ""},
        Urged: {"author": "张三", "text": "请加快"},
        Instructed: {"author": "李省长", "text": "务必按期完成"},
        ExtensionRequested: {"reason": "雨季", "deadline": 99, "progress": "完成一半"},
        ExtensionDecided: {"request": "ab" * 32, "approved": True, "reason": ""},
    }[kind]
    return kind(**header, **extra)  # type: ignore[no-any-return]


ASSIGNER_KINDS = (Updated, Withdrawn, PlanDecided, Reviewed, Closed, ExtensionDecided)
ASSIGNEE_KINDS = (Deployed, Feedback, PlanSubmitted, Resolved, ExtensionRequested)
SUPERVISOR_KINDS = (Urged, Instructed)


def test_every_kind_has_one_role() -> None:
    assert set(ROLES) == set(EVENT_TYPES)
    assert {t for t, r in ROLES.items() if r is Role.ASSIGNER} == {
        "item.assigned",
        "item.updated",
        "item.withdrawn",
        "item.plan_decided",
        "item.reviewed",
        "item.closed",
        "item.extension_decided",
    }
    assert {t for t, r in ROLES.items() if r is Role.SUPERVISOR} == {
        "item.urged",
        "item.instructed",
    }
    assert role_of("item.resolved") is Role.ASSIGNEE
    assert role_of("item.extension_requested") is Role.ASSIGNEE
    with pytest.raises(ProtocolError) as info:
        role_of("item.exploded")
    assert info.value.reason == errors.UNKNOWN_KIND


@pytest.mark.parametrize("kind", ASSIGNER_KINDS)
def test_assigner_kinds(kind: type) -> None:
    assert check_signer(make(kind, ASSIGNER, ASSIGNEE), ASSIGNER, ASSIGNEE) is None
    for origin in (ASSIGNEE, OTHER):
        refusal = check_signer(make(kind, origin, ASSIGNEE), ASSIGNER, ASSIGNEE)
        assert refusal is not None and refusal.reason == errors.NOT_ASSIGNER
    wrong_to = check_signer(make(kind, ASSIGNER, OTHER), ASSIGNER, ASSIGNEE)
    assert wrong_to == Refusal(
        reason=errors.WRONG_RECIPIENT, detail=wrong_to.detail if wrong_to else ""
    )


@pytest.mark.parametrize("kind", ASSIGNEE_KINDS)
def test_assignee_kinds(kind: type) -> None:
    assert check_signer(make(kind, ASSIGNEE, ASSIGNER), ASSIGNER, ASSIGNEE) is None
    for origin in (ASSIGNER, OTHER):
        refusal = check_signer(make(kind, origin, ASSIGNER), ASSIGNER, ASSIGNEE)
        assert refusal is not None and refusal.reason == errors.NOT_ASSIGNEE
    refusal = check_signer(make(kind, ASSIGNEE, ASSIGNEE), ASSIGNER, ASSIGNEE)
    assert refusal is not None and refusal.reason == errors.WRONG_RECIPIENT


@pytest.mark.parametrize("kind", ASSIGNER_KINDS + ASSIGNEE_KINDS)
def test_a_node_assigning_to_its_own_unit_plays_both_roles(kind: type) -> None:
    assert check_signer(make(kind, ASSIGNER, ASSIGNER), ASSIGNER, ASSIGNER) is None
    refusal = check_signer(make(kind, ASSIGNER, OTHER), ASSIGNER, ASSIGNER)
    assert refusal is not None and refusal.reason == errors.WRONG_RECIPIENT


def test_refusal_as_error() -> None:
    refusal = check_signer(make(Closed, ASSIGNEE, ASSIGNER), ASSIGNER, ASSIGNEE)
    assert refusal is not None
    error = refusal.error()
    assert (error.reason, error.detail) == (errors.NOT_ASSIGNER, refusal.detail)
    assert ASSIGNEE in refusal.detail and "item.closed" in refusal.detail


PROVINCE, CITY = "14", "1401"


def _above_assigner(node: str) -> bool:
    """The tree as a node would answer it for the item 1401 -> 140105: only 14 is
    above the assigner 1401."""
    return node == PROVINCE


@pytest.mark.parametrize("kind", SUPERVISOR_KINDS)
def test_supervisor_kinds(kind: type) -> None:
    """The assigner or any node above it urges and instructs, always addressed to the
    assignee; the assignee itself and a sibling never do."""
    for origin in (ASSIGNER, PROVINCE):
        event = make(kind, origin, ASSIGNEE)
        assert check_signer(event, ASSIGNER, ASSIGNEE, _above_assigner) is None
        assert check_signer(event, ASSIGNER, ASSIGNEE) is None  # the fold's question
    for origin in (ASSIGNEE, OTHER):
        refusal = check_signer(make(kind, origin, ASSIGNEE), ASSIGNER, ASSIGNEE, _above_assigner)
        assert refusal is not None and refusal.reason == errors.NOT_SUPERVISOR
    # Over stored events (no tree), the fold still refuses the assignee urging itself.
    refusal = check_signer(make(kind, ASSIGNEE, ASSIGNEE), ASSIGNER, ASSIGNEE)
    assert refusal is not None and refusal.reason == errors.NOT_SUPERVISOR
    # Addressed to anyone but the assignee: refused, even from the province.
    for to in (ASSIGNER, PROVINCE, OTHER):
        refusal = check_signer(make(kind, PROVINCE, to), ASSIGNER, ASSIGNEE, _above_assigner)
        assert refusal is not None and refusal.reason == errors.WRONG_RECIPIENT


@pytest.mark.parametrize("kind", SUPERVISOR_KINDS)
def test_supervisor_of_an_item_a_node_assigned_to_its_own_unit(kind: type) -> None:
    """A node assigning to its own unit is both parties: it urges its own unit."""
    event = make(kind, CITY, CITY)
    assert check_signer(event, CITY, CITY, lambda node: node == PROVINCE) is None
    assert check_signer(make(kind, PROVINCE, CITY), CITY, CITY, lambda n: n == PROVINCE) is None
