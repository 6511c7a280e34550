"""What waits on a person besides deadlines (the to-do's columns, revision 0010):
``ItemState.unanswered_urges`` / ``unanswered_instructions`` / ``extension_pending``
as ``row_of`` stores them, and the migration that fills existing rows from the
stored state with the same rules written again (it may not import live code)."""

from __future__ import annotations

import importlib.util
import json
import random
import sqlite3
from pathlib import Path
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from node.items.projection import row_of
from protocol.events import ExtensionDecided, Feedback, Instructed, Urged
from protocol.fold import fold
from protocol.rules import HOUR
from tests.test_fold import ASSIGNED, T0, Pair, down, up
from tests.test_fold_acts import DEPLOYED, REQUEST_AT, above, request, urge
from tests.test_monthly import APPROVED, FIRST, FIRST_DUE, PLAN

MIGRATION = (Path(__file__).parents[1] / "node" / "storage" / "migrations" / "versions"
             / "0010_waiting_acts.py")
COLUMNS = ("extension_asked_at", "instruction_open_at", "urge_open_at", "monthly_due")


def migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("m0010", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def columns(pairs: list[Pair]) -> dict[str, object]:
    row = row_of(fold(pairs), lambda node: node + "/")
    return {c: row[c] for c in COLUMNS}


INSTRUCTED = above(Instructed, 1, 3, T0 + 2 * HOUR, author="王", text="抓紧")
URGED = down(Urged, 2, 4, T0 + 3 * HOUR, **urge())
ASKED = request(seq=3, lamport=5)


def report(seq: int, lamport: int, at: int, answers: str | None = None) -> Pair:
    return up(Feedback, seq, lamport, at, text="进展", progress=40, attachments=(),
              answers=answers)


def test_each_waits_until_what_answers_it() -> None:
    assert columns([ASSIGNED, DEPLOYED]) == dict.fromkeys(COLUMNS)
    waiting = columns([ASSIGNED, DEPLOYED, INSTRUCTED, URGED, ASKED])
    assert waiting == {"extension_asked_at": REQUEST_AT, "instruction_open_at": T0 + 2 * HOUR,
                       "urge_open_at": T0 + 3 * HOUR, "monthly_due": None}
    # A feedback answers the urge, not the instruction it does not name.
    plain = report(4, 6, REQUEST_AT + HOUR)
    after = columns([ASSIGNED, DEPLOYED, INSTRUCTED, URGED, ASKED, plain])
    assert after["urge_open_at"] is None and after["instruction_open_at"] == T0 + 2 * HOUR
    # A second urge after that feedback waits again, from its own time.
    again = down(Urged, 4, 7, REQUEST_AT + 2 * HOUR, **urge())
    assert columns([ASSIGNED, DEPLOYED, INSTRUCTED, URGED, ASKED, plain, again])[
        "urge_open_at"] == REQUEST_AT + 2 * HOUR
    # The answer clears the instruction; the decision the extension.
    answer = report(4, 6, REQUEST_AT + HOUR, answers=INSTRUCTED[0])
    decided = down(ExtensionDecided, 4, 8, REQUEST_AT + 3 * HOUR, request=ASKED[0],
                   approved=False, reason="不同意")
    assert columns([ASSIGNED, DEPLOYED, INSTRUCTED, URGED, ASKED, answer, decided]) == (
        dict.fromkeys(COLUMNS))


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 6))
def test_the_migration_computes_what_row_of_does(rng: random.Random, cut: int) -> None:
    answer = report(4, 6, REQUEST_AT + HOUR, answers=INSTRUCTED[0] if rng.random() < .5 else None)
    decided = down(ExtensionDecided, 4, 8, REQUEST_AT + 3 * HOUR, request=ASKED[0],
                   approved=rng.random() < .5, reason="理由")
    again = down(Urged, 5, 9, REQUEST_AT + 4 * HOUR, **urge())
    history = [ASSIGNED, DEPLOYED, INSTRUCTED, URGED, ASKED, answer, decided, again][: 2 + cut]
    if rng.random() < .5:  # under an approved plan: a monthly report owed
        history = [ASSIGNED, DEPLOYED, PLAN, FIRST, APPROVED]
        if cut % 2:
            history.append(report(4, 6, FIRST_DUE - 86_400_000 * (cut + 1)))
    rng.shuffle(history)
    state = fold(history)
    row = row_of(state, lambda node: node + "/")
    assert migration().waiting(json.loads(row["state"])) == {c: row[c] for c in COLUMNS}


def test_the_migration_fills_existing_rows(tmp_path: Path) -> None:
    """Revision 0010 on a database at 0009 holding an item with an open urge,
    instruction and extension request, and one with none."""
    from alembic import command
    from sqlalchemy import create_engine

    from node.storage.db import alembic_config

    path = tmp_path / "node.db"
    engine = create_engine(f"sqlite:///{path}")
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0009")
    busy = row_of(fold([ASSIGNED, DEPLOYED, INSTRUCTED, URGED, ASKED]), lambda n: n + "/")
    planned = row_of(fold([ASSIGNED, DEPLOYED, PLAN, FIRST, APPROVED]), lambda n: n + "/")
    planned["item_id"] = "14-000008"
    quiet = row_of(fold([ASSIGNED, DEPLOYED]), lambda n: n + "/")
    quiet["item_id"] = "14-000009"
    with sqlite3.connect(path) as db:
        for row in (busy, quiet, planned):
            # Only 0009's columns: not 0010's, nor later revisions' (0011: grade).
            kept = {k: v for k, v in row.items() if k not in COLUMNS and k != "grade"}
            db.execute(f"INSERT INTO items ({', '.join(kept)}) VALUES "
                       f"({', '.join('?' * len(kept))})", list(kept.values()))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0010")
    engine.dispose()
    with sqlite3.connect(path) as db:
        rows = db.execute(f"SELECT item_id, {', '.join(COLUMNS)} FROM items").fetchall()
    got = {r[0]: tuple(r[1:]) for r in rows}
    assert got == {busy["item_id"]: tuple(busy[c] for c in COLUMNS),
                   "14-000009": (None, None, None, None),
                   "14-000008": (None, None, None, FIRST_DUE)}
    assert busy["urge_open_at"] is not None
