"""How fast the tree page and the command board answer on a province mirror of a
million items, and whether they show the same figures as before.

The node is ``bench/ledger.py``'s: a real province root ("14") knowing every
node of a generated province (1,552 nodes), a supervisor, and freshness rows.
Unlike the ledger, the board's quarter ranking replays item *events*, so this
database holds real ones: each item gets a signed history (assigned, deployed,
feedback, plan, resolved, returned, accepted, closed, withdrawn; a few deadline
extensions, unit changes and clock-skewed steps) with ``bench/ledger.py``'s
shares of status, class, board, level and units, and its row is
``node.items.projection.row_of`` of the fold of those events. Events and rows are written
with ``sqlite3`` in big transactions (the benchmark measures pages, not
ingestion); then the page aggregates are built by the same function the
schema migration runs, and every item is scored as the node's keeper would.

Then the node's real HTTP server starts and each page is fetched, signed in
(the sign-in form, a session cookie), sequentially: ``/tree`` and ``/board`` at
the province and at a city. Beside them, in the same run, the statements and
the event replay the pages ran before this change (kept below as
``before_*``) are timed in process, and every figure of both is compared.
Never fails on a time. docs/performance.md ("Pages on a million items") has
figures.

Run: python bench/pages.py [--items 1000000] [--runs 50] [--keep DIR | --reuse DIR]
     python bench/pages.py --reuse DIR --now 2027-01-15   (a later instant: colours move)
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/protocol.py is named like the package: keep bench/ off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import asyncio
import hashlib
import importlib.util
import logging
import platform
import random
import re
import shutil
import sqlite3
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import aiohttp
from sqlalchemy.engine import make_url

from hierarchy.synthetic import generate_tree
from hierarchy.tree import Tree
from node import config as cfg
from node.clock import ManualClock
from node.context import open_node
from node.items.projection import row_of
from node.storage.events import MATERIALISED
from protocol import codec, envelope
from protocol.events import (
    Assigned,
    Closed,
    Deadlines,
    Deployed,
    Event,
    Feedback,
    Milestone,
    PlanDecided,
    PlanSubmitted,
    Resolved,
    Reviewed,
    Updated,
    Withdrawn,
    encode_event,
    make_item_id,
)
from protocol.fold import fold
from protocol.keys import SigningKey
from protocol.rules import CHINA_TZ as CHINA


def _load_ledger_bench() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_ledger", Path(__file__).with_name("ledger.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


L = _load_ledger_bench()
PROVINCE = L.PROVINCE
NOW = L.NOW
DAY = L.DAY
HOUR = L.HOUR
CHUNK = 20_000
SKEWED = 0.002  # share of items whose handler's clock runs behind (steps dated early)
UPDATED = 0.02  # share of items whose assigner extends the deadline or changes the unit

# ------------------------------------------------------------------ histories


class Signer:
    """Per-origin sequences and one Lamport clock; events are signed in batches."""

    def __init__(self, keys: dict[str, SigningKey]) -> None:
        self.keys = keys
        self.seqs: Counter[str] = Counter()
        self.lamport = 0
        self.pending: dict[str, list[tuple[Event, tuple[str, bytes]]]] = defaultdict(list)

    def next_seq(self, origin: str) -> int:
        self.seqs[origin] += 1
        return self.seqs[origin]

    def make(self, cls: type, **fields: Any) -> Event:
        origin = str(fields["origin"])
        if "seq" not in fields:
            fields["seq"] = self.next_seq(origin)
        self.lamport += 1
        event: Event = cls(lamport=self.lamport, **fields)
        self.pending[origin].append((event, encode_event(event)))
        return event

    def flush(self) -> list[tuple[Event, bytes]]:
        """(event, envelope bytes) of everything made since the last flush."""
        out: list[tuple[Event, bytes]] = []
        for origin, made in self.pending.items():
            for i in range(0, len(made), 256):
                part = made[i : i + 256]
                envs = envelope.sign_batch(self.keys[origin], [m[1] for m in part])
                out.extend((m[0], env.raw) for m, env in zip(part, envs, strict=True))
        self.pending.clear()
        return out


def _gaps(rng: random.Random, means: Sequence[float], span: float) -> list[int]:
    """Increasing offsets from the assignment, one per step, squeezed into ``span``."""
    steps = [rng.expovariate(1 / m) + 60_000 for m in means]
    total = sum(steps)
    if total > span:
        steps = [s * span / total for s in steps]
    out, t = [], 0.0
    for s in steps:
        t += max(s, 1_000)
        out.append(int(t))
    return out


def item_history(
    rng: random.Random, signer: Signer, tree: Tree, by_level: dict[str, list[str]]
) -> list[Event]:
    """One item's events, in the order its parties made them."""
    status = L.pick(L.STATUSES, rng)
    cls = L.pick(L.CLASSES, rng)
    levels = [(L.LEVEL_SHARE[level], level) for level in by_level]
    assignee = rng.choice(by_level[L.pick(levels, rng)])
    parent = tree.parent(assignee)
    assigner = parent if parent is not None and rng.random() < 0.9 else assignee
    if status in L.DONE:
        age = rng.uniform(10, 3 * 365) * DAY
    elif status == "assigned":
        age = rng.expovariate(1 / (0.6 * DAY))
    elif status == "deployed":
        age = rng.expovariate(1 / (2 * DAY))
    else:
        age = rng.expovariate(1 / ((4 if cls == "general" else 18) * DAY))
    t0 = NOW - int(age) - 600_000
    if cls == "general":
        resolve = t0 + 7 * DAY
    elif cls == "major":
        resolve = t0 + 30 * DAY
    else:
        resolve = t0 + rng.randint(8, 180) * DAY
    deadlines = Deadlines(
        deploy=min(t0 + DAY, resolve), feedback=min(t0 + 3 * DAY, resolve), resolve=resolve
    )
    lead_unit = rng.choice(L.UNITS) if rng.random() < 0.8 else None
    assignee_unit = rng.choice(L.UNITS) if rng.random() < 0.5 or assigner == assignee else None
    seq = signer.next_seq(assigner)
    item = make_item_id(assigner, seq)
    topic = L.RARE_TOPIC if rng.random() < 0.0005 else rng.choice(L.TOPICS)
    events: list[Event] = [
        signer.make(
            Assigned, item=item, origin=assigner, seq=seq, at=t0, to=assignee,
            title=f"{rng.choice(L.VERBS)}{topic}{rng.choice(L.SUFFIXES)}",
            description="".join(rng.choice(L.SENTENCES) for _ in range(rng.randint(1, 3))),
            board=L.pick(L.BOARDS, rng), source="plenary", item_class=cls,
            assigner=assigner, assignee=assignee, assignee_unit=assignee_unit,
            lead_unit=lead_unit, co_units=tuple(rng.sample(L.UNITS, rng.randint(0, 2))),
            calendar="natural", deadlines=deadlines,
        )
    ]
    up = {"item": item, "origin": assigner, "to": assignee}
    down = {"item": item, "origin": assignee, "to": assigner}
    # The steps each status needs, with mean gaps (ms) between them.
    plan = status == "planned"
    steps: list[tuple[str, float]] = []
    if status not in ("assigned", "withdrawn"):
        steps.append(("deploy", 8 * HOUR))
    if status in ("reporting", "planned", "resolved", "returned", "accepted", "closed"):
        steps += [("feedback", 1.5 * DAY)] + [("feedback", 2 * DAY)] * rng.randint(0, 2)
    if plan:
        steps += [("plan", DAY), ("decide", DAY)]
    returns = 1 if status == "returned" or (status in ("accepted", "closed")
                                            and rng.random() < 0.1) else 0
    if status in ("resolved", "returned", "accepted", "closed"):
        steps.append(("resolve", (3 if cls == "general" else 12) * DAY))
        for _ in range(returns):
            steps.append(("return", DAY))
            if status != "returned":
                steps.append(("resolve", 2 * DAY))
        if status in ("accepted", "closed"):
            steps.append(("accept", DAY))
        if status == "closed":
            steps.append(("close", 2 * DAY))
    if status == "withdrawn":
        if rng.random() < 0.5:
            steps.append(("deploy", 8 * HOUR))
        steps.append(("withdraw", 3 * DAY))
    if rng.random() < UPDATED and status not in ("accepted", "closed", "withdrawn"):
        steps.insert(rng.randint(0, len(steps)), ("update", 2 * DAY))
    span = (min(60 * DAY, age) if status in L.DONE else age) - 60_000
    offsets = _gaps(rng, [m for _, m in steps], max(span, 10_000))
    skew = -rng.randint(1, 6) * HOUR if rng.random() < SKEWED else 0
    progress = 0
    for (step, _), offset in zip(steps, offsets, strict=True):
        at = t0 + offset
        mine = at + skew if skew and at + skew > t0 else at
        if step == "deploy":
            events.append(signer.make(Deployed, **down, at=mine, note="已研究部署"))
        elif step == "feedback":
            progress = min(90, progress + rng.randint(10, 40))
            events.append(signer.make(
                Feedback, **down, at=mine, text=rng.choice(L.SENTENCES), progress=progress,
                attachments=(),
            ))
        elif step == "plan":
            milestones = (Milestone(title="完成方案", due=at + 20 * DAY),
                          Milestone(title="全面完成", due=at + 90 * DAY))
            events.append(signer.make(PlanSubmitted, **down, at=mine, milestones=milestones,
                                      note="分阶段推进"))
        elif step == "decide":
            events.append(signer.make(PlanDecided, **up, at=at, approved=True, reason=""))
        elif step == "resolve":
            events.append(signer.make(Resolved, **down, at=mine, text="已落实解决",
                                      attachments=()))
        elif step == "return":
            events.append(signer.make(Reviewed, **up, at=at, outcome="return",
                                      reason="材料不全，请补充"))
        elif step == "accept":
            events.append(signer.make(Reviewed, **up, at=at, outcome="accept", reason=""))
        elif step == "close":
            events.append(signer.make(Closed, **up, at=at, note="销号"))
        elif step == "withdraw":
            events.append(signer.make(Withdrawn, **up, at=at, reason="任务调整"))
        elif step == "update":
            if rng.random() < 0.5:
                events.append(signer.make(
                    Updated, **up, at=at,
                    deadlines=Deadlines(deploy=deadlines.deploy, feedback=deadlines.feedback,
                                        resolve=deadlines.resolve + 14 * DAY),
                ))
            else:
                events.append(signer.make(Updated, **up, at=at,
                                          assignee_unit=rng.choice(L.UNITS)))
    return events


