"""How fast the ledger answers on a province mirror of a million items.

A real province node (``duban init``'s root, "14") is given a certificate for
every node of a generated province (``hierarchy.synthetic.generate_tree(11, 10,
13)``: 1,552 nodes), so its tree view knows the whole subtree, and a bearer
token for one supervisor. Its ``items`` table is then filled directly with SQL
(``executemany`` in big transactions, indexes built after the fill): the
benchmark measures the query path, not ingestion. Rows look like the rows
``node.items.projection.row_of`` writes: assignee paths from the tree, realistic shares of
status, board, class, units and deadlines, Chinese titles and descriptions, the
colour thresholds that ``protocol.rules.colour_thresholds`` would store, and a
``state`` blob of real size.

Then the node's real HTTP server starts (``node.demo.localtree.RunningNode``:
``create_app`` on loopback) and each typical ledger query is timed through
``GET /api/v1/items`` with the token, sequentially, beside the very statements
the ledger runs (the scope probe, the page, the capped count: chosen as
``node.queries.ledger.fetch_page`` chooses them), run on the same file with the
``sqlite3`` module in the same run. The table gives p50/p95/p99 of both and
their ratio. Never fails on a time. docs/performance.md ("Ledger") has figures.

Run: python bench/ledger.py [--items 1000000] [--runs 200] [--keep DIR | --reuse DIR]
                            [--plans]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/protocol.py is named like the package: keep bench/ off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import asyncio
import contextlib
import hashlib
import json
import platform
import random
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql import Select

from hierarchy.synthetic import generate_tree
from hierarchy.tree import Tree
from node import config as cfg
from node.clock import ManualClock
from node.context import open_node
from node.demo.localtree import RunningNode
from node.queries import ledger
from node.setup import TEN_YEARS_MS, init_root
from node.storage import schema as t
from node.storage.events import SELF
from protocol import rules
from protocol.certs import issue_certificate
from protocol.events import make_item_id
from protocol.keys import SigningKey
from protocol.rules import CHINA_TZ as CHINA

PROVINCE = "14"
NOW = int(datetime(2026, 12, 1, 9, 30, tzinfo=CHINA).timestamp() * 1000)
DAY = 86_400_000
HOUR = 3_600_000
FILL_CHUNK = 50_000

# --------------------------------------------------------------- the data

# (share of all items, status); done statuses first.
STATUSES = (
    (0.15, "accepted"), (0.27, "closed"), (0.03, "withdrawn"),
    (0.06, "assigned"), (0.08, "deployed"), (0.22, "reporting"),
    (0.08, "planned"), (0.06, "resolved"), (0.05, "returned"),
)
DONE = {"accepted", "closed", "withdrawn"}
BOARDS = (
    (0.50, "daily"), (0.15, "key_task"), (0.10, "reform"),
    (0.10, "engineering"), (0.07, "tech_upgrade"), (0.08, "investment"),
)
CLASSES = ((0.60, "general"), (0.25, "major"), (0.15, "explicit"))
# Where items are assigned: share of items per level (townships hold the bulk).
LEVEL_SHARE = {"province": 0.005, "city": 0.04, "county": 0.20, "township": 0.755}
UNITS = (
    "office", "fgw", "jyj", "gaj", "mzj", "czj", "rsj", "zrzyj", "sthjj",
    "zjj", "jtj", "slj", "nyncj", "swj", "wjw", "yjj", "scjgj", "xfj",
)
TOPICS = (
    "农村人居环境整治", "安全生产大检查", "老旧小区改造", "秸秆禁烧", "河湖长制落实",
    "营商环境优化", "重点项目建设", "信访积案化解", "耕地保护", "防汛备汛", "森林防火",
    "招商引资", "乡村振兴", "城市更新", "燃气安全排查", "校园安全", "食品安全抽检",
    "欠薪治理", "大气污染防治", "数字政府建设", "高标准农田建设", "煤矿安全监管",
    "文明城市创建", "义务教育优质均衡", "医共体建设", "养老服务体系", "供暖保障",
    "道路交通安全", "自建房安全整治", "黄河流域生态保护",
)
RARE_TOPIC = "古树名木保护"  # one item in ~2,000: a rare search word
VERBS = ("关于加快推进", "关于抓好", "关于开展", "督办", "落实", "关于做好", "")
SUFFIXES = ("工作", "专项行动", "问题整改", "任务", "督查事项", "")
SENTENCES = (
    "请按照省委省政府部署，于规定时限内完成相关工作并按时报送进展情况。",
    "重点解决群众反映强烈的突出问题，建立台账，逐项销号。",
    "各级各部门要压实责任，主要负责同志亲自部署、亲自督办。",
    "对推进不力、弄虚作假的单位和个人严肃追责问责。",
    "请牵头单位会同配合单位制定工作方案，明确时间表和路线图。",
    "结合实际细化措施，确保各项任务落地见效。",
    "及时总结经验做法，形成可复制可推广的长效机制。",
)


def pick(table: Sequence[tuple[float, str]], rng: random.Random) -> str:
    x = rng.random()
    for share, value in table:
        x -= share
        if x < 0:
            return value
    return table[-1][1]


def thresholds(
    status: str, cls: str, assigned: int, deploy: int, feedback: int, resolve: int
) -> tuple[int | None, int | None]:
    """What ``rules.colour_thresholds`` stores, from the steps a status leaves undone."""
    if status in DONE or status == "resolved":
        return None, None
    policy = rules.DEFAULT_POLICY
    long = cls == "major" or (cls == "explicit" and resolve - assigned > 7 * DAY)
    windows = [(resolve, policy.resolve_month_before if long else policy.resolve_week_before)]
    if status == "assigned":
        windows.append((deploy, policy.deploy_before))
    if status in ("assigned", "deployed"):
        windows.append((feedback, policy.feedback_before))
    return min(d - w for d, w in windows), min(d for d, _ in windows) + 1


def state_blobs(rng: random.Random) -> list[bytes]:
    """``state`` JSON of the sizes real items have (1.2 KB new, up to ~4 KB with feedback)."""
    base = {"applied": [], "feedback": [], "description": "", "title": ""}
    out = []
    for n in range(6):
        applied = [hashlib.sha256(bytes([n, i])).hexdigest() for i in range(n + 1)]
        value = dict(base, applied=applied)
        value["feedback"] = [
            {"text": "".join(rng.choice(SENTENCES) for _ in range(3)), "progress": 10 * i}
            for i in range(n)
        ]
        value["pad"] = "x" * 700
        out.append(json.dumps(value, ensure_ascii=False).encode())
    return out


def generate_rows(tree: Tree, n: int, seed: int) -> tuple[list[tuple[Any, ...]], Counter[str]]:
    """``n`` item rows (in ``COLUMNS`` order), oldest assignment first."""
    rng = random.Random(seed)
    paths = {node.id: "".join(f"{p}/" for p in tree.path_from_root(node.id)) for node in tree}
    by_level: dict[str, list[str]] = {}
    for node in tree:
        by_level.setdefault(node.level, []).append(node.id)
    levels = [(LEVEL_SHARE[level], level) for level in by_level]
    blobs = state_blobs(rng)
    drafts = []
    for _ in range(n):
        status = pick(STATUSES, rng)
        cls = pick(CLASSES, rng)
        if status in DONE:
            age = rng.uniform(10, 3 * 365) * DAY
        elif status == "assigned":
            age = rng.expovariate(1 / (0.6 * DAY))
        elif status == "deployed":
            age = rng.expovariate(1 / (2 * DAY))
        else:
            age = rng.expovariate(1 / ((4 if cls == "general" else 18) * DAY))
        drafts.append((NOW - int(age) - 60_000, status, cls))
    drafts.sort()
    seqs: Counter[str] = Counter()
    ids_by_assignee: dict[str, list[str]] = {}
    rows = []
    colours: Counter[str] = Counter()
    for assigned, status, cls in drafts:
        assignee = rng.choice(by_level[pick(levels, rng)])
        parent = tree.parent(assignee)
        assigner = parent if parent is not None and rng.random() < 0.9 else assignee
        seqs[assigner] += 1
        item = make_item_id(assigner, seqs[assigner] * 3)
        parent_item = None
        if parent is not None and rng.random() < 0.25:
            earlier = ids_by_assignee.get(parent)
            if earlier:
                parent_item = rng.choice(earlier[-50:])
        ids_by_assignee.setdefault(assignee, []).append(item)
        deploy, feedback = assigned + DAY, assigned + 3 * DAY
        if cls == "general":
            resolve = assigned + 7 * DAY
        elif cls == "major":
            resolve = assigned + 30 * DAY
        else:
            resolve = assigned + rng.randint(8, 180) * DAY
        deploy, feedback = min(deploy, resolve), min(feedback, resolve)
        yellow, red = thresholds(status, cls, assigned, deploy, feedback, resolve)
        done = status in DONE
        colours[str(rules.colour_at(done, yellow, red, NOW))] += 1
        topic = RARE_TOPIC if rng.random() < 0.0005 else rng.choice(TOPICS)
        title = f"{rng.choice(VERBS)}{topic}{rng.choice(SUFFIXES)}"
        description = "".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 4)))
        lead_unit = rng.choice(UNITS) if rng.random() < 0.8 else None
        assignee_unit = rng.choice(UNITS) if rng.random() < 0.5 else None
        co_units = rng.sample(UNITS, rng.randint(0, 2))
        search = " ".join(p for p in (title, description, lead_unit, assignee_unit, *co_units) if p)
        if done:
            updated = assigned + int(rng.uniform(0, min(60 * DAY, NOW - assigned)))
            progress = 100 if status != "withdrawn" else rng.randint(0, 60)
        else:
            updated = assigned + int(rng.uniform(0, NOW - assigned))
            progress = rng.randint(0, 90)
        steps = {"assigned": 0, "deployed": 1, "planned": 2, "reporting": 3}.get(status, 5)
        rows.append((
            item, assigner, assignee, assignee_unit, lead_unit, parent_item,
            pick(BOARDS, rng), cls, status, title, deploy, feedback, resolve, progress,
            assigned, updated, done, blobs[steps], paths[assignee], yellow, red, search.lower(),
        ))
    return rows, colours


COLUMNS = (
    "item_id", "assigner", "assignee", "assignee_unit", "lead_unit", "parent_item",
    "board", "class", "status", "title", "deploy_due", "feedback_due", "resolve_due",
    "progress", "assigned_at", "updated_at", "done", "state", "assignee_path",
    "yellow_from", "red_from", "search_text",
)


def progress(text: str) -> None:
    print(f"\r{text:<78}", end="", file=sys.stderr, flush=True)


@contextlib.contextmanager
def bulk_load(db_file: Path, tables: Sequence[str]) -> Iterator[sqlite3.Connection]:
    """A connection for filling a disposable benchmark database fast: no journal, no
    sync, the indexes of ``tables`` dropped first and built again (with progress) when
    the block ends, then WAL as the node expects."""
    con = sqlite3.connect(db_file, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-1000000")
        marks = ", ".join("?" * len(tables))
        indexes = con.execute(
            "SELECT name, sql FROM sqlite_master "
            f"WHERE type = 'index' AND tbl_name IN ({marks}) AND sql IS NOT NULL",
            tuple(tables),
        ).fetchall()
        for name, _ in indexes:
            con.execute(f"DROP INDEX {name}")
        yield con
        for k, (name, index_sql) in enumerate(indexes, start=1):
            progress(f"fill: index {k}/{len(indexes)} {name}")
            con.execute(index_sql)
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def fill(db_file: Path, tree: Tree, n: int, seed: int) -> None:
    """Write ``n`` rows; the items indexes are dropped first and built after (faster)."""
    start = time.perf_counter()
    rows, colours = generate_rows(tree, n, seed)
    made = time.perf_counter() - start
    with bulk_load(db_file, ("items",)) as con:
        sql = f"INSERT INTO items ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        for i in range(0, n, FILL_CHUNK):
            con.execute("BEGIN")
            con.executemany(sql, rows[i : i + FILL_CHUNK])
            con.execute("COMMIT")
            done = min(n, i + FILL_CHUNK)
            rate = done / (time.perf_counter() - start - made)
            progress(f"fill: {done:,}/{n:,} rows ({rate:,.0f} rows/s)")
    total = time.perf_counter() - start
    share = ", ".join(f"{c} {v / n:.1%}" for c, v in sorted(colours.items()))
    progress(f"fill: {n:,} rows in {total:.1f} s (generate {made:.1f} s); colours: {share}")
    print(file=sys.stderr)


# ------------------------------------------------------------- the node


def node_key(node: str) -> SigningKey:
    return SigningKey.from_seed(hashlib.sha256(f"bench-ledger:{node}".encode()).digest())


async def make_node(data: Path, tree: Tree, clock: ManualClock) -> str:
    """A province root knowing every node of ``tree``; returns a supervisor's bearer token."""
    config = await init_root(data, node=PROVINCE, name="山西省", level="province", clock=clock)
    ctx = await open_node(config, clock)
    try:
        keys: dict[str, SigningKey] = {PROVINCE: ctx.key}
        records = []
        for node in tree:
            if node.parent is None:
                continue
            keys[node.id] = node_key(node.id)
            env = issue_certificate(
                keys[node.parent], node=node.id, name=node.name, level=node.level,
                parent=node.parent, public_key=keys[node.id].public_key, version=1,
                not_before=NOW - 60_000, not_after=NOW + TEN_YEARS_MS,
            )
            ctx.trust.add(env.raw, NOW)
            records.append(env.raw)
        await ctx.store.store_trust_records(records, SELF)
        await ctx.accounts.add_unit("office", "办公室", office=True, now=NOW)
        await ctx.accounts.add_user(
            "bench", role="supervisor", unit="office", password="bench-password", now=NOW
        )
        token = await ctx.accounts.token_for("bench", NOW)
        async with ctx.db.write() as conn:
            await conn.execute(
                t.node_seen.insert(),
                [
                    {"node": n.id, "max_seq": 1000, "last_event_at": NOW - HOUR,
                     "last_received_at": NOW - HOUR + 5000}
                    for n in tree
                ],
            )
            await conn.execute(
                t.links.insert(),
                [{"link": c, "acked_pos": 0, "applied_pos": 0, "last_contact": NOW - 60_000,
                  "failures": 0, "peer_pending": 0} for c in tree.children(PROVINCE)],
            )
    finally:
        await ctx.close()
    return token


