"""The closing grade (评价) and missed monthly reports in the scores (issue 18).

- ``items.grade``: the grade the accepting review signed (``Reviewed.grade``:
  excellent, qualified or unqualified), None while not accepted or when the
  acceptance was signed before grades (filled by ``row_of``). Existing rows get
  None: no review carried a grade before this revision, so they stay exact.
- ``monthly_missed`` in ``score_rows``, ``score_tallies`` and ``tally_ranking``:
  the incentive rule for a monthly progress report date passed (按月反馈). Monthly
  reports were signed before this revision, so every item whose folded state
  holds an approved plan is listed for scoring again (``score_exceptions``,
  "dirty"): the keeper takes its cached lines away and counts them anew, as
  after any write (an item listed already keeps its reason: it is counted from its
events either way). Other items cannot have missed one: their 0 is exact.

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

_TABLES = (("score_rows", sa.Integer), ("score_tallies", sa.BigInteger),
           ("tally_ranking", sa.BigInteger))
_NO_PLAN = b'"approved_plan": null'


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("grade", sa.String(16)))
    for table, kind in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("monthly_missed", kind(), nullable=False, server_default="0")
            )
    bind = op.get_bind()
    items = sa.table("items", sa.column("item_id"), sa.column("assignee_path"),
                     sa.column("state"))
    exceptions = sa.table("score_exceptions", sa.column("item_id"), sa.column("path"),
                          sa.column("reason"))
    listed = {i for (i,) in bind.execute(sa.select(exceptions.c.item_id))}
    planned = [
        {"item_id": item_id, "path": path, "reason": "dirty"}
        for item_id, path, state in bind.execute(
            sa.select(items.c.item_id, items.c.assignee_path, items.c.state)
        )
        if _NO_PLAN not in bytes(state) and item_id not in listed
    ]
    if planned:
        bind.execute(exceptions.insert(), planned)


def downgrade() -> None:
    for table, _kind in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("monthly_missed")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("grade")
