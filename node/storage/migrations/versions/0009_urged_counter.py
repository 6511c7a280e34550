"""Score tallies: a counter of urges (催办), the incentive rule ``urged`` (issue 18).

Every row of ``score_rows``, ``score_tallies`` and ``tally_ranking`` gets ``urged``
= 0: no urge was signed before this revision (``item.urged`` is new with it), so
every kept tally stays exact.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = (("score_rows", sa.Integer), ("score_tallies", sa.BigInteger),
           ("tally_ranking", sa.BigInteger))


def upgrade() -> None:
    for table, kind in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("urged", kind(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table, _kind in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("urged")