# ------------------------------------------------------------- the queries


def day(offset: int) -> str:
    return (datetime.fromtimestamp(NOW / 1000, CHINA) + timedelta(days=offset)).date().isoformat()


def queries(tree: Tree) -> list[tuple[str, dict[str, str], bool]]:
    """(label, query parameters, in the p95 target)."""
    city = tree.children(PROVINCE)[4]
    county = tree.children(city)[2]
    township = tree.children(county)[6]
    return [
        ("default (province, page 1)", {}, True),
        ("scope=city", {"scope": city}, True),
        ("scope=county status=reporting", {"scope": county, "status": "reporting"}, True),
        ("scope=township", {"scope": township}, True),
        ("scope=county depth=node", {"scope": county, "depth": "node"}, True),
        ("colour=red", {"colour": "red"}, True),
        ("colour=yellow,red scope=city", {"colour": "yellow,red", "scope": city}, True),
        ("overdue=true board=key_task", {"overdue": "true", "board": "key_task"}, True),
        ("unit=fgw", {"unit": "fgw"}, True),
        ("due_from..due_to (1 week)", {"due_from": day(1), "due_to": day(7)}, True),
        ("sort=-updated_at", {"sort": "-updated_at"}, True),
        ("status=assigned,deployed sort=-assigned_at",
         {"status": "assigned,deployed", "sort": "-assigned_at"}, True),
        ("offset=1000 (page 21)", {"offset": "1000"}, True),
        ("offset=100000 (page 2001)", {"offset": "100000"}, False),
        ("q=燃气安全 (common word)", {"q": "燃气安全"}, False),
        ("q=古树名木 (rare word)", {"q": "古树名木"}, False),
        ("q=燃气安全 scope=county", {"q": "燃气安全", "scope": county}, False),
    ]


