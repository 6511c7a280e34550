"""One Jepsen-style checker for every fault run, reading each node's SQLite file.

A run records every write the API acknowledged (``201``) as a :class:`Write`;
writes whose answer was lost (a cut, a kill) are *indeterminate*: they may or
may not exist, but never twice. After healing, :func:`check` says:

- every acknowledged write is present exactly once at every node that must hold
  it: its owner, every ancestor (the mirror), and every node on the way down to
  its addressee (:func:`must_reach`) — ``lost`` and ``doubled`` count the misses;
- no node holds two events with one id or one ``(origin, seq)``;
- every mirror equals its owner: an ancestor holds exactly the events the top of
  a subtree holds of that subtree, and folds them into the same item states;
- every node's item rows equal a fresh fold of its stored events.

Nothing here talks to a node: the files are opened read-only, so it works the
same for nodes in this process and for ``duban run`` processes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from protocol import codec, envelope
from protocol.events import decode_event
from protocol.fold import fold

Tree = Mapping[str, str | None]
"""node id -> parent id (None for the root)."""

ASSIGNED = "item.assigned"


@dataclass(frozen=True, slots=True)
class Write:
    """An item created through ``POST /api/v1/items`` at ``node`` for ``to``."""

    node: str
    item: str
    to: str


@dataclass
class Verdict:
    acknowledged: int = 0
    lost: int = 0
    doubled: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return f"acknowledged={self.acknowledged} lost={self.lost} doubled={self.doubled}"

    def assert_ok(self) -> None:
        assert self.ok, f"{self.summary()}; {len(self.problems)} problems:\n" + "\n".join(
            self.problems[:30]
        )


def ancestors(tree: Tree, node: str) -> list[str]:
    out = []
    parent = tree[node]
    while parent is not None:
        out.append(parent)
        parent = tree[parent]
    return out


def in_subtree(tree: Tree, node: str, top: str) -> bool:
    return node == top or top in ancestors(tree, node)


def must_reach(tree: Tree, origin: str, to: str) -> set[str]:
    """Where an item event must end up: its origin and every ancestor (mirrors), and
    every node on the way down from the origin to its addressee."""
    nodes = {origin, *ancestors(tree, origin)}
    if to != origin and origin in ancestors(tree, to):
        nodes |= {n for n in [to, *ancestors(tree, to)] if origin in ancestors(tree, n)}
    return nodes


def read(db: Path, sql: str, *args: object) -> list[tuple]:  # type: ignore[type-arg]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def pending(db: Path) -> int:
    """Events routed to a link and not yet acknowledged by the other side."""
    rows = read(db, "SELECT count(*) FROM routes r LEFT JOIN links l ON l.link = r.link "
                    "WHERE r.pos > coalesce(l.acked_pos, 0)")
    return int(rows[0][0])


def unfolded(db: Path) -> int:
    """Received events whose items are not folded into rows yet."""
    [(value,)] = read(db, "SELECT value FROM meta WHERE key = 'materialised_pos'") or [(None,)]
    done = codec.decode(value) if value is not None else 0
    return int(read(db, "SELECT count(*) FROM events WHERE pos > ?", done)[0][0])


def assignments(db: Path) -> dict[str, int]:
    """item id -> how many ``item.assigned`` events this node holds for it."""
    return {item: n for item, n in read(
        db, "SELECT item_id, count(*) FROM events WHERE type = ? GROUP BY item_id", ASSIGNED)}


def converged(tree: Tree, dbs: Mapping[str, Path], writes: list[Write]) -> bool:
    """Every acknowledged write is everywhere it must be, no outbox holds anything,
    and everything received is folded. False while a database is being created."""
    try:
        held = {node: assignments(db) for node, db in dbs.items()}
        for w in writes:
            if any(held[n].get(w.item, 0) < 1 for n in must_reach(tree, w.node, w.to)):
                return False
        return not any(pending(db) or unfolded(db) for db in dbs.values())
    except sqlite3.Error:
        return False


def check(tree: Tree, dbs: Mapping[str, Path], writes: list[Write]) -> Verdict:
    """Everything the module docstring promises; call it once nothing moves."""
    verdict = Verdict(acknowledged=len(writes))
    problems = verdict.problems
    held = {node: assignments(db) for node, db in dbs.items()}
    for w in writes:
        for n in sorted(must_reach(tree, w.node, w.to)):
            count = held[n].get(w.item, 0)
            if count == 0:
                verdict.lost += 1
                problems.append(f"lost: {w.item} (written at {w.node} for {w.to}) missing at {n}")
            elif count > 1:
                verdict.doubled += 1
                problems.append(f"doubled: {w.item} held {count} times at {n}")
    for node, db in dbs.items():
        problems += check_unique(node, db)
        problems += check_folds(node, db)
    problems += check_mirrors(tree, dbs)
    return verdict


def check_unique(node: str, db: Path) -> list[str]:
    out = []
    [(rows, distinct)] = read(db, "SELECT count(*), count(DISTINCT event_id) FROM events")
    if rows != distinct:
        out.append(f"{node}: {rows - distinct} event ids held twice")
    twice = read(db, "SELECT origin, origin_seq, count(*) FROM events WHERE origin IS NOT NULL "
                     "GROUP BY origin, origin_seq HAVING count(*) > 1")
    if twice:
        out.append(f"{node}: (origin, seq) held twice: {twice[:5]}")
    return out


def item_states(db: Path) -> dict[str, object]:
    """item id -> the fold of the item events this node holds (as a plain dict)."""
    by_item: dict[str, list[tuple[str, object]]] = {}
    for item_id, raw in read(db, "SELECT item_id, raw FROM events WHERE item_id IS NOT NULL "
                                 "ORDER BY pos"):
        env = envelope.parse(raw)
        by_item.setdefault(item_id, []).append((env.event_id, decode_event(env.type, env.body)))
    return {
        item: json.loads(json.dumps(fold(pairs).to_dict()))  # type: ignore[arg-type]
        for item, pairs in by_item.items()
    }


def check_folds(node: str, db: Path) -> list[str]:
    """The item rows a node serves equal a fresh fold of the events it stores."""
    states = item_states(db)
    rows = {item: json.loads(state) for item, state in read(db, "SELECT item_id, state FROM items")}
    out = []
    if set(rows) != set(states):
        out.append(f"{node}: item rows for {len(set(rows) ^ set(states))} items differ "
                   "from the items its events name")
    out += [f"{node}: the row of {item} is not the fold of its events"
            for item in sorted(set(rows) & set(states)) if rows[item] != states[item]][:10]
    return out


def check_mirrors(tree: Tree, dbs: Mapping[str, Path]) -> list[str]:
    """Each ancestor holds exactly the events of a subtree that the subtree's top
    holds, and folds the subtree's own items (assigned and handled inside it) alike."""
    out = []
    for top in tree:
        subtree = [n for n in tree if in_subtree(tree, n, top)]
        marks = ",".join("?" * len(subtree))
        sql = f"SELECT event_id FROM events WHERE origin IN ({marks})"
        owner = {r[0] for r in read(dbs[top], sql, *subtree)}
        owner_states = _inner_states(dbs[top], subtree)
        for up in ancestors(tree, top):
            mirror = {r[0] for r in read(dbs[up], sql, *subtree)}
            if owner != mirror:
                out.append(f"{up}'s mirror of {top}: {len(owner - mirror)} events missing, "
                           f"{len(mirror - owner)} extra")
            if _inner_states(dbs[up], subtree) != owner_states:
                out.append(f"{up}'s mirror of {top} folds its items differently")
    return out


def _inner_states(db: Path, subtree: list[str]) -> dict[str, str]:
    marks = ",".join("?" * len(subtree))
    return {item: state for item, state in read(
        db, f"SELECT item_id, state FROM items WHERE assigner IN ({marks}) "
            f"AND assignee IN ({marks})", *subtree, *subtree)}
