"""The ledger's query builder against real databases, checked against a Python reference.

A few hundred item rows, shaped like ``node.items.projection.row_of`` writes them (done
is ``status in DONE``; coarse deadlines and progress, so sort keys tie), are
stored in a real SQLite file and a real PostgreSQL database (``db_url``).
Every filter alone, many random combinations, each sort and page must give
exactly the items and the order a plain Python filter gives, with colours from
``protocol.rules.colour_at``. On SQLite every access path (``key``, ``narrow``,
``wide``: the same conditions, different indexes) must give the same answer,
and the plans must use the indexes they were built for.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import sqlite

from node.clock import iso
from node.queries import ledger
from node.queries.ledger import Access, Query
from node.storage import schema as t
from node.storage.db import Database, open_database
from protocol import rules
from protocol.fold import DONE, Status

NOW = 1_800_000_000_000
HOUR = 3_600_000
DAY = 24 * HOUR
ME = "14"
# Ids chosen so that a string prefix is never subtree membership: 14010, 1401-2,
# 1401.5 and 1401A are siblings of 1401, not below it.
PARENTS: dict[str, str | None] = {
    "14": None,
    "1401": "14",
    "14010": "14",
    "1401-2": "14",
    "1401.5": "14",
    "1401A": "14",
    "1402": "14",
    "140101": "1401",
    "140102": "1401",
    "1401011": "140101",
    "140101001": "140101",
    "1401001": "14010",
    "140201": "1402",
}
NODES = tuple(PARENTS)
UNITS = ("office", "fgw", "jyj", "zjj")
BOARDS = ("daily", "key_task", "reform")
TITLES = (
    "农村人居环境整治",
    "安全生产大检查",
    "完成率100%以上",
    "a_b 下划线",
    "back\\slash 反斜杠",
    "Mixed Case 标题",
)
MOMENTS = (None, NOW - 1, NOW, NOW + 1, NOW - 3 * DAY, NOW + 2 * DAY, NOW - 40 * DAY)
ACCESSES = (Access.KEY, Access.NARROW, Access.WIDE)


def path_of(node: str) -> str:
    chain: list[str] = []
    current: str | None = node
    while current is not None:
        chain.append(current)
        current = PARENTS[current]
    return "".join(f"{n}/" for n in reversed(chain))


def make_rows(n: int = 320, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        assignee = rng.choice(NODES)
        status = rng.choice(list(Status))
        title = f"{rng.choice(TITLES)} {i}"
        lead_unit = rng.choice((*UNITS, None))
        assignee_unit = rng.choice((*UNITS, None))
        assigner = PARENTS[assignee] or assignee
        earlier = [r["item_id"] for r in rows if r["assignee"] == assigner]
        rows.append({
            "item_id": f"{assigner}-{i:06d}",
            "assigner": assigner,
            "assignee": assignee,
            "assignee_unit": assignee_unit,
            "lead_unit": lead_unit,
            "parent_item": rng.choice(earlier) if earlier and rng.random() < 0.3 else None,
            "board": rng.choice(BOARDS),
            "class": "general",
            "status": str(status),
            "title": title,
            "deploy_due": NOW - DAY,
            "feedback_due": NOW,
            "resolve_due": NOW + rng.randint(-6, 6) * DAY,
            "progress": rng.choice((0, 10, 50, 100)),
            "assigned_at": NOW - rng.randint(10, 14) * DAY,
            "updated_at": NOW - rng.randint(0, 5) * HOUR,
            "done": status in DONE,
            "state": b"{}",
            "assignee_path": path_of(assignee),
            "yellow_from": rng.choice(MOMENTS),
            "red_from": rng.choice(MOMENTS),
            "search_text": " ".join(p for p in (title, lead_unit, assignee_unit) if p).lower(),
        })
    return rows


ROWS = make_rows()
ITEMS_WITH_CHILDREN = sorted({r["parent_item"] for r in ROWS if r["parent_item"]})


def reference(query: Query, now: int) -> list[dict[str, Any]]:
    """The ledger's answer computed in Python: every matching row, in order."""
    scope_path = path_of(query.scope)

    def keep(r: dict[str, Any]) -> bool:
        colour = str(rules.colour_at(r["done"], r["yellow_from"], r["red_from"], now))
        checks = (
            r["assignee"] == query.scope
            if query.only_node
            else r["assignee_path"].startswith(scope_path),
            not query.statuses or r["status"] in query.statuses,
            not query.colours or colour in query.colours,
            not query.boards or r["board"] in query.boards,
            query.unit is None or query.unit in (r["lead_unit"], r["assignee_unit"]),
            query.overdue is None or query.overdue == (colour == "red"),
            query.due_from is None or r["resolve_due"] >= query.due_from,
            query.due_to is None or r["resolve_due"] <= query.due_to,
            query.q is None or query.q in r["search_text"],
            query.assigner is None or r["assigner"] == query.assigner,
            query.assignee is None or r["assignee"] == query.assignee,
            query.parent_item is None or r["parent_item"] == query.parent_item,
        )
        return all(checks)

    column = ledger.SORTS[query.sort].name
    out = sorted((r for r in ROWS if keep(r)), key=lambda r: r["item_id"])
    out.sort(key=lambda r: r[column], reverse=query.descending)  # stable: ties by id
    return out


