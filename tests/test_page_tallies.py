"""The tree's and the board's figures from the page tallies equal a straightforward
count over every item row, and the board's ranking equals the event replay of
``node.queries.assemble.Reports.quarter_scores`` — at every instant, while time moves.

A real province node (a real database: SQLite file and PostgreSQL) knows a small
generated province (15 nodes). 150 items get random histories over nine months
(2026-06 to 2027-03, so three quarters): deploys and feedback on time or late,
plans approved or rejected, resolutions returned (some twice), accepted,
closed, withdrawn, deadlines extended and units changed by the assigner, a few
handlers whose clock runs hours behind (an event dated before the one it
follows) or ahead (dated after it arrived), and some refused events. Time
then walks forward in steps of a few days: the events that have arrived are
stored and their items' rows rewritten through ``node.items.projection.write_rows``;
at random the keeper scores a chunk of items and the watermark moves (to the
present, or elsewhere: it only decides how much is read); and every figure is
compared with its reference at that instant and again a few hours or days
later without any write, so colours and deadlines cross while rows stand still.
At the end, rebuilding every tally from the rows gives the tables the deltas
kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hierarchy.synthetic import generate_tree
from hierarchy.tree import Tree
from node.clock import ManualClock
from node.context import NodeContext, open_node
from node.http.web import board
from node.items import tallies
from node.items.projection import row_of, write_rows
from node.queries import assemble, figures, standings
from node.queries.ledger import boards_of
from node.queries.periods import Quarter, Week
from node.setup import TEN_YEARS_MS, init_root
from node.storage import schema as t
from node.storage.events import SELF
from protocol import envelope
from protocol.certs import issue_certificate
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
    Urged,
    Withdrawn,
    encode_event,
    make_item_id,
)
from protocol.fold import fold
from protocol.keys import SigningKey
from protocol.rules import CHINA_TZ, DAY, HOUR, Colour, colour_at

PROVINCE = "14"
START = int(datetime(2026, 6, 1, 9, 0, tzinfo=CHINA_TZ).timestamp()) * 1000
UNITS = ("fgw", "jyj", "gaj", "czt")
KEY = SigningKey.from_seed(hashlib.sha256(b"page tallies").digest())
DONE = ("accepted", "closed")
RESOLVED = ("resolved", "accepted", "closed")


# -- histories -----------------------------------------------------------------------------


@dataclass
class Arrival:
    """An event and the instant it reaches the province."""

    at: int
    event: Event
    raw: bytes = b""


@dataclass
class Histories:
    rng: random.Random
    seqs: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lamport: int = 0

    def make(self, cls: type, **fields: Any) -> Event:
        origin = str(fields["origin"])
        if "seq" not in fields:
            self.seqs[origin] += 1
            fields["seq"] = self.seqs[origin]
        self.lamport += 1
        event: Event = cls(lamport=self.lamport, **fields)
        return event

    def item(self, tree: Tree, t0: int) -> list[Arrival]:
        rng = self.rng
        nodes = [n.id for n in tree]
        assignee = rng.choice(nodes)
        parent = tree.parent(assignee)
        assigner = parent if parent is not None and rng.random() < 0.8 else assignee
        cls = rng.choice(("general", "general", "major", "explicit"))
        resolve = t0 + {"general": 7 * DAY, "major": 30 * DAY}.get(
            cls, rng.randint(8, 120) * DAY
        )
        due = Deadlines(deploy=t0 + DAY, feedback=t0 + 3 * DAY, resolve=resolve)
        self.seqs[assigner] += 1
        seq = self.seqs[assigner]
        item = make_item_id(assigner, seq)
        unit = rng.choice(UNITS) if rng.random() < 0.6 or assigner == assignee else None
        up = {"item": item, "origin": assigner, "to": assignee}
        down = {"item": item, "origin": assignee, "to": assigner}
        events = [self.make(
            Assigned, item=item, origin=assigner, seq=seq, at=t0, to=assignee,
            title=f"事项{seq}", description="", board=rng.choice(("daily", "key_task", "reform")),
            source="plenary", item_class=cls, assigner=assigner, assignee=assignee,
            assignee_unit=unit, lead_unit=rng.choice((*UNITS, None)), co_units=(),
            calendar="natural", deadlines=due,
        )]
        # The steps, each (who, kind), then dated with random gaps.
        steps: list[str] = []
        end = rng.random()
        if end < 0.08:
            steps = ["withdraw"]
        else:
            steps = ["deploy", "feedback"] + ["feedback"] * rng.randint(0, 2)
            if cls != "general" and rng.random() < 0.4:
                steps += ["plan", rng.choice(("approve", "approve", "reject"))]
            steps += ["resolve"]
            for _ in range(rng.choice((0, 0, 0, 1, 2))):
                steps += ["return", "resolve"]
            steps += ["accept"] + (["close"] if rng.random() < 0.6 else [])
            steps = steps[: rng.randint(0, len(steps))]  # many stay open somewhere
            if rng.random() < 0.15:
                steps.insert(rng.randint(0, len(steps)), rng.choice(("extend", "unit")))
            for _ in range(rng.choice((0, 0, 0, 1, 2))):  # urges (催办): points too
                steps.insert(rng.randint(0, len(steps)), "urge")
            if rng.random() < 0.05:
                steps.append(rng.choice(("withdraw", "deploy")))  # often refused
        behind = rng.random() < 0.06  # the handler's clock runs behind
        ahead = rng.random() < 0.06  # ... or ahead: its events arrive before their date
        t = t0
        out = [Arrival(t0 + rng.randint(0, 3) * HOUR, events[0])]
        for step in steps:
            t += int(rng.expovariate(1 / (rng.choice((0.4, 2.0, 9.0)) * DAY))) + 60_000
            mine = t - rng.randint(1, 30) * HOUR if behind else t
            if step == "deploy":
                ev = self.make(Deployed, **down, at=mine, note="部署")
            elif step == "feedback":
                ev = self.make(Feedback, **down, at=mine, text="进展", progress=50,
                               attachments=())
            elif step == "plan":
                ms = (Milestone(title="一", due=t + 10 * DAY),
                      Milestone(title="二", due=t + 60 * DAY))
                ev = self.make(PlanSubmitted, **down, at=mine, milestones=ms, note="方案")
            elif step in ("approve", "reject"):
                ev = self.make(PlanDecided, **up, at=t, approved=step == "approve",
                               reason="" if step == "approve" else "不可行")
            elif step == "resolve":
                ev = self.make(Resolved, **down, at=mine, text="已解决", attachments=())
            elif step == "return":
                ev = self.make(Reviewed, **up, at=t, outcome="return", reason="补充材料")
            elif step == "accept":
                ev = self.make(Reviewed, **up, at=t, outcome="accept", reason="")
            elif step == "close":
                ev = self.make(Closed, **up, at=t, note="销号")
            elif step == "withdraw":
                ev = self.make(Withdrawn, **up, at=t, reason="调整")
            elif step == "urge":
                ev = self.make(Urged, **up, at=t, author="督查室", text="请加快进度")
            elif step == "extend":
                ev = self.make(Updated, **up, at=t, deadlines=Deadlines(
                    deploy=due.deploy, feedback=due.feedback, resolve=due.resolve + 20 * DAY))
            else:
                ev = self.make(Updated, **up, at=t, assignee_unit=rng.choice(UNITS))
            arrives = t + rng.randint(0, 2) * HOUR
            if ahead and ev.origin == assignee:
                ev = self.make(type(ev), **{**_fields(ev), "at": t + 2 * DAY})
                arrives = t
            out.append(Arrival(max(arrives, out[-1].at), ev))
        return out


def _fields(ev: Event) -> dict[str, Any]:
    return {f.name: getattr(ev, f.name) for f in dataclasses.fields(ev) if f.name != "lamport"}


def histories(tree: Tree, seed: int, n: int) -> list[list[Arrival]]:
    h = Histories(random.Random(seed))
    out = [h.item(tree, START + h.rng.randint(0, 200) * DAY + h.rng.randint(0, 20) * HOUR)
           for _ in range(n)]
    for arrivals in out:
        for a in arrivals:
            a.raw = envelope.sign(KEY, *encode_event(a.event)).raw
    return out


# -- the node ------------------------------------------------------------------------------


async def province(tmp: Path, db_url: str, tree: Tree, clock: ManualClock) -> NodeContext:
    data = tmp / PROVINCE
    config = await init_root(data, node=PROVINCE, name="山西省", level="province",
                             clock=clock, extra={"database.url": db_url})
    ctx = await open_node(config, clock)
    keys = {PROVINCE: ctx.key}
    records = []
    for node in tree:
        if node.parent is None:
            continue
        keys[node.id] = SigningKey.from_seed(hashlib.sha256(node.id.encode()).digest())
        env = issue_certificate(
            keys[node.parent], node=node.id, name=node.name, level=node.level,
            parent=node.parent, public_key=keys[node.id].public_key, version=1,
            not_before=START - DAY, not_after=START + TEN_YEARS_MS,
        )
        ctx.trust.add(env.raw, START)
        records.append(env.raw)
    await ctx.store.store_trust_records(records, SELF)
    await ctx.accounts.add_unit("fgw", "发改委", office=False, now=START)
    return ctx


async def store(ctx: NodeContext, arrived: list[tuple[int, Arrival]],
                held: dict[str, list[tuple[str, Event]]]) -> None:
    """Store these events and rewrite their items' rows, in one write transaction."""
    rows = []
    for _, a in arrived:
        ev = a.event
        held[ev.item].append((hashlib.sha256(a.raw).hexdigest(), ev))
        rows.append({
            "event_id": hashlib.sha256(a.raw).digest(), "type": ev.TYPE, "origin": ev.origin,
            "origin_seq": ev.seq, "lamport": ev.lamport, "item_id": ev.item, "to_node": ev.to,
            "source": "test", "received_at": a.at, "raw": a.raw,
        })
    items = sorted({a.event.item for _, a in arrived})
    async with ctx.db.write() as conn:
        await conn.execute(t.events.insert(), rows)
        await write_rows(conn, [row_of(fold(held[i]), ctx.tree.path_of) for i in items])