EVENT_COLUMNS = (
    "event_id", "type", "origin", "origin_seq", "lamport", "item_id", "to_node", "source",
    "received_at", "raw",
)


def fill(db_file: Path, tree: Tree, keys: dict[str, SigningKey], n: int, seed: int) -> None:
    """Write ``n`` items with their events; the items indexes are built after the fill."""
    start = time.perf_counter()
    rng = random.Random(seed)
    signer = Signer(keys)
    paths = {node.id: "".join(f"{p}/" for p in tree.path_from_root(node.id)) for node in tree}
    by_level: dict[str, list[str]] = {}
    for node in tree:
        by_level.setdefault(node.level, []).append(node.id)
    statuses: Counter[str] = Counter()
    events_written = 0
    with L.bulk_load(db_file, ("items", "events")) as con:
        item_sql = None
        event_sql = (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
                     f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})")
        done = 0
        while done < n:
            histories = [item_history(rng, signer, tree, by_level)
                         for _ in range(min(CHUNK, n - done))]
            raw_of = {id(ev): raw for ev, raw in signer.flush()}
            event_rows, item_rows = [], []
            for history in histories:
                pairs = []
                for ev in history:
                    raw = raw_of[id(ev)]
                    digest = hashlib.sha256(raw).digest()
                    pairs.append((digest.hex(), ev))
                    event_rows.append((
                        digest, ev.TYPE, ev.origin, ev.seq, ev.lamport, ev.item, ev.to,
                        "bench", ev.at + 5_000, raw,
                    ))
                row = row_of(fold(pairs), paths.__getitem__)
                statuses[row["status"]] += 1
                if item_sql is None:
                    columns = list(row)
                    item_sql = (f"INSERT INTO items ({', '.join(columns)}) "
                                f"VALUES ({', '.join('?' * len(columns))})")
                item_rows.append(tuple(row[c] for c in columns))
            con.execute("BEGIN")
            con.executemany(event_sql, event_rows)
            con.executemany(item_sql, item_rows)
            con.execute("COMMIT")
            done += len(histories)
            events_written += len(event_rows)
            rate = done / (time.perf_counter() - start)
            L.progress(f"fill: {done:,}/{n:,} items, {events_written:,} events "
                       f"({rate:,.0f} items/s)")
        mark_folded(con)
    share = ", ".join(f"{s} {v / n:.1%}" for s, v in statuses.most_common())
    L.progress(f"fill: {n:,} items, {events_written:,} events in "
               f"{time.perf_counter() - start:.0f} s; {share}")
    print(file=sys.stderr)