def parse(params: dict[str, str]) -> Query:
    return ledger.parse_query(params, ME, ledger.known_boards(""))


async def _filled(url: str) -> Database:
    database = await open_database(url, create=True)
    async with database.write() as conn:
        await conn.execute(t.items.insert(), ROWS)
    return database


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    async with await _filled(db_url) as database:
        yield database


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    async with await _filled(f"sqlite+aiosqlite:///{tmp_path / 'node.db'}") as database:
        yield database


def accesses(db: Database) -> tuple[Access, ...]:
    """PostgreSQL ignores the access path (its planner has statistics): one is enough."""
    return ACCESSES if db.dialect == "sqlite" else (Access.WIDE,)


async def page(
    db: Database, query: Query, access: Access, *, now: int = NOW, cap: int = ledger.COUNT_CAP
) -> tuple[list[str], int, bool]:
    plan = ledger.statements(
        query, path_of(query.scope), now, access=access, dialect=db.dialect, count_cap=cap
    )
    async with db.read() as conn:
        rows = (await conn.execute(plan.rows)).all()
        counted = await conn.scalar(plan.count) if plan.needs_count(len(rows)) else None
    total, exact = plan.total(len(rows), counted)
    return [r.item_id for r in rows], total, exact


async def check(
    db: Database, params: dict[str, str], *, now: int = NOW, cap: int = ledger.COUNT_CAP
) -> list[str]:
    """The page of ``params`` is the reference's, by every access path; returns all ids."""
    query = parse(params)
    expected = [r["item_id"] for r in reference(query, now)]
    window = expected[query.offset : query.offset + query.limit]
    limit = max(cap, query.offset + query.limit)
    for access in accesses(db):
        ids, total, exact = await page(db, query, access, now=now, cap=cap)
        assert ids == window, (params, access)
        assert (total, exact) == (min(len(expected), limit + 1), len(expected) <= limit), (
            params, access, len(expected),
        )
    return expected


SINGLE_FILTERS: list[dict[str, str]] = [
    {},
    *({"scope": n} for n in NODES),
    *({"scope": n, "depth": "node"} for n in ("14", "1401", "14010", "140101001")),
    *({"status": str(s)} for s in Status),
    {"status": "assigned,reporting"},
    {"status": "accepted,closed,withdrawn"},
    {"status": "reporting,closed"},
    *({"colour": c} for c in ledger.COLOURS),
    {"colour": "yellow,red"},
    {"colour": "green,yellow,red"},
    {"colour": "grey,red"},
    *({"board": b} for b in BOARDS),
    {"board": "daily,reform"},
    {"board": "investment"},
    *({"unit": u} for u in (*UNITS, "nobody")),
    {"overdue": "true"},
    {"overdue": "false"},
    {"overdue": "1"},
    {"due_from": iso(NOW + DAY) or ""},
    {"due_to": iso(NOW - 2 * DAY) or ""},
    {"due_from": iso(NOW - DAY) or "", "due_to": iso(NOW + DAY) or ""},
    *({"q": w} for w in ("安全", "100%", "a_b", "_", "%", "back\\slash", "MIXED case", "无此词")),
    *({"assigner": n} for n in ("14", "1401", "140101")),
    *({"assignee": n} for n in ("1401", "1401011")),
    *({"parent_item": i} for i in ITEMS_WITH_CHILDREN[:4]),
    {"parent_item": "14-999999"},
]


