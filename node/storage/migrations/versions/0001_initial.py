"""The first schema: meta, events, routes, links, refused, items.

Written out in full rather than imported from ``schema.py``: a revision must keep
creating the same tables after ``schema.py`` moves on. The test suite checks that
head matches ``schema.py`` on SQLite and PostgreSQL.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _pos() -> sa.types.TypeEngine[int]:
    # SQLite needs INTEGER (not BIGINT) for an autoincrementing rowid alias.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("pos", _pos(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("origin", sa.String(64)),
        sa.Column("origin_seq", sa.BigInteger),
        sa.Column("lamport", sa.BigInteger),
        sa.Column("item_id", sa.String(96)),
        sa.Column("to_node", sa.String(64)),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("origin", "origin_seq", name="uq_events_origin_seq"),
    )
    op.create_index("ix_events_item", "events", ["item_id", "pos"])
    op.create_table(
        "routes",
        sa.Column("link", sa.String(64), nullable=False),
        sa.Column("pos", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("link", "pos", name="pk_routes"),
    )
    op.create_table(
        "links",
        sa.Column("link", sa.String(64), primary_key=True),
        sa.Column("acked_pos", sa.BigInteger, nullable=False),
        sa.Column("applied_pos", sa.BigInteger, nullable=False),
        sa.Column("last_contact", sa.BigInteger),
        sa.Column("last_error", sa.Text),
        sa.Column("last_error_at", sa.BigInteger),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("peer_epoch", sa.LargeBinary(16)),
    )
    op.create_table(
        "refused",
        sa.Column("id", _pos(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.LargeBinary(32)),
        sa.Column("type", sa.String(64)),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("item_id", sa.String(96), primary_key=True),
        sa.Column("assigner", sa.String(64), nullable=False),
        sa.Column("assignee", sa.String(64), nullable=False),
        sa.Column("assignee_unit", sa.String(64)),
        sa.Column("lead_unit", sa.String(64)),
        sa.Column("parent_item", sa.String(96)),
        sa.Column("board", sa.String(32), nullable=False),
        sa.Column("class", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("deploy_due", sa.BigInteger),
        sa.Column("feedback_due", sa.BigInteger),
        sa.Column("resolve_due", sa.BigInteger),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("assigned_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("state", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_items_assignee", "items", ["assignee", "status"])
    op.create_index("ix_items_resolve_due", "items", ["resolve_due"])


def downgrade() -> None:
    op.drop_index("ix_items_resolve_due", table_name="items")
    op.drop_index("ix_items_assignee", table_name="items")
    op.drop_table("items")
    op.drop_table("refused")
    op.drop_table("links")
    op.drop_table("routes")
    op.drop_index("ix_events_item", table_name="events")
    op.drop_table("events")
    op.drop_table("meta")
