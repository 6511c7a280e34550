"""The closing grade (评价, issue 18) in the item rows, for the ledger and its export.

- ``items.grade``: the grade the accepting review signed (``Reviewed.grade``:
  excellent, qualified or unqualified), None while not accepted or when the
  acceptance was signed before grades (filled by ``row_of``).

Existing rows get None: no review carried a grade before this revision (the
field is new with it), so every row stays exact.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("grade", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("grade")