async def test_every_filter_alone(db: Database) -> None:
    for params in SINGLE_FILTERS:
        everything = await check(db, {**params, "limit": "200"})
        if params.get("q") == "无此词" or params.get("unit") == "nobody":
            assert everything == []
        elif params.get("board") != "investment" and "14-999999" not in params.values():
            assert everything, params  # the data exercises the filter


async def test_random_combinations_sorts_and_pages(db: Database) -> None:
    rng = random.Random(11)
    choices: dict[str, list[str]] = {
        "scope": list(NODES),
        "depth": ["subtree", "node"],
        "status": ["assigned", "reporting,planned", "closed,withdrawn", "resolved,accepted"],
        "colour": ["red", "yellow", "green", "grey", "yellow,red", "green,grey"],
        "board": ["daily", "key_task,reform"],
        "unit": list(UNITS),
        "overdue": ["true", "false"],
        "due_from": [iso(NOW - 2 * DAY) or ""],
        "due_to": [iso(NOW + 3 * DAY) or ""],
        "q": ["安全", "a_b", "100%", " 1"],
        "assigner": ["14", "1401"],
    }
    sorts = [s for name in ledger.SORTS for s in (name, f"-{name}")]
    nonempty = 0
    for _ in range(120):
        params = {k: rng.choice(v) for k, v in choices.items() if rng.random() < 0.25}
        params["sort"] = rng.choice(sorts)
        params["limit"] = str(rng.choice((1, 5, 20, 200)))
        params["offset"] = str(rng.choice((0, 0, 3, 40)))
        nonempty += bool(await check(db, params, cap=rng.choice((ledger.COUNT_CAP, 0, 4, 30))))
    assert nonempty > 40  # the combinations are not all trivially empty


async def test_scope_never_leaks_into_a_sibling(db: Database) -> None:
    query = parse({"scope": "1401", "limit": "200"})
    for access in accesses(db):
        ids, total, exact = await page(db, query, access)
        assignees = {r["assignee"] for r in ROWS if r["item_id"] in ids}
        assert assignees == {"1401", "140101", "140102", "1401011", "140101001"}, access
        assert exact and total == len(ids)


@pytest.mark.parametrize("now", [NOW - 1, NOW, NOW + 1, NOW + 3 * DAY])
async def test_colours_agree_with_colour_at(db: Database, now: int) -> None:
    seen: set[str] = set()
    for colour in ledger.COLOURS:
        ids = await check(db, {"colour": colour, "limit": "200"}, now=now)
        for r in ROWS:
            actual = rules.colour_at(r["done"], r["yellow_from"], r["red_from"], now)
            assert (r["item_id"] in ids) == (str(actual) == colour), (r, colour)
        seen |= {colour} if ids else set()
    assert seen == set(ledger.COLOURS)  # every colour occurs in the data
    red = await check(db, {"colour": "red", "limit": "200"}, now=now)
    assert await check(db, {"overdue": "true", "limit": "200"}, now=now) == red


@pytest.mark.parametrize("sort", ["resolve_due", "-resolve_due", "-progress", "updated_at", "id"])
async def test_paging_is_stable(db: Database, sort: str) -> None:
    """Pages of 7 concatenate to the whole ordered list: nothing repeated, nothing lost."""
    for scope in ("14", "1401"):
        whole = [r["item_id"] for r in reference(parse({"scope": scope, "sort": sort}), NOW)]
        for access in accesses(db):
            joined: list[str] = []
            for offset in range(0, len(whole) + 7, 7):
                query = parse({"scope": scope, "sort": sort, "limit": "7", "offset": str(offset)})
                joined += (await page(db, query, access))[0]
            assert joined == whole, (scope, sort, access)


