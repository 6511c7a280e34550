"""Reminders: contact details of people, the durable reminder schedule, the message log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _pos() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("phone", sa.String(32)))
        batch.add_column(sa.Column("email", sa.String(254)))
    op.create_table(
        "reminders",
        sa.Column("id", _pos(), primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(96), nullable=False),
        sa.Column("deadline", sa.String(16), nullable=False),
        sa.Column("milestone", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("due", sa.BigInteger, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("seen_at", sa.BigInteger, nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.UniqueConstraint(
            "item_id", "deadline", "milestone", "kind", "due", name="uq_reminders_key"
        ),
    )
    op.create_table(
        "reminder_messages",
        sa.Column("id", _pos(), primary_key=True, autoincrement=True),
        sa.Column("message_key", sa.String(64), nullable=False, unique=True),
        sa.Column("reminder_id", sa.BigInteger, nullable=False),
        sa.Column("item_id", sa.String(96), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("person", sa.String(64), nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("last_attempt_at", sa.BigInteger),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("sent_at", sa.BigInteger),
        sa.Column("late", sa.Boolean, nullable=False),
    )
    op.create_index("ix_reminder_messages_item", "reminder_messages", ["item_id", "id"])
    op.create_index(
        "ix_reminder_messages_due", "reminder_messages", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_reminder_messages_due", table_name="reminder_messages")
    op.drop_index("ix_reminder_messages_item", table_name="reminder_messages")
    op.drop_table("reminder_messages")
    op.drop_table("reminders")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email")
        batch.drop_column("phone")
