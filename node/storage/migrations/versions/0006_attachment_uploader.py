"""Attachments: who uploaded each file, for the per-person attachment quota.

Files stored before this revision have no uploader: they count towards the
node's quota (``api.attachment_quota_node_bytes``) but no person's.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.add_column(sa.Column("uploaded_by", sa.Integer))
    op.create_index("ix_attachments_uploader", "attachments", ["uploaded_by", "size"])


def downgrade() -> None:
    op.drop_index("ix_attachments_uploader", table_name="attachments")
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("uploaded_by")