async def test_total_is_a_lower_bound_past_the_cap(db: Database) -> None:
    everything = len(ROWS)
    for access in accesses(db):
        assert await page(db, parse({"limit": "10"}), access, cap=25) == (
            [r["item_id"] for r in reference(parse({}), NOW)][:10], 26, False,
        )
        # Deep pages count at least past themselves, so a next page shows.
        _, total, exact = await page(db, parse({"limit": "10", "offset": "100"}), access, cap=25)
        assert (total, exact) == (111, False)
        # A short page tells the exact total without counting; so does a large cap.
        _, total, exact = await page(db, parse({"limit": "10", "offset": "315"}), access, cap=25)
        assert (total, exact) == (everything, True)
        _, total, exact = await page(db, parse({"limit": "10"}), access, cap=1000)
        assert (total, exact) == (everything, True)
        # Past the end: an empty page, and a count up to past that page: exact.
        ids, total, exact = await page(db, parse({"offset": "400"}), access, cap=25)
        assert (ids, total, exact) == ([], everything, True)


async def test_fetch_page_chooses_the_access_path(db: Database) -> None:
    cases = [
        ({}, Access.WIDE),  # the node's own subtree: the whole mirror
        ({"scope": "1401"}, Access.NARROW),  # few items: its path range
        ({"scope": "1401", "depth": "node"}, Access.KEY),
        ({"assignee": "140101"}, Access.KEY),
        ({"parent_item": ITEMS_WITH_CHILDREN[0]}, Access.KEY),
    ]
    for params, expected in cases:
        query = parse(params)
        async with db.read() as conn:
            got = await ledger.fetch_page(
                conn, query, path_of(query.scope), NOW, me=ME, dialect=db.dialect
            )
        if db.dialect == "sqlite":
            assert got.access is expected, params
        want = reference(query, NOW)
        assert [r.item_id for r in got.rows] == [r["item_id"] for r in want[:50]]
        assert (got.total, got.total_exact) == (len(want), True)
    assert ledger.access_for(parse({"scope": "1401"}), ME, ledger.WIDE_SCOPE) is Access.WIDE
    assert ledger.access_for(parse({"scope": "1401"}), ME, ledger.WIDE_SCOPE - 1) is Access.NARROW


PLANS = [
    ({}, Access.WIDE, "ix_items_due"),
    ({"colour": "red"}, Access.WIDE, "ix_items_open"),
    ({"status": "reporting,planned"}, Access.WIDE, "ix_items_open"),
    ({"overdue": "true", "board": "key_task"}, Access.WIDE, "ix_items_open"),
    ({"due_from": iso(NOW) or "", "due_to": iso(NOW + DAY) or ""}, Access.WIDE, "ix_items_due"),
    ({"unit": "fgw"}, Access.WIDE, "ix_items_due"),
    ({"sort": "-updated_at"}, Access.WIDE, "ix_items_updated"),
    ({"sort": "assigned_at", "status": "assigned"}, Access.WIDE, "ix_items_assigned"),
    ({"sort": "progress"}, Access.WIDE, "ix_items_progress"),
    ({"scope": "1401", "status": "reporting"}, Access.NARROW, "ix_items_path"),
    ({"scope": "1401", "colour": "red"}, Access.NARROW, "ix_items_path"),
    ({"scope": "1401", "depth": "node"}, Access.KEY, "ix_items_assignee"),
    ({"parent_item": "14-000001"}, Access.KEY, "ix_items_parent"),
]


@pytest.mark.parametrize(("params", "access", "index"), PLANS, ids=str)
async def test_sqlite_plans_use_their_index(
    sqlite_db: Database, params: dict[str, str], access: Access, index: str
) -> None:
    """Without statistics SQLite must still take the index each access path is for,
    the page's ids from the index alone (no full-row sort, no table scan).
    (PostgreSQL plans with its statistics: nothing to pin there.)"""
    db = sqlite_db
    query = parse(params)
    plan = ledger.statements(query, path_of(query.scope), NOW, access=access)
    for name, stmt in (("rows", plan.rows), ("count", plan.count)):
        compiled = stmt.compile(
            dialect=sqlite.dialect(),
            compile_kwargs={"literal_binds": True, "render_postcompile": True},
        )
        async with db.read() as conn:
            steps = [r[3] for r in await conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))]
        joined = " | ".join(steps)
        assert f"INDEX {index}" in joined, (name, steps)
        assert not any(s == "SCAN items" for s in steps), (name, steps)
        if index != "ix_items_parent" and name == "rows":
            assert f"COVERING INDEX {index}" in joined, (name, steps)
