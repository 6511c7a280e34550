"""Who may sign which item event: the single-writer rule of DESIGN.md section 4.

An item has two parties. The assigning node owns the assignment fields and the
verdicts (assign, update, withdraw, decide a plan, review, close); the assigned
node owns the handling (deploy, feedback, plan, resolve). An event signed by
anyone else changes nothing: it is refused with a stable reason and kept for
audit. The envelope layer has already checked that the signer's key belongs to
``event.origin``; this module checks that the origin holds the role the kind
needs, and that the event is addressed (``to``) to the other party.

When a node assigns to one of its own units both parties are the same node, so
every check passes for it and ``to`` equals ``origin``.
"""

from __future__ import annotations

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
    Feedback,
    PlanDecided,
    PlanSubmitted,
    Resolved,
    Reviewed,
    Updated,
    Withdrawn,
)


class Role(StrEnum):
    ASSIGNER = "assigner"
    ASSIGNEE = "assignee"


ROLES: Final[dict[str, Role]] = {
    Assigned.TYPE: Role.ASSIGNER,
    Updated.TYPE: Role.ASSIGNER,
    Withdrawn.TYPE: Role.ASSIGNER,
    PlanDecided.TYPE: Role.ASSIGNER,
    Reviewed.TYPE: Role.ASSIGNER,
    Closed.TYPE: Role.ASSIGNER,
    Deployed.TYPE: Role.ASSIGNEE,
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


def check_signer(event: Event, assigner: str, assignee: str) -> Refusal | None:
    """None when ``event.origin`` may sign this kind for the item between
    ``assigner`` and ``assignee`` and ``event.to`` names the other party;
    otherwise the refusal (``not_assigner``, ``not_assignee``, ``wrong_recipient``).
    """
    if role_of(event) is Role.ASSIGNER:
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
