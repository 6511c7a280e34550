"""Drafts of our own events: everything but the numbers the store assigns.

A draft is a function of (seq, lamport, at); the store calls it inside the
write transaction that signs and stores the event, so sequence numbers are
gapless and the deadlines are computed from the moment of assignment.
"""

from __future__ import annotations

from typing import Any

from node.storage.events import Draft
from protocol import rules
from protocol.events import Assigned, Deadlines, Event, ItemEvent, make_item_id


def assign(
    *,
    me: str,
    assignee: str,
    title: str,
    description: str = "",
    board: str = "daily",
    source: str = "office",
    item_class: str = "general",
    calendar: str = "natural",
    explicit_resolve: int | None = None,
    assignee_unit: str | None = None,
    lead_unit: str | None = None,
    co_units: tuple[str, ...] = (),
    parent_item: str | None = None,
    cascade: str | None = None,
    deadlines: Deadlines | None = None,
) -> Draft:
    """An assignment. Its deadlines are computed from the moment of signing (the
    13710 rules for ``item_class``, or ``explicit_resolve``), or, when ``deadlines``
    is given (a sub-item passed down, node/workflow/cascade.py), copied from it and
    clamped to fall after that moment (:func:`clamp`). ``cascade``: the level the
    item goes down to (``Assigned.cascade``)."""

    def build(seq: int, lamport: int, at: int) -> Event:
        if deadlines is not None:
            due = clamp(deadlines, at)
        else:
            due = rules.compute_deadlines(
                assigned_at=at, item_class=item_class, calendar=calendar,
                explicit_resolve=explicit_resolve,
            ).deadlines
        return Assigned(
            item=make_item_id(me, seq), origin=me, seq=seq, lamport=lamport, at=at,
            to=assignee, title=title, description=description, board=board, source=source,
            item_class=item_class, assigner=me, assignee=assignee,
            assignee_unit=assignee_unit, lead_unit=lead_unit, co_units=co_units,
            parent_item=parent_item, calendar=calendar, deadlines=due, cascade=cascade,
        )

    return build


def clamp(deadlines: Deadlines, at: int) -> Deadlines:
    """``deadlines`` moved, where needed, to fall after ``at`` and stay ordered: each
    due is at least ``at`` + 1 ms and at least the one before it (deploy <= feedback
    <= resolve). A deadline already past when a sub-item is signed (a node that was
    offline, or a person passing the item down late) is thus due at once, never
    silently extended: the sub-item shows overdue as the parent item does
    (docs/cascade.md, "Deadlines")."""
    deploy = max(deadlines.deploy, at + 1)
    feedback = max(deadlines.feedback, deploy)
    return Deadlines(deploy=deploy, feedback=feedback, resolve=max(deadlines.resolve, feedback))


def act(kind: type[ItemEvent], *, me: str, item: str, to: str, **fields: Any) -> Draft:
    """Any other item event by this node, addressed to the other party ``to``."""

    def build(seq: int, lamport: int, at: int) -> Event:
        event = kind(item=item, origin=me, seq=seq, lamport=lamport, at=at, to=to, **fields)
        return event  # type: ignore[return-value]

    return build
