"""The cascade and the evidence: items' cascade level, files travelling up, unit lists.

- ``items.cascade``: the level an item goes down to (``Assigned.cascade``).
  Existing rows keep None: no item before this revision cascades.
- ``attachments.source``: the child a file arrived from (None: uploaded here).
- ``item_files``: each file a report names, with its signed name, size and type.
- ``blob_queue`` / ``blob_parts``: files waiting to go up a link, and the chunks
  of files still arriving from a child.
- ``node_units``: each subtree node's signed unit list.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("cascade", sa.String(32)))
    with op.batch_alter_table("attachments") as batch:
        batch.add_column(sa.Column("source", sa.String(64)))
    op.create_table(
        "item_files",
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("item_id", sa.String(96), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("digest", "item_id", name="pk_item_files"),
    )
    op.create_index("ix_item_files_item", "item_files", ["item_id"])
    op.create_table(
        "blob_queue",
        sa.Column("link", sa.String(64), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("pos", sa.BigInteger, nullable=False),
        sa.Column("queued_at", sa.BigInteger, nullable=False),
        sa.Column("refused", sa.String(64)),
        sa.Column("refused_detail", sa.Text),
        sa.Column("refused_at", sa.BigInteger),
        sa.PrimaryKeyConstraint("link", "digest", name="pk_blob_queue"),
    )
    op.create_index("ix_blob_queue_link", "blob_queue", ["link", "pos"])
    op.create_table(
        "blob_parts",
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("digest", "offset", name="pk_blob_parts"),
    )
    op.create_table(
        "node_units",
        sa.Column("node", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("units", sa.Text, nullable=False),
        sa.Column("signed_at", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("node_units")
    op.drop_table("blob_parts")
    op.drop_index("ix_blob_queue_link", table_name="blob_queue")
    op.drop_table("blob_queue")
    op.drop_index("ix_item_files_item", table_name="item_files")
    op.drop_table("item_files")
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("cascade")
