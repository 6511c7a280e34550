"""What waits on a person besides deadlines: the to-do's columns (issue 18).

- ``items.extension_asked_at``: the pending extension request's time (the assigner's
  "extension requests to decide");
- ``items.instruction_open_at``: the oldest instruction no feedback answered yet (the
  handling unit's "instructions to answer");
- ``items.urge_open_at``: the first urge since the handling node's last feedback (the
  handling unit's "urges received");
- ``items.monthly_due``: when the next monthly progress report is due under an
  approved plan (``ItemState.monthly_due``: a natural month, China time, after the
  approval or the latest feedback; the handling unit's "monthly report due");
- ``ix_items_assigner`` on ``items (assigner, done, status, item_id)``: the open items
  one node assigned, by status (plans, reviews and extensions to decide).

Existing rows are filled from their folded state (``items.state``, the JSON of
``ItemState.to_dict()``), with the same rules as ``node.items.projection.row_of``
written again here: a migration never imports live code. Only rows whose state
holds an urge, an instruction or an extension are read as JSON.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-09
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("extension_asked_at", "instruction_open_at", "urge_open_at", "monthly_due")
_EMPTY = (b'"urges": []', b'"instructions": []', b'"extensions": []', b'"approved_plan": null')
_HANDLING = ("deployed", "reporting", "planned", "returned")
_CHINA = timezone(timedelta(hours=8))


def add_month(ms: int) -> int:
    """``protocol.rules.add_month(ms, "natural")``: the same day and time a month on,
    China time, clamped to the month's last day."""
    now = datetime.fromtimestamp(ms / 1000, _CHINA)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    target = now.replace(year=year, month=month,
                         day=min(now.day, calendar.monthrange(year, month)[1]))
    return ms + round((target - now).total_seconds() * 1000)


def waiting(state: dict[str, Any]) -> dict[str, int | None]:
    """The three columns of one folded state (as ``row_of`` computes them)."""
    extensions = state.get("extensions") or []
    pending = extensions[-1] if extensions and extensions[-1]["status"] == "pending" else None
    open_instructions = [i for i in state.get("instructions") or [] if not i["answered_by"]]
    urges = state.get("urges") or []
    feedback = state.get("feedback") or []
    if urges and feedback:
        position = {event_id: n for n, event_id in enumerate(state["applied"])}
        last = position[feedback[-1]["event_id"]]
        urges = [u for u in urges if position[u["event_id"]] > last]
    plan = state.get("approved_plan")
    monthly = None
    if plan and plan.get("decided_at") is not None and state.get("status") in _HANDLING:
        monthly = add_month(max(plan["decided_at"], feedback[-1]["at"] if feedback else 0))
    return {
        "monthly_due": monthly,
        "extension_asked_at": pending["at"] if pending else None,
        "instruction_open_at": open_instructions[0]["at"] if open_instructions else None,
        "urge_open_at": urges[0]["at"] if urges else None,
    }


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        for column in _COLUMNS:
            batch.add_column(sa.Column(column, sa.BigInteger()))
    op.create_index("ix_items_assigner", "items", ["assigner", "done", "status", "item_id"])
    bind = op.get_bind()
    items = sa.table("items", sa.column("item_id"), sa.column("state"),
                     *(sa.column(c) for c in _COLUMNS))
    changes = []
    for item_id, state in bind.execute(sa.select(items.c.item_id, items.c.state)):
        blob = bytes(state)
        if all(empty in blob for empty in _EMPTY):
            continue
        values = waiting(json.loads(blob))
        if any(v is not None for v in values.values()):
            changes.append({"id": item_id, **{"v_" + c: v for c, v in values.items()}})
    if changes:
        bind.execute(
            items.update().where(items.c.item_id == sa.bindparam("id")).values(
                {c: sa.bindparam("v_" + c) for c in _COLUMNS}
            ),
            changes,
        )


def downgrade() -> None:
    op.drop_index("ix_items_assigner", "items")
    with op.batch_alter_table("items") as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column)