def mark_folded(con: sqlite3.Connection) -> None:
    """Every event written is folded into its row: move the node's materialiser cursor
    past them (else the running node would fold them all again)."""
    top = con.execute("SELECT max(pos) FROM events").fetchone()[0] or 0
    con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (MATERIALISED, codec.encode(top)))


async def province_key(data: Path) -> SigningKey:
    ctx = await open_node(cfg.load(data), ManualClock(NOW))
    try:
        return ctx.key
    finally:
        await ctx.close()


# ------------------------------------------------------------------ the page tallies


def build_tallies(data: Path, db_file: Path) -> None:
    """Bring the node to the schema's head and its tallies up to date, timed: a node
    filled at an older revision is migrated (the upgrade builds the tallies), one
    filled at the head gets them built; then every item is scored."""
    from sqlalchemy import create_engine

    from node.items import tallies
    from node.queries import standings
    from node.storage.db import head_revision, migrate

    with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as con:
        revision = con.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        # Built when every item has its facts row: a node made at the head has its
        # marks from the start, but fill() writes item rows past the tallies.
        built = con.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'item_facts'"
        ).fetchone()[0] and con.execute(
            "SELECT (SELECT count(*) FROM item_facts) = (SELECT count(*) FROM items)"
        ).fetchone()[0]
    start = time.perf_counter()
    if revision != head_revision():
        asyncio.run(migrate(str(cfg.load(data).database_url)))
        print(f"schema {revision} -> {head_revision()} (builds the tallies): "
              f"{time.perf_counter() - start:.0f} s")
    elif not built:
        engine = create_engine(f"sqlite:///{db_file}")
        with engine.begin() as conn:
            tallies.rebuild(conn, NOW)
        engine.dispose()
        print(f"tallies built from the rows: {time.perf_counter() - start:.0f} s")

    async def score() -> int:
        ctx = await open_node(cfg.load(data), ManualClock(NOW))
        try:
            return await standings.score_all(ctx.db)
        finally:
            await ctx.close()

    start = time.perf_counter()
    scored = asyncio.run(score())
    if scored:
        print(f"scored {scored:,} items from their events: {time.perf_counter() - start:.0f} s "
              f"({scored / (time.perf_counter() - start):,.0f} items/s)")


