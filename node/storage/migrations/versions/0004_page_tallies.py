"""Page tallies: item facts, per-node counts, quarter and week tallies, cached points.

Counts kept beside the item rows so the tree page and the command board read a
few thousand small rows instead of every item (node/items/tallies.py,
docs/pages.md "Scale"). The upgrade creates the tables empty; the node builds
them from the ``items`` table when it next opens the database
(``node.items.tallies.build_if_missing``: one pass over the rows, about a minute
per million items), and its keeper scores every item in the background.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SCORE_COUNTERS = (
    "deploy_on_time", "late_deploy", "feedback_on_time", "late_feedback",
    "resolved_excellent", "resolved_qualified", "returned", "unfinished",
    "node_items", "unit_items",
)


def _path() -> sa.types.TypeEngine[str]:
    return sa.String(512).with_variant(sa.String(512, collation="C"), "postgresql")


def _counters(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger, nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "item_facts",
        sa.Column("item_id", sa.String(96), primary_key=True),
        sa.Column("path", _path(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("board", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("assigned_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("resolve_due", sa.BigInteger),
        sa.Column("resolve_met", sa.Boolean),
        sa.Column("finished_at", sa.BigInteger),
        sa.Column("warn_from", sa.BigInteger),
        sa.Column("red_from", sa.BigInteger),
        sqlite_with_rowid=False,
    )
    for name, column in (("ix_item_facts_red", "red_from"), ("ix_item_facts_warn", "warn_from")):
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, "item_facts", [column, "done", "path", "unit"],
                        sqlite_where=where, postgresql_where=where)
    op.create_table(
        "tally_nodes",
        sa.Column("path", _path(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        *_counters("open", "done", "red", "warn"),
        sa.PrimaryKeyConstraint("path", "unit", name="pk_tally_nodes"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tally_quarters",
        sa.Column("quarter", sa.BigInteger, nullable=False),
        sa.Column("path", _path(), nullable=False),
        sa.Column("board", sa.String(32), nullable=False),
        *_counters("total", "done", "resolved", "met", "due"),
        sa.PrimaryKeyConstraint("quarter", "path", "board", name="pk_tally_quarters"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tally_weeks",
        sa.Column("week", sa.BigInteger, nullable=False),
        sa.Column("path", _path(), nullable=False),
        *_counters("assigned", "done", "late"),
        sa.PrimaryKeyConstraint("week", "path", name="pk_tally_weeks"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tally_open",
        sa.Column("path", _path(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("quarter", sa.BigInteger, nullable=False),
        sa.Column("red_quarter", sa.BigInteger, nullable=False),
        *_counters("n"),
        sa.PrimaryKeyConstraint("path", "unit", "quarter", "red_quarter", name="pk_tally_open"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tally_finished",
        sa.Column("quarter", sa.BigInteger, nullable=False),
        sa.Column("path", _path(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        *_counters("n"),
        sa.PrimaryKeyConstraint("quarter", "path", "unit", name="pk_tally_finished"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tally_marks",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "score_rows",
        sa.Column("item_id", sa.String(96), nullable=False),
        sa.Column("quarter", sa.BigInteger, nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("path", _path(), nullable=False),
        *(sa.Column(name, sa.Integer, nullable=False) for name in _SCORE_COUNTERS),
        sa.PrimaryKeyConstraint("item_id", "quarter", "unit", name="pk_score_rows"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "score_tallies",
        sa.Column("quarter", sa.BigInteger, nullable=False),
        sa.Column("path", _path(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        *_counters(*_SCORE_COUNTERS),
        sa.PrimaryKeyConstraint("quarter", "path", "unit", name="pk_score_tallies"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tally_ranking",
        sa.Column("path", _path(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        *_counters(*_SCORE_COUNTERS),
        sa.PrimaryKeyConstraint("path", "unit", name="pk_tally_ranking"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "score_exceptions",
        sa.Column("item_id", sa.String(96), primary_key=True),
        sa.Column("path", _path(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_score_exceptions_path", "score_exceptions", ["path"])
    # The tallies are filled by the node when it opens the database and finds no
    # watermark (node.items.tallies.build_if_missing): a migration never runs live
    # code, which moves on while this file must not.


def downgrade() -> None:
    op.drop_index("ix_score_exceptions_path", table_name="score_exceptions")
    for table in ("score_exceptions", "tally_ranking", "score_tallies", "score_rows",
                  "tally_marks",
                  "tally_finished", "tally_open", "tally_weeks", "tally_quarters",
                  "tally_nodes"):
        op.drop_table(table)
    for index in ("ix_item_facts_warn", "ix_item_facts_red"):
        op.drop_index(index, table_name="item_facts")
    op.drop_table("item_facts")