def compiled(stmt: Select[Any]) -> tuple[str, list[Any]]:
    c = stmt.compile(
        dialect=sqlite_dialect.dialect(), compile_kwargs={"render_postcompile": True}
    )
    params = [c.params[name] for name in (c.positiontup or ())]
    return str(c), params


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    s = sorted(samples)

    def at(p: float) -> float:
        return s[min(len(s) - 1, round(p * (len(s) - 1)))]

    return at(0.50), at(0.95), at(0.99)


async def timed(fn: Callable[[], Any], runs: int, budget: float) -> tuple[list[float], Any]:
    for _ in range(3):
        result = await fn()
    samples: list[float] = []
    end = time.perf_counter() + budget
    while len(samples) < runs and (len(samples) < 20 or time.perf_counter() < end):
        start = time.perf_counter()
        result = await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples, result


async def measure(
    data: Path, db_file: Path, tree: Tree, token: str, *, runs: int, budget: float, plans: bool
) -> None:
    clock = ManualClock(NOW)
    node = RunningNode(PROVINCE, data, cfg.load(data), clock)
    await node.start()
    direct = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, isolation_level=None)
    boards = ledger.known_boards("")
    rows_out = []
    try:
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            for label, params, target in queries(tree):
                url = f"{node.url}/api/v1/items?{urlencode(params)}"

                async def http(url: str = url) -> bytes:
                    # Timed to the last byte of the answer; decoding it is the client's work.
                    async with session.get(url) as resp:
                        raw = await resp.read()
                        if resp.status != 200:
                            raise SystemExit(f"{url}: {resp.status} {raw[:300]!r}")
                        return raw

                http_ms, raw = await timed(http, runs, budget)
                answer = json.loads(raw)
                query = ledger.parse_query(params, PROVINCE, boards)
                path = node.ctx.tree.path_of(query.scope)

                async def sql(query: ledger.Query = query, path: str = path) -> Any:
                    return run_direct(direct, query, path)

                sql_ms, (n_rows, _) = await timed(sql, runs, budget)
                assert n_rows == len(answer["items"]), (label, n_rows, len(answer["items"]))
                rows_out.append((label, target, answer, http_ms, sql_ms))
                if plans:
                    print_plans(direct, label, query, path)
    finally:
        direct.close()
        await node.stop()
    report(rows_out)


