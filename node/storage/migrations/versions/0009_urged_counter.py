"""Urges (催办, issue 18): the ledger's columns and the score tallies' counter.

- ``items.urges``, ``last_urged_at``, ``last_urged_by``: how often an item was urged,
  and the last urge's time and signing node (filled by ``row_of``);
- ``urged`` in ``score_rows``, ``score_tallies`` and ``tally_ranking``: the incentive
  rule ``urged``.

Existing rows get 0 and None: no urge was signed before this revision
(``item.urged`` is new with it), so every row and kept tally stays exact.

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
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("urges", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_urged_at", sa.BigInteger()))
        batch.add_column(sa.Column("last_urged_by", sa.String(64)))
    for table, kind in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("urged", kind(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table, _kind in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("urged")
    with op.batch_alter_table("items") as batch:
        for column in ("last_urged_by", "last_urged_at", "urges"):
            batch.drop_column(column)
