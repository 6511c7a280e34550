"""Who may sign which item event: the single-writer rule of DESIGN.md section 4.

An item has two parties. The assigning node owns the assignment fields and the
verdicts (assign, update, withdraw, decide a plan or an extension, review,
close); the assigned node owns the handling (deploy, feedback, plan, request an
extension, resolve). Urging (催办) and instructing (批示) belong to the
supervisors: the assigner or any node above it, always addressed to the
assignee. Whether a node is above the assigner is a question of the tree, which
this module does not hold: :func:`check_signer` takes it as ``above``, and the
node asks it at every hop before it stores such an event (as it asks who may
assign to whom); the fold, over stored events, only refuses the assignee
urging itself. An event signed by
anyone else changes nothing: it is refused with a stable reason and kept for
audit. The envelope layer has already checked that the signer's key belongs to
``event.origin``; this module checks that the origin holds the role the kind
needs, and that the event is addressed (``to``) to the other party.

When a node assigns to one of its own units both parties are the same node, so
every check passes for it and ``to`` equals ``origin``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from protocol import errors
from protocol.errors import ProtocolError
from protocol.events import (
    Assigned,
    Closed,
    Deployed,
    Event,
    ExtensionDecided,
    ExtensionRequested,
    Feedback,
    Instructed,
    PlanDecided,
    PlanSubmitted,
    Resolved,
    Reviewed,
    Updated,
    Urged,
    Withdrawn,
)


class Role(StrEnum):
    ASSIGNER = "assigner"
    ASSIGNEE = "assignee"
    SUPERVISOR = "supervisor"
    """The assigner or any of its ancestors."""


ROLES: Final[dict[str, Role]] = {
    Assigned.TYPE: Role.ASSIGNER,
    Updated.TYPE: Role.ASSIGNER,
    Withdrawn.TYPE: Role.ASSIGNER,
    PlanDecided.TYPE: Role.ASSIGNER,
    Reviewed.TYPE: Role.ASSIGNER,
    Closed.TYPE: Role.ASSIGNER,
    ExtensionDecided.TYPE: Role.ASSIGNER,
    Deployed.TYPE: Role.ASSIGNEE,
    ExtensionRequested.TYPE: Role.ASSIGNEE,
    Urged.TYPE: Role.SUPERVISOR,
    Instructed.TYPE: Role.SUPERVISOR,
    Feedback.TYPE: Role.ASSIGNEE,
    PlanSubmitted.TYPE: Role.ASSIGNEE,
    Resolved.TYPE: Role.ASSIGNEE,
}
"""Envelope type -> the party that alone may sign it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Why an event is not applied: a stable reason code and a human detail.

    The node answers a refused action with it (403 for ownership, 409 for a
    transition that does not fit) and the fold lists it in ``state.refused``.
    """

    reason: str
    detail: str = ""

    def error(self) -> ProtocolError:
        """The same refusal as an exception, for callers that raise."""
        return ProtocolError(self.reason, self.detail)


def role_of(kind: str | Event) -> Role:
    """The party that signs ``kind`` (an envelope type or an event); ``unknown_kind`` if none."""
    type_ = kind if isinstance(kind, str) else kind.TYPE
    role = ROLES.get(type_)
    if role is None:
        raise ProtocolError(errors.UNKNOWN_KIND, type_[:80])
    return role


def check_signer(
    event: Event,
    assigner: str,
    assignee: str,
    above: Callable[[str], bool] | None = None,
) -> Refusal | None:
    """None when ``event.origin`` may sign this kind for the item between
    ``assigner`` and ``assignee`` and ``event.to`` names the other party;
    otherwise the refusal (``not_assigner``, ``not_assignee``, ``not_supervisor``,
    ``wrong_recipient``).

    ``above(node)`` says whether ``node`` is a proper ancestor of ``assigner``: the
    node passes it when it receives an urge or instruction; None (the fold) accepts
    any signer but the assignee (see the module docstring).
    """
    role = role_of(event)
    if role is Role.SUPERVISOR:
        return _check_supervisor(event, assigner, assignee, above)
    if role is Role.ASSIGNER:
        signer, other, reason = assigner, assignee, errors.NOT_ASSIGNER
    else:
        signer, other, reason = assignee, assigner, errors.NOT_ASSIGNEE
    if event.origin != signer:
        return Refusal(
            reason=reason,
            detail=f"{event.TYPE} is signed by the {role_of(event)} {signer}, not {event.origin}",
        )
    if event.to != other:
        return Refusal(
            reason=errors.WRONG_RECIPIENT,
            detail=f"{event.TYPE} from {signer} must be addressed to {other}, not {event.to}",
        )
    return None


def _check_supervisor(
    event: Event, assigner: str, assignee: str, above: Callable[[str], bool] | None
) -> Refusal | None:
    origin = event.origin
    if origin != assigner and (origin == assignee or (above is not None and not above(origin))):
        return Refusal(
            reason=errors.NOT_SUPERVISOR,
            detail=f"{event.TYPE} is signed by the assigner {assigner} or a node above it, "
            f"not {origin}",
        )
    if event.to != assignee:
        return Refusal(
            reason=errors.WRONG_RECIPIENT,
            detail=f"{event.TYPE} must be addressed to the assignee {assignee}, not {event.to}",
        )
    return None