# -- references ----------------------------------------------------------------------------


async def item_rows(ctx: NodeContext, top: str) -> list[dict[str, Any]]:
    path = ctx.tree.path_of(top)
    c = t.items.c
    async with ctx.db.read() as conn:
        rows = await conn.execute(
            select(t.items).where(c.assignee_path >= path, c.assignee_path < path[:-1] + "0")
        )
        return [dict(r._mapping) for r in rows]


def colour(r: dict[str, Any], now: int) -> Colour:
    return colour_at(r["done"], r["yellow_from"], r["red_from"], now)


def met(r: dict[str, Any]) -> bool | None:
    value = json.loads(r["state"])["deadlines"]["resolve"]["met"]
    assert value is None or isinstance(value, bool)
    return value


def reference_tree(rows: list[dict[str, Any]], now: int) -> dict[str, figures.Counts]:
    out: dict[str, figures.Counts] = {}
    for r in rows:
        c = colour(r, now)
        out.setdefault(r["assignee"], figures.Counts()).add(figures.Counts(
            int(not r["done"]), int(c is Colour.RED), int(c is Colour.YELLOW),
            int(r["status"] in DONE),
        ))
    return out


def reference_board(
    ctx: NodeContext, tree: Tree, rows: list[dict[str, Any]], top: str, quarter: Quarter,
    weeks: list[int], now: int,
) -> figures.Board:
    out = figures.Board()
    children = {c: ctx.tree.path_of(c) for c in tree.children(top)}

    def bucket(path: str) -> str:
        return next((c for c, p in children.items() if path.startswith(p)), top)

    for r in rows:
        if not r["done"]:
            red = int(colour(r, now) is Colour.RED)
            b = bucket(r["assignee_path"])
            out.overdue_now[b] = out.overdue_now.get(b, 0) + red
            out.open_now += 1
            if red:
                key = (r["assignee"], r["assignee_unit"] or r["lead_unit"] or "")
                out.red_by_unit[key] = out.red_by_unit.get(key, 0) + 1
        due = r["resolve_due"]
        if quarter.start <= due < quarter.end and r["status"] != "withdrawn":
            resolved = r["status"] in RESOLVED
            rates = figures.Rates(1, int(r["status"] in DONE), int(resolved or due <= now),
                                  int(resolved and met(r) is True))
            for table, key in ((out.by_node, bucket(r["assignee_path"])),
                               (out.by_board, r["board"])):
                table.setdefault(key, figures.Rates()).add(rates)
    for rates in out.by_node.values():
        out.total.add(rates)
    counts = [[0, 0, 0] for _ in weeks]
    for r in rows:
        i = (r["assigned_at"] - weeks[0]) // tallies.WEEK_MS
        if 0 <= i < len(weeks):
            counts[i][0] += 1
        i = (r["updated_at"] - weeks[0]) // tallies.WEEK_MS
        if r["status"] in DONE and 0 <= i < len(weeks):
            counts[i][1] += 1
            counts[i][2] += int(met(r) is False)
    out.weeks = [(w, *c) for w, c in zip(weeks, counts, strict=True)]  # type: ignore[misc]
    return out