def keep_up(data: Path, now: int) -> None:
    """What the running node's keeper does first: the watermark to ``now``, the ranking
    to its quarter (the pages are right without it, and read more)."""
    from node.queries import keeper

    async def step() -> None:
        ctx = await open_node(cfg.load(data), ManualClock(now))
        try:
            await keeper.TallyKeeper(ctx.db, ctx.clock, ctx.activity).step()
        finally:
            await ctx.close()

    asyncio.run(step())


# ------------------------------------------------------------------ before: as the pages were
# The statements and the replay the tree and the board ran before the tallies (figures.py
# at c307b48), kept here to time them and to compare every figure.


def _before_sum(condition: Any) -> Any:
    from sqlalchemy import case, func

    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _before_met(ctx: Any) -> Any:
    from sqlalchemy import Integer, Text, cast, func

    from node.storage import schema as t

    value = func.json_extract(cast(t.items.c.state, Text), "$.deadlines.resolve.met")
    return cast(value, Integer) == 1


async def before_tree(ctx: Any, top: str, now: int) -> dict[str, tuple[int, int, int, int]]:
    from sqlalchemy import select

    from node.queries import ledger
    from node.storage import schema as t

    c = t.items.c
    query = ledger.parse_query({"scope": top}, ctx.me, ())
    scope = ledger.where_clauses(query, ctx.tree.path_of(top), now)
    stmt = select(
        c.assignee, _before_sum(c.done.is_(False)), _before_sum(ledger.colour_clause("red", now)),
        _before_sum(ledger.colour_clause("yellow", now)),
        _before_sum(c.status.in_(("accepted", "closed"))),
    ).where(*scope).group_by(c.assignee)
    async with ctx.db.read() as conn:
        rows = (await conn.execute(stmt)).all()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}


