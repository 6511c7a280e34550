"""Reminder messages: when the person they reached read them (the message centre).

``read_at`` is None until the person opens the message centre entry or marks it
read; an index by person lists one person's messages newest first.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reminder_messages") as batch:
        batch.add_column(sa.Column("read_at", sa.BigInteger))
    op.create_index(
        "ix_reminder_messages_person", "reminder_messages", ["person", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_reminder_messages_person", table_name="reminder_messages")
    with op.batch_alter_table("reminder_messages") as batch:
        batch.drop_column("read_at")
