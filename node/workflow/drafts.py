"""Drafts of our own events: everything but the numbers the store assigns.

A draft is a function of (seq, lamport, at); the store calls it inside the
write transaction that signs and stores the event, so sequence numbers are
gapless and the deadlines are computed from the moment of assignment.
"""

from __future__ import annotations

from typing import Any

from node.storage.events import Draft
from protocol import rules
from protocol.events import Assigned, Event, ItemEvent, make_item_id


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
) -> Draft:
    def build(seq: int, lamport: int, at: int) -> Event:
        computed = rules.compute_deadlines(
            assigned_at=at, item_class=item_class, calendar=calendar,
            explicit_resolve=explicit_resolve,
        )
        return Assigned(
            item=make_item_id(me, seq), origin=me, seq=seq, lamport=lamport, at=at,
            to=assignee, title=title, description=description, board=board, source=source,
            item_class=item_class, assigner=me, assignee=assignee,
            assignee_unit=assignee_unit, lead_unit=lead_unit, co_units=co_units,
            parent_item=parent_item, calendar=calendar, deadlines=computed.deadlines,
        )

    return build


def act(kind: type[ItemEvent], *, me: str, item: str, to: str, **fields: Any) -> Draft:
    """Any other item event by this node, addressed to the other party ``to``."""

    def build(seq: int, lamport: int, at: int) -> Event:
        event = kind(item=item, origin=me, seq=seq, lamport=lamport, at=at, to=to, **fields)
        return event  # type: ignore[return-value]

    return build