def twelve_weeks(now: int) -> list[int]:
    weeks = [Week.of(now)]
    for _ in range(11):
        weeks.insert(0, weeks[0].previous())
    return [w.start for w in weeks]


async def check(ctx: NodeContext, tree: Tree, now: int, scopes: list[str]) -> int:
    """Every figure at ``now`` against its reference; returns the ranking entries seen."""
    ctx.clock.set(now)  # type: ignore[attr-defined]
    seen = 0
    rules = assemble.score_rules(ctx.config)
    reports = assemble.Reports(
        ctx.db, ctx.clock, ctx.tree, ctx.accounts, rules, boards_of(ctx.config)
    )
    pages = figures.Figures(ctx.db, ctx.clock, ctx.tree)
    names = await reports.names()
    for top in scopes:
        rows = await item_rows(ctx, top)
        want_tree = {n: c for n, c in reference_tree(rows, now).items()
                     if c != figures.Counts()}
        got_tree = {n: c for n, c in (await pages.counts_by_node(top)).items()
                    if c != figures.Counts()}
        assert got_tree == want_tree, (top, now)
        current = Quarter.of(now)
        weeks = twelve_weeks(now)
        for quarter in (current, current.previous()):
            got = await pages.board(top, tree.children(top), quarter, weeks,
                                      red_units=3)
            want = reference_board(ctx, tree, rows, top, quarter, weeks, now)
            assert got.by_node == want.by_node, (top, quarter, now)
            assert got.by_board == want.by_board, (top, quarter, now)
            assert got.total == want.total
            assert got.open_now == want.open_now
            assert sum(got.overdue_now.values()) == sum(want.overdue_now.values())
            assert board.overdue_by_unit(got.red_by_unit, names, 3) == \
                board.overdue_by_unit(want.red_by_unit, names, 3)
            assert set(got.red_by_unit.items()) <= set(want.red_by_unit.items())
            assert got.weeks == want.weeks, (top, now)
            reference = await reports.quarter_scores(scope=top, quarter=quarter.code)
            for entries in (reference["nodes"], reference["units"]):
                for entry in entries:
                    del entry["lines"]
            ranked = await standings.standings(
                ctx.db, ctx.clock.now_ms(), ctx.tree.path_of(top), quarter, rules)
            assert isinstance(ranked, standings.QuarterScores)
            mine = assemble.standings_of(ranked, names)
            assert mine["nodes"] == reference["nodes"], (top, quarter, now)
            assert mine["units"] == reference["units"], (top, quarter, now)
            assert ranked.final == reference["final"]
            top5 = await standings.standings(
                ctx.db, ctx.clock.now_ms(), ctx.tree.path_of(top), quarter, rules, 5)
            assert isinstance(top5, standings.QuarterScores)
            five = assemble.standings_of(top5, names)
            assert five["nodes"] == reference["nodes"][:5]
            assert five["units"] == reference["units"][:5]
            seen += len(mine["nodes"]) + len(mine["units"])
    return seen