def plan_of(con: sqlite3.Connection, query: ledger.Query, path: str) -> ledger.Plan:
    """The statements ``ledger.Ledger.list_items`` runs, chosen as it chooses them."""
    probed = None
    if ledger.probe_needed(query, PROVINCE):
        probed = con.execute(*compiled(ledger.scope_probe(path))).fetchone()[0]
    access = ledger.access_for(query, PROVINCE, probed)
    return ledger.statements(query, path, NOW, access=access)


def run_direct(con: sqlite3.Connection, query: ledger.Query, path: str) -> tuple[int, int | None]:
    """What the ledger runs for one answer, run with the sqlite3 module."""
    plan = plan_of(con, query, path)
    sql, params = compiled(plan.rows)
    rows = con.execute(sql, params).fetchall()
    total = None
    if plan.needs_count(len(rows)):
        sql, params = compiled(plan.count)
        total = con.execute(sql, params).fetchone()[0]
    return len(rows), total


def print_plans(con: sqlite3.Connection, label: str, query: ledger.Query, path: str) -> None:
    plan = plan_of(con, query, path)
    print(f"\n-- {label}")
    for name, stmt in (("rows", plan.rows), ("count", plan.count)):
        sql, params = compiled(stmt)
        for row in con.execute(f"EXPLAIN QUERY PLAN {sql}", params):
            print(f"   {name}: {row[3]}")


