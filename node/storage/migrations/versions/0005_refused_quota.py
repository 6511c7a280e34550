"""Refused events kept within a quota per link: a counter of those pruned, an index.

A child could fill its parent's disk with refused events, each kept raw for
audit. They are now kept within ``sync.refused_keep_events`` and
``sync.refused_keep_bytes`` per link, the oldest pruned; ``links.refused_dropped``
counts what was pruned (shown in the link status), and ``ix_refused_source``
finds a link's oldest rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(
            sa.Column("refused_dropped", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.create_index("ix_refused_source", "refused", ["source", "id"])


def downgrade() -> None:
    op.drop_index("ix_refused_source", table_name="refused")
    with op.batch_alter_table("links") as batch:
        batch.drop_column("refused_dropped")