async def tally_tables(ctx: NodeContext) -> dict[str, set[tuple[Any, ...]]]:
    out = {}
    async with ctx.db.read() as conn:
        for tally in (*tallies.ROW_TALLIES, tallies.SCORES, tallies.RANKING):
            rows = await conn.execute(select(tally.table))
            out[tally.table.name] = {
                tuple(r) for r in rows
                if any(r._mapping[c] for c in tally.counters)
            }
        for table in (t.item_facts, t.score_rows, t.score_exceptions):
            out[table.name] = {tuple(r) for r in await conn.execute(select(table))}
    return out


# -- the test ------------------------------------------------------------------------------


async def test_figures_equal_their_references_as_time_moves(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = generate_tree(2, 2, 2, code=PROVINCE)
    clock = ManualClock(START)
    ctx = await province(tmp_path, db_url, tree, clock)
    rng = random.Random(7)
    try:
        pending = sorted(
            ((a.at, i, k, a) for i, h in enumerate(histories(tree, 11, 150))
             for k, a in enumerate(h)),
            key=lambda x: (x[0], x[1], x[2]),
        )
        held: dict[str, list[tuple[str, Event]]] = defaultdict(list)
        scopes = [PROVINCE, "1402", "140101"]
        now = START
        seen = 0
        checks = 0
        while pending:
            now += rng.randint(3, 14) * DAY + rng.randint(0, 23) * HOUR
            arrived = [(p[0], p[3]) for p in pending if p[0] <= now]
            pending = [p for p in pending if p[0] > now]
            clock.set(now)
            if arrived:
                await store(ctx, arrived, held)
            roll = rng.random()
            if roll < 0.4:
                await standings.score_some(ctx.db, limit=rng.randint(5, 60))
            elif roll < 0.55:
                await standings.score_all(ctx.db)
            if rng.random() < 0.5:
                async with ctx.db.write() as conn:
                    await tallies.advance(conn, now + rng.choice((0, 0, -5 * DAY, 3 * DAY)))
                    if rng.random() < 0.3:
                        await tallies.prune(conn)
            if rng.random() < 0.6:  # the keeper turns the ranking over (or has not yet)
                async with ctx.db.write() as conn:
                    await tallies.roll(conn, tallies.quarter_key(now))
            # How far past the last unit shown the ranking reads for ties (then all).
            monkeypatch.setattr(standings, "_TIES", rng.choice((0, 1, 50)))
            seen += await check(ctx, tree, now, scopes)
            later = now + rng.choice((1, 5, 30, 200)) * HOUR
            seen += await check(ctx, tree, later, scopes[:1])
            checks += 2
        # Long after: every deadline passed, every quarter final.
        await standings.score_all(ctx.db)
        seen += await check(ctx, tree, now + 120 * DAY, scopes)
        assert checks > 20 and seen > 500
        async with ctx.db.read() as conn:
            kinds = {r[0] for r in await conn.execute(select(t.score_exceptions.c.reason))}
        assert "irregular" in kinds  # the skewed clocks were replayed, not tallied

        # Rebuilding from the rows gives what the deltas kept.
        await standings.score_all(ctx.db)
        kept = await tally_tables(ctx)
        async with ctx.db.write() as conn:
            marks = await tallies.marks(conn)
            await conn.run_sync(lambda sync: tallies.rebuild(sync, marks.watermark))
            await tallies.roll(conn, marks.ranking)
        await standings.score_all(ctx.db)
        assert await tally_tables(ctx) == kept
    finally:
        await ctx.close()


def test_period_keys() -> None:
    for ms in (START, START + 17 * DAY + 5 * HOUR, 0, 1, 2**40, 253_402_300_799_000):
        week = Week.of(ms) if 2000 <= datetime.fromtimestamp(ms / 1000).year <= 2200 else None
        if week is not None:
            assert tallies.week_key(ms) == week.start
            assert tallies.quarter_key(ms) == Quarter.of(ms).start
        assert tallies.week_key(ms) <= ms < tallies.week_key(ms) + tallies.WEEK_MS
        assert tallies.quarter_key(ms) <= ms
    assert tallies.quarter_key(None) == tallies.NEVER
    assert tallies.quarter_key(2**53 - 1) == 2**53 - 1  # past year 9000: itself, in order
    # China time: Monday 00:00 +08:00 starts the week, even on Sunday 23:59 UTC+0 = Mon.
    sunday_utc_late = int(datetime(2026, 11, 22, 16, 30, tzinfo=CHINA_TZ).timestamp()) * 1000
    assert tallies.week_key(sunday_utc_late) == Week.of(sunday_utc_late).start


async def test_a_database_the_migrations_left_without_tallies_gets_them_when_opened(
    tmp_path: Path, db_url: str
) -> None:
    """Migration 0004 creates the tally tables empty (a migration runs no live code): a
    node opening a database with items and no watermark builds every tally first."""
    tree = generate_tree(2, 2, 2, code=PROVINCE)
    clock = ManualClock(START)
    ctx = await province(tmp_path, db_url, tree, clock)
    clock.set(START + 120 * DAY)
    try:
        arrivals = [a for h in histories(tree, 3, 20) for a in h]
        held: dict[str, list[tuple[str, Event]]] = defaultdict(list)
        await store(ctx, [(a.at, a) for a in arrivals], held)
        now = clock.now_ms()
        async with ctx.db.write() as conn:  # the marks where a rebuild now puts them
            await tallies.advance(conn, now)
            await tallies.roll(conn, tallies.quarter_key(now))
        await standings.score_all(ctx.db)
        kept = await tally_tables(ctx)
        assert kept, "the histories made no tallies: the test would prove nothing"
        async with ctx.db.write() as conn:
            for table in (t.tally_marks, t.item_facts, t.score_exceptions, t.score_rows,
                          *(x.table for x in (*tallies.ROW_TALLIES, tallies.SCORES,
                                              tallies.RANKING))):
                await conn.execute(table.delete())
        config = ctx.config
    finally:
        await ctx.close()
    ctx = await open_node(config, clock)
    try:
        async with ctx.db.read() as conn:
            marks = await tallies.marks(conn)
        assert marks == tallies.Marks(now, tallies.quarter_key(now))
        await standings.score_all(ctx.db)
        assert await tally_tables(ctx) == kept
    finally:
        await ctx.close()