async def before_board(
    ctx: Any, top: str, children: list[str], start: int, end: int, weeks: list[int], now: int
) -> dict[str, Any]:
    from sqlalchemy import and_, case, func, or_, select

    from node.queries import ledger
    from node.storage import schema as t

    c = t.items.c
    query = ledger.parse_query({"scope": top}, ctx.me, ())
    scope = ledger.where_clauses(query, ctx.tree.path_of(top), now)
    whens = []
    for child in children:
        path = ctx.tree.path_of(child)
        whens.append((and_(c.assignee_path >= path, c.assignee_path < path[:-1] + "0"), child))
    bucket = (case(*whens, else_=top) if whens else c.assignee).label("bucket")
    resolved = c.status.in_(("resolved", "accepted", "closed"))
    red = ledger.colour_clause("red", now)
    out: dict[str, Any] = {"by_node": {}, "by_board": {}, "open_now": 0, "overdue_now": 0}
    async with ctx.db.read() as conn:
        rows = (await conn.execute(
            select(bucket, c.board, func.count(), _before_sum(c.status.in_(("accepted", "closed"))),
                   _before_sum(or_(resolved, c.resolve_due <= now)),
                   _before_sum(and_(resolved, _before_met(ctx))), _before_sum(red))
            .where(*scope, c.resolve_due >= start, c.resolve_due < end, c.status != "withdrawn")
            .group_by(bucket, c.board)
        )).all()
        for r in rows:
            for table, key in ((out["by_node"], r[0]), (out["by_board"], r[1])):
                slot = table.setdefault(key, [0, 0, 0, 0])
                for k in range(4):
                    slot[k] += int(r[2 + k])
        rows = (await conn.execute(
            select(bucket, _before_sum(red), func.count())
            .where(*scope, c.done.is_(False)).group_by(bucket)
        )).all()
        for r in rows:
            out["overdue_now"] += int(r[1])
            out["open_now"] += int(r[2])
        first = weeks[0]
        week = 7 * DAY
        assigned = {int(r[0]): int(r[1]) for r in await conn.execute(
            select(((c.assigned_at - first) // week).label("w"), func.count())
            .where(*scope, c.assigned_at >= first).group_by("w"))}
        done = {int(r[0]): (int(r[1]), int(r[2])) for r in await conn.execute(
            select(((c.updated_at - first) // week).label("w"), func.count(),
                   _before_sum(~_before_met(ctx)))
            .where(*scope, c.status.in_(("accepted", "closed")), c.updated_at >= first)
            .group_by("w"))}
    out["weeks"] = [(s, assigned.get(i, 0), *done.get(i, (0, 0))) for i, s in enumerate(weeks)]
    return out


def after_board_as_before(fig: Any) -> dict[str, Any]:
    def rates(table: dict[str, Any]) -> dict[str, list[int]]:
        return {k: [r.items, r.done, r.judged, r.on_time] for k, r in table.items()}

    return {"by_node": rates(fig.by_node), "by_board": rates(fig.by_board),
            "open_now": fig.open_now, "overdue_now": sum(fig.overdue_now.values()),
            "weeks": fig.weeks}


def red_units_before(colours: dict[str, Any]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    by_node: dict[str, int] = {}
    for u in colours["units"]:
        if u["red"]:
            out[(u["node"], u["unit"])] = u["red"]
        by_node[u["node"]] = by_node.get(u["node"], 0) + u["red"]
    for n in colours["nodes"]:
        if n["red"] - by_node.get(n["node"], 0) > 0:
            out[(n["node"], "")] = n["red"] - by_node.get(n["node"], 0)
    return out


# ------------------------------------------------------------------ measuring


async def sign_in(session: aiohttp.ClientSession, url: str) -> None:
    """The sign-in form, as a person uses it: its CSRF token, then the session cookie."""
    async with session.get(f"{url}/login") as resp:
        form = await resp.text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    if token is None:
        raise SystemExit("no sign-in form")
    async with session.post(
        f"{url}/login", data={"name": "bench", "password": "bench-password",
                              "csrf_token": token[1], "next": "/tree"},
        allow_redirects=False,
    ) as resp:
        if resp.status != 303:
            raise SystemExit(f"sign-in: {resp.status} {(await resp.text())[:300]}")


def pages_of(tree: Tree) -> list[tuple[str, str]]:
    city = tree.children(PROVINCE)[4]
    return [
        ("/tree (province)", "/tree"),
        (f"/tree?node={city} (city)", f"/tree?node={city}"),
        ("/board (province)", "/board"),
        (f"/board?node={city} (city)", f"/board?node={city}"),
    ]


def p50_p95(samples: list[float]) -> tuple[float, float]:
    p50, p95, _ = L.percentiles(samples)
    return p50, p95


async def timed(fn: Callable[[], Any], runs: int, budget: float) -> tuple[list[float], Any]:
    """``runs`` timings in ms after 3 warm-up calls (at least 20 unless ``runs`` is less,
    stopping after ``budget`` seconds)."""
    for _ in range(min(3, runs)):
        result = await fn()
    samples: list[float] = []
    end = time.perf_counter() + budget
    while len(samples) < runs and (len(samples) < min(20, runs) or time.perf_counter() < end):
        start = time.perf_counter()
        result = await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples, result


async def http_pages(
    data: Path, tree: Tree, now: int, runs: int, budget: float, board_runs: int | None = None,
    only: Sequence[str] = (),
) -> list[tuple[str, list[float], str]]:
    """Each page over HTTP, signed in: (label, times in ms, the last page's HTML)."""
    node = L.RunningNode(PROVINCE, data, cfg.load(data), ManualClock(now))
    await node.start()
    out = []
    try:
        async with aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=None),  # the board before took minutes
        ) as session:
            await sign_in(session, node.url)
            for label, path in pages_of(tree):
                if only and not any(path.startswith(p) for p in only):
                    continue
                async def get(path: str = path) -> str:
                    async with session.get(node.url + path, allow_redirects=False) as resp:
                        html = await resp.text()
                        if resp.status != 200:
                            raise SystemExit(f"{path}: {resp.status} {html[:300]}")
                        return html

                n = runs if board_runs is None or not path.startswith("/board") else board_runs
                samples, html = await timed(get, n, budget)
                out.append((label, samples, html))
                p50, p95 = p50_p95(samples)
                L.progress(f"{label}: p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    finally:
        await node.stop()
    print(file=sys.stderr)
    return out


def kpis(html: str) -> dict[str, str]:
    return dict(re.findall(r'<b id="kpi-([a-z-]+)">([^<]*)</b>', html))


async def in_process(
    data: Path, tree: Tree, now: int, runs: int, before_runs: int, budget: float,
    replay: bool,
) -> list[tuple[str, list[float], list[float]]]:
    """The figures of each page in process, after and before, and every figure compared."""
    from node.http.web.board import overdue_by_unit
    from node.queries import assemble, figures, standings
    from node.queries.ledger import boards_of
    from node.queries.periods import Quarter, Week

    ctx = await open_node(cfg.load(data), ManualClock(now))
    out = []
    try:
        quarter = Quarter.of(now)
        weeks = [Week.of(now)]
        for _ in range(11):
            weeks.insert(0, weeks[0].previous())
        starts = [w.start for w in weeks]
        rules = assemble.score_rules(ctx.config)
        reports = assemble.Reports(
            ctx.db, ctx.clock, ctx.tree, ctx.accounts, rules, boards_of(ctx.config)
        )
        pages = figures.Figures(ctx.db, ctx.clock, ctx.tree)
        names = await reports.names()
        for top in (PROVINCE, tree.children(PROVINCE)[4]):
            kind = "province" if top == PROVINCE else "city"
            children = list(tree.children(top))

            async def tree_after(top: str = top) -> Any:
                return await pages.counts_by_node(top)

            async def tree_before(top: str = top) -> Any:
                return await before_tree(ctx, top, now)

            after_ms, got = await timed(tree_after, runs, budget)
            before_ms, want = await timed(tree_before, before_runs, budget)
            got = {n: (c.open, c.overdue, c.yellow, c.done) for n, c in got.items()
                   if (c.open, c.overdue, c.yellow, c.done) != (0, 0, 0, 0)}
            want = {n: v for n, v in want.items() if v != (0, 0, 0, 0)}
            assert got == want, f"tree counts differ at {top}"
            out.append((f"tree counts ({kind})", after_ms, before_ms))

            async def board_after(top: str = top, children: list[str] = children) -> Any:
                return await pages.board(top, children, quarter, starts)

            async def board_before(top: str = top, children: list[str] = children) -> Any:
                return await before_board(ctx, top, children, quarter.start, quarter.end,
                                          starts, now)

            after_ms, fig = await timed(board_after, runs, budget)
            before_ms, old = await timed(board_before, before_runs, budget)
            assert after_board_as_before(fig) == old, f"board figures differ at {top}"
            out.append((f"board rates, open, trend ({kind})", after_ms, before_ms))

            async def colours_before(top: str = top) -> Any:
                return await reports.colour_counts({"scope": top})

            before_ms, colours = await timed(colours_before, before_runs, budget)
            assert overdue_by_unit(fig.red_by_unit, names) == \
                overdue_by_unit(red_units_before(colours), names), f"overdue by unit at {top}"
            out.append((f"overdue by unit ({kind})", [0.0], before_ms))

            async def ranking_after(top: str = top) -> Any:
                return await standings.standings(
                    ctx.db, ctx.clock.now_ms(), ctx.tree.path_of(top), quarter, rules,
                    limit=20,  # as the board asks
                )

            after_ms, ranked = await timed(ranking_after, runs, budget)
            assert isinstance(ranked, standings.QuarterScores), ranked
            whole = await standings.standings(
                ctx.db, ctx.clock.now_ms(), ctx.tree.path_of(top), quarter, rules)
            assert isinstance(whole, standings.QuarterScores), whole
            assert ranked.nodes == whole.nodes[:20] and ranked.units == whole.units[:20]
            before_ms: list[float] = []
            if replay:
                start = time.perf_counter()
                reference = await reports.quarter_scores(scope=top, quarter=quarter.code)
                before_ms = [(time.perf_counter() - start) * 1000]
                for entries in (reference["nodes"], reference["units"]):
                    for entry in entries:
                        del entry["lines"]
                mine = assemble.standings_of(whole, names)
                assert mine["nodes"] == reference["nodes"], f"node ranking differs at {top}"
                assert mine["units"] == reference["units"], f"unit ranking differs at {top}"
            out.append((f"quarter ranking ({kind}, {len(whole.nodes)} nodes, "
                        f"{len(whole.units):,} units)", after_ms, before_ms))
    finally:
        await ctx.close()
    return out


async def write_cost(data: Path, n: int) -> tuple[float, float]:
    """Rows per second rewriting ``n`` existing item rows, 500 per write transaction as
    the materialiser writes them: with the tallies kept (``write_rows``), and the plain
    delete and insert it did before, alternating chunks in the same run. Each row comes
    back changed as an event changes it (a week later, thresholds a day later), so the
    tallies move; the rows as they were are written back afterwards."""
    from sqlalchemy import delete, select

    from node.items.projection import write_rows
    from node.queries import standings
    from node.storage import schema as t

    ctx = await open_node(cfg.load(data), ManualClock(NOW))
    try:
        async with ctx.db.read() as conn:
            ids = list(await conn.scalars(select(t.items.c.item_id)))
        random.Random(3).shuffle(ids)
        ids = ids[: 2 * n]
        spent = {True: 0.0, False: 0.0}
        originals = []
        for k in range(0, len(ids), 500):
            chunk = ids[k : k + 500]
            async with ctx.db.read() as conn:
                rows = [dict(r._mapping) for r in await conn.execute(
                    select(t.items).where(t.items.c.item_id.in_(chunk)))]
            originals.append([dict(r) for r in rows])
            for row in rows:
                row["updated_at"] += 7 * DAY
                for column in ("yellow_from", "red_from"):
                    if row[column] is not None:
                        row[column] += DAY
            kept = (k // 500) % 2 == 0
            start = time.perf_counter()
            async with ctx.db.write() as conn:
                if kept:
                    await write_rows(conn, rows)
                else:
                    await conn.execute(delete(t.items).where(t.items.c.item_id.in_(chunk)))
                    await conn.execute(t.items.insert(), rows)
            spent[kept] += time.perf_counter() - start
        for k, rows in enumerate(originals):  # as they were, tallies with them
            async with ctx.db.write() as conn:
                if k % 2 == 0:
                    await write_rows(conn, rows)
                else:  # the plain chunks never moved the tallies
                    await conn.execute(delete(t.items).where(
                        t.items.c.item_id.in_([r["item_id"] for r in rows])))
                    await conn.execute(t.items.insert(), rows)
        await standings.score_all(ctx.db)  # what write_rows listed, scored again
    finally:
        await ctx.close()
    return n / spent[True], n / spent[False]


def china_instant(text: str) -> int:
    day = date.fromisoformat(text)
    return int(datetime(day.year, day.month, day.day, 9, 30, tzinfo=CHINA).timestamp() * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--shape", default="11,10,13",
                        help="cities,counties per city,townships per county")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per page and figure")
    parser.add_argument("--board-runs", type=int,
                        help="timed runs of the board pages (default --runs; the board before "
                             "this change replays every item's events: minutes at 1M)")
    parser.add_argument("--before-runs", type=int, default=5,
                        help="timed runs of each statement the pages ran before")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds per page before stopping early (min 20 runs)")
    parser.add_argument("--keep", help="build the node in this (new) directory and keep it")
    parser.add_argument("--reuse", help="measure a node kept earlier with --keep (no fill)")
    parser.add_argument("--now", help="a China date to look from (default 2026-12-01)")
    parser.add_argument("--no-replay", action="store_true",
                        help="skip the event replay of the ranking before (minutes at 1M)")
    parser.add_argument("--http-only", action="store_true",
                        help="only the pages over HTTP (works with the code before too)")
    parser.add_argument("--build-only", action="store_true", help="build, measure nothing")
    parser.add_argument("--pages", help="only the pages whose path starts so (comma-separated)")
    parser.add_argument("--writes", type=int, default=0,
                        help="also time rewriting this many item rows with and without tallies")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    # The reminder scheduler finds a million items nobody is set up to hear about.
    logging.getLogger("node.reminders").setLevel(logging.ERROR)
    cities, counties, townships = (int(x) for x in args.shape.split(","))
    tree = generate_tree(cities, counties, townships, code=PROVINCE)
    now = china_instant(args.now) if args.now else NOW

    temp = None
    if args.reuse:
        data = Path(args.reuse)
    else:
        if args.keep:
            data = Path(args.keep)
        else:
            temp = Path(tempfile.mkdtemp(prefix="duban-pages-"))
            data = temp / PROVINCE
        token = asyncio.run(L.make_node(data, tree, ManualClock(NOW)))
        (data / "bench-token").write_text(token)
    db_file = Path(str(make_url(str(cfg.load(data).database_url)).database))
    try:
        if not args.reuse:
            keys = {node.id: L.node_key(node.id) for node in tree if node.parent is not None}
            keys[PROVINCE] = asyncio.run(province_key(data))
            fill(db_file, tree, keys, args.items, args.seed)
        with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as con:
            items = con.execute("SELECT count(*) FROM items").fetchone()[0]
            events = con.execute("SELECT count(*) FROM events").fetchone()[0]
        size = db_file.stat().st_size / 1e9
        print(f"pages: {items:,} items, {events:,} events, {len(tree):,} nodes, {size:.2f} GB; "
              f"{platform.processor() or platform.machine()}, Python "
              f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; "
              f"now {datetime.fromtimestamp(now / 1000, CHINA):%Y-%m-%d %H:%M}")
        if not args.http_only:
            build_tallies(data, db_file)
            keep_up(data, now)
        if args.build_only:
            return
        pages = asyncio.run(http_pages(data, tree, now, args.runs, args.budget, args.board_runs,
                                       args.pages.split(",") if args.pages else ()))
        print()
        print(f"{'page (HTTP, signed in)':<36} {'p50 ms':>8} {'p95 ms':>8} {'runs':>5}")
        worst = 0.0
        for label, samples, _ in pages:
            p50, p95 = p50_p95(samples)
            worst = max(worst, p95)
            print(f"{label:<36} {p50:8.1f} {p95:8.1f} {len(samples):5}")
        if args.http_only:
            print(f"worst page p95: {worst:.0f} ms")
            return
        for label, _, html in pages:
            if label.startswith("/board"):
                print(f"{label} KPIs: {kpis(html)}")
        figures_ = asyncio.run(in_process(data, tree, now, args.runs, args.before_runs,
                                          args.budget, not args.no_replay))
        print()
        print(f"{'figure (in process)':<52} {'after p50':>9} {'p95':>7} "
              f"{'before p50':>10} {'p95':>9} {'x p50':>7}")
        for label, after_ms, before_ms in figures_:
            a50, a95 = p50_p95(after_ms)
            b50, b95 = p50_p95(before_ms) if before_ms else (float("nan"), float("nan"))
            after = f"{a50:9.1f} {a95:7.1f}" if after_ms != [0.0] else f"{'(in board)':>9} {'':>7}"
            ratio = b50 / a50 if after_ms != [0.0] and a50 else float("nan")
            print(f"{label:<52} {after} {b50:10.1f} {b95:9.1f} {ratio:7.0f}")
        print("every figure equal to the statements and the replay before"
              + (" (ranking not replayed: --no-replay)" if args.no_replay else ""))
        if args.writes:
            kept, plain = asyncio.run(write_cost(data, args.writes))
            print(f"rewriting rows, 500 per transaction: {kept:,.0f} rows/s with the tallies "
                  f"kept, {plain:,.0f} rows/s without ({plain / kept:.2f}x the time per row)")
        print(f"summary: worst page p95 {worst:.0f} ms over {items:,} items "
              f"(tree and board, province and city, HTTP, signed in)")
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
