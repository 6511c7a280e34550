"""People, units, attachments, mirror freshness, and the ledger's columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _pos() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _path() -> sa.types.TypeEngine[str]:
    return sa.String(512).with_variant(sa.String(512, collation="C"), "postgresql")


_FILTERS = ["yellow_from", "red_from", "status", "board", "lead_unit", "assignee_unit"]
LEDGER_INDEXES = {
    "ix_items_path": ["assignee_path", "resolve_due", "item_id", "done", *_FILTERS],
    "ix_items_due": ["resolve_due", "item_id", "assignee_path", "done", *_FILTERS],
    "ix_items_open": ["done", "resolve_due", "item_id", "assignee_path", *_FILTERS],
    "ix_items_updated": ["updated_at", "item_id", "assignee_path", "status", "done"],
    "ix_items_assigned": ["assigned_at", "item_id", "assignee_path", "status", "done"],
    "ix_items_progress": ["progress", "item_id", "assignee_path", "status", "done"],
    "ix_items_assignee": ["assignee", "resolve_due", "item_id", "done", "status"],
}
"""The ledger's access paths (see node/storage/schema.py); they replace 0001's
``ix_items_assignee`` (assignee, status) and ``ix_items_resolve_due``."""


def _ledger_indexes() -> None:
    op.drop_index("ix_items_resolve_due", table_name="items")
    op.drop_index("ix_items_assignee", table_name="items")
    for name, columns in LEDGER_INDEXES.items():
        op.create_index(name, "items", columns)


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("peer_pending", sa.BigInteger))
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("assignee_path", _path(), nullable=False, server_default=""))
        batch.add_column(sa.Column("yellow_from", sa.BigInteger))
        batch.add_column(sa.Column("red_from", sa.BigInteger))
        batch.add_column(sa.Column("search_text", sa.Text, nullable=False, server_default=""))
    _ledger_indexes()
    op.create_index("ix_items_parent", "items", ["parent_item"])
    op.create_table(
        "node_seen",
        sa.Column("node", sa.String(64), primary_key=True),
        sa.Column("max_seq", sa.BigInteger, nullable=False),
        sa.Column("last_event_at", sa.BigInteger, nullable=False),
        sa.Column("last_received_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("id", _pos(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(64)),
        sa.Column("password_hash", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
    )
    op.create_table(
        "credentials",
        sa.Column("token_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("last_used_at", sa.BigInteger),
    )
    op.create_index("ix_credentials_user", "credentials", ["user_id"])
    op.create_table(
        "units",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("office", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "attachments",
        sa.Column("digest", sa.LargeBinary(32), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("attachments")
    op.drop_table("units")
    op.drop_index("ix_credentials_user", table_name="credentials")
    op.drop_table("credentials")
    op.drop_table("users")
    op.drop_table("node_seen")
    op.drop_index("ix_items_parent", table_name="items")
    for name in LEDGER_INDEXES:
        op.drop_index(name, table_name="items")
    op.create_index("ix_items_assignee", "items", ["assignee", "status"])
    op.create_index("ix_items_resolve_due", "items", ["resolve_due"])
    with op.batch_alter_table("items") as batch:
        batch.drop_column("search_text")
        batch.drop_column("red_from")
        batch.drop_column("yellow_from")
        batch.drop_column("assignee_path")
    with op.batch_alter_table("links") as batch:
        batch.drop_column("peer_pending")