def report(rows: list[tuple[str, bool, Any, list[float], list[float]]]) -> None:
    print()
    print(f"{'query':<44} {'total':>9} {'HTTP p50':>9} {'p95':>7} {'p99':>7}"
          f" {'SQL p50':>8} {'p95':>7} {'p99':>7} {'x p50':>6}")
    worst = 0.0
    for label, target, answer, http_ms, sql_ms in rows:
        h50, h95, h99 = percentiles(http_ms)
        s50, s95, s99 = percentiles(sql_ms)
        total = f"{answer['total']:,}" + ("" if answer.get("total_exact", True) else "+")
        mark = "" if target else " *"
        if target:
            worst = max(worst, h95)
        print(f"{label + mark:<44} {total:>9} {h50:9.1f} {h95:7.1f} {h99:7.1f}"
              f" {s50:8.1f} {s95:7.1f} {s99:7.1f} {h50 / max(s50, 0.001):6.1f}")
    print("times in ms; * outside the p95 target (text search, deep offsets); "
          "total: counted up to ledger.COUNT_CAP, + when that is a lower bound")
    print(f"worst HTTP p95 of the targeted queries: {worst:.1f} ms (target 20 ms)")


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--shape", default="11,10,13",
                        help="cities,counties per city,townships per county")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per query and path")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds per query and path before stopping early (min 20 runs)")
    parser.add_argument("--keep", help="build the node in this (new) directory and keep it")
    parser.add_argument("--reuse", help="measure a node kept earlier with --keep (no fill)")
    parser.add_argument("--plans", action="store_true", help="print EXPLAIN QUERY PLAN")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    cities, counties, townships = (int(x) for x in args.shape.split(","))
    tree = generate_tree(cities, counties, townships, code=PROVINCE)

    temp = None
    if args.reuse:
        data = Path(args.reuse)
        token = (data / "bench-token").read_text().strip()
    else:
        if args.keep:
            data = Path(args.keep)
        else:
            temp = Path(tempfile.mkdtemp(prefix="duban-ledger-"))
            data = temp / PROVINCE
        token = asyncio.run(make_node(data, tree, ManualClock(NOW)))
        (data / "bench-token").write_text(token)
    db_file = Path(str(make_url(str(cfg.load(data).database_url)).database))
    try:
        if not args.reuse:
            fill(db_file, tree, args.items, args.seed)
        with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True) as con:
            items = con.execute("SELECT count(*) FROM items").fetchone()[0]
        size = db_file.stat().st_size / 1e9
        print(f"ledger: {items:,} items, {len(tree):,} nodes, "
              f"{size:.2f} GB; {platform.processor() or platform.machine()}, "
              f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
        asyncio.run(measure(data, db_file, tree, token, runs=args.runs, budget=args.budget,
                            plans=args.plans))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
