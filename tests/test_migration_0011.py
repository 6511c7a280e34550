"""Revision 0011 on a database at 0010: ``items.grade`` added (None for the rows there),
``monthly_missed`` added to the score tables at 0, and the items whose state holds an
approved plan (which may have missed a monthly report) listed for scoring again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.items.projection import row_of
from protocol.fold import fold
from tests.test_fold import ASSIGNED
from tests.test_fold_acts import DEPLOYED
from tests.test_monthly import APPROVED, FIRST, PLAN


def test_the_migration_lists_planned_items_for_scoring_again(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    from node.storage.db import alembic_config

    path = tmp_path / "node.db"
    engine = create_engine(f"sqlite:///{path}")
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0010")
    planned = row_of(fold([ASSIGNED, DEPLOYED, PLAN, FIRST, APPROVED]), lambda n: n + "/")
    quiet = row_of(fold([ASSIGNED, DEPLOYED]), lambda n: n + "/")
    quiet["item_id"] = "14-000009"
    scored = row_of(fold([ASSIGNED, DEPLOYED, PLAN, FIRST, APPROVED]), lambda n: n + "/")
    scored["item_id"] = "14-000010"
    with sqlite3.connect(path) as db:
        for row in (planned, quiet, scored):
            kept = {k: v for k, v in row.items() if k != "grade"}
            db.execute(f"INSERT INTO items ({', '.join(kept)}) VALUES "
                       f"({', '.join('?' * len(kept))})", list(kept.values()))
        # One planned item is already listed, for another reason: it keeps it.
        db.execute("INSERT INTO score_exceptions VALUES ('14-000010', '1401/', 'stale')")
        db.execute("INSERT INTO score_tallies (quarter, path, unit, deploy_on_time, late_deploy,"
                   " feedback_on_time, late_feedback, resolved_excellent, resolved_qualified,"
                   " returned, unfinished, urged, node_items, unit_items)"
                   " VALUES (1, '1401/', '', 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0)")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0011")
    engine.dispose()
    with sqlite3.connect(path) as db:
        listed = dict(db.execute("SELECT item_id, reason FROM score_exceptions").fetchall())
        grades = db.execute("SELECT grade FROM items").fetchall()
        missed = db.execute("SELECT monthly_missed FROM score_tallies").fetchall()
    assert listed == {planned["item_id"]: "dirty", "14-000010": "stale"}
    assert grades == [(None,)] * 3
    assert missed == [(0,)]
