"""One province item to every township of a generated tree, in real node processes.

The tree: 1 province, ``--cities`` cities, ``--counties`` counties per city and
``--townships`` townships per county (default 1 + 4 + 16 + 160 = 181 nodes). It
is created once in this process with node.demo.localtree (every child enrols
with its parent over HTTP, fixed loopback ports), then stopped and served again
by ``1 + cities`` OS processes: one for the province, one per city subtree (the
city, its counties and their townships), each hosting its nodes as
``duban demo`` does. Production settings, ``cascade.auto`` on, except that no
node spawns a catch-up decoding process (``sync.decode_processes = 0``).

Timed from the moment the province's supervisor posts the item (``POST
/api/v1/items`` to its 督查室 with ``cascade: township``):

- ``down_s``: until every township holds its sub-item (each township's process
  notes when its row is folded there);
- ``up_s``: until the province holds every township's feedback: each township
  deploys and reports (``item.feedback``, signed by the township) as soon as it
  holds its sub-item, and the province's process notes when its mirror has all
  of them in ``reporting``.

Then the CPU the whole tree used from the post to the last report (on a shared
machine a steadier figure than the times), the resident memory of each process
(RSS, and per node) and the CPU the whole tree uses while idle over ``--idle``
seconds. The last line is ``cascade townships=N down_s=X up_s=Y``.

Where the time goes: ``--trace`` (when the cities and counties hold their
sub-item, sign theirs and hold every report below them), ``--sql`` (statements
per level), ``--profile DIR`` (cProfile of each serving process), ``--log``
with ``--keep`` (the processes' logs, timed). ``--template DIR`` creates the
tree once (181 nodes take minutes) and copies it, with fresh ports, for each run.
Run: python bench/cascade.py [--cities 4 --counties 4 --townships 10] [--template DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/protocol.py is named like the package: keep bench/ off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import asyncio
import collections
import contextlib
import cProfile
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

import aiohttp
import sqlalchemy
from sqlalchemy import func, select

from node import config as cfg
from node.clock import SystemClock
from node.demo.localtree import RunningNode, Shape
from node.demo.localtree import build as build_tree
from node.storage import schema as t
from node.sync.catchup.tuning import ProcessTuning
from node.workflow.drafts import act
from protocol.events import Deployed, Feedback

SETTINGS = {"sync.decode_processes": 0}
TITLE = "全省各乡镇开展燃气安全排查"
TIMEOUT = 300.0
START_ATTEMPTS = 3
STOP_SECONDS = 15.0


def shape_of(cities: int, counties: int, townships: int) -> Shape:
    shape: Shape = [("14", None, "省", "province")]
    for c in range(1, cities + 1):
        city = f"14{c:02d}"
        shape.append((city, "14", f"市{c}", "city"))
        for k in range(1, counties + 1):
            county = f"{city}{k:02d}"
            shape.append((county, city, f"市{c}县{k}", "county"))
            for w in range(1, townships + 1):
                shape.append((f"{county}{w:03d}", county, f"市{c}县{k}镇{w}", "township"))
    return shape


def free_ports(n: int) -> list[int]:
    """``n`` ports free now, below the kernel's range for outgoing connections: a port
    taken from that range (bind to 0) may be handed to one of the 181 nodes' outgoing
    connections before the node that owns it listens."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    candidates = list(range(10_000, max(low, 10_001)))
    random.shuffle(candidates)
    ports: list[int] = []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError(f"fewer than {n} free ports below {low}")


def stop_all(procs: list[subprocess.Popen[str]]) -> None:
    """SIGTERM, then SIGKILL whatever has not stopped within STOP_SECONDS."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def new_ports(root: Path, ids: list[str]) -> None:
    """Give a copied tree free ports (those it was created with may be taken by now):
    each node's ``server.listen`` and its children's ``node.parent_url``."""
    files = [root / n / "duban.toml" for n in ids]
    old = [int(str(cfg.load(root / n)["server.listen"]).rpartition(":")[2]) for n in ids]
    moved = dict(zip(old, free_ports(len(old)), strict=True))
    # One pass: replacing port by port would move a port twice when a new one is
    # another node's old one.
    pattern = re.compile(r'127\.0\.0\.1:(\d+)"')
    for path in files:
        text = pattern.sub(
            lambda m: f'127.0.0.1:{moved.get(int(m[1]), int(m[1]))}"', path.read_text())
        path.write_text(text)


async def create(root: Path, shape: Shape) -> str:
    """Create every node (enrolment over HTTP), a supervisor with a token at the
    province; stop them all. Returns the token."""
    ports = dict(zip((n for n, *_ in shape), free_ports(len(shape)), strict=True))
    tree = await build_tree(root, SystemClock(), shape, extra=SETTINGS, ports=ports)
    try:
        ctx = tree["14"].ctx
        now = ctx.clock.now_ms()
        await ctx.accounts.add_unit("dcs", "督查室", office=False, now=now)
        await ctx.accounts.add_user("sup", role="supervisor", unit="dcs",
                                    password="password-123", now=now)
        return await ctx.accounts.token_for("sup", now)
    finally:
        await tree.stop()


# -------------------------------------------------------------- a serving process


async def serve(root: Path, ids: list[str], out: Path) -> None:
    """Serve ``ids`` (parents first) until SIGTERM; townships report as soon as they
    hold their sub-item, the province notes when it holds every report."""
    if os.environ.get("BENCH_LOG"):
        logging.basicConfig(level=logging.INFO, format="%(created).3f %(name)s %(message)s")
        logging.getLogger("node.queries.keeper").setLevel(logging.DEBUG)
    # The process's tuning, as `duban demo` and `duban run` apply it
    # (node/sync/catchup/tuning.py): without gc.freeze() every full collection
    # walks all that 45 nodes built at start.
    tuning = ProcessTuning()
    nodes: list[RunningNode] = []
    for node_id in ids:
        config = cfg.load(root / node_id)
        port = int(str(config["server.listen"]).rpartition(":")[2])
        node = RunningNode(node_id, root / node_id, config, SystemClock(), port=port,
                           streaming=tuning.streaming)
        await node.start()
        nodes.append(node)
    if not os.environ.get("BENCH_UNTUNED"):
        tuning.apply()
    statements: collections.Counter[str] = collections.Counter()
    if os.environ.get("BENCH_SQL"):
        for node in nodes:
            _count_sql(node, statements)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    results: dict[str, float] = {}
    tasks = [asyncio.create_task(_watch(n, results)) for n in nodes
             if n.ctx.certificate.level in ("township", "province")]
    marks: dict[str, dict[str, Any]] = {}
    tracing = [asyncio.create_task(_trace(n, marks)) for n in nodes
               if os.environ.get("BENCH_TRACE") and n.ctx.certificate.level
               not in ("township", "province")]
    if tracing:
        logging.getLogger("node.workflow.cascade").setLevel(logging.INFO)
        logging.getLogger("node.workflow.cascade").addHandler(_Signed(marks))
    print("ready", flush=True)
    profile = _profile(os.environ.get("BENCH_PROFILE"), Path(out))
    done: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*tasks))
    await asyncio.wait({done, asyncio.ensure_future(stop.wait())},
                       return_when=asyncio.FIRST_COMPLETED)
    if done.done():
        if tracing:
            await asyncio.wait(tracing, timeout=10)
        out.write_text(json.dumps(
            {"times": results, "marks": marks, "pid": os.getpid(), "nodes": len(ids),
             "sql": dict(statements)}
        ))
        print("done", flush=True)
        await stop.wait()
    for task in tasks + tracing:
        task.cancel()
    if profile is not None:
        profile.cancel()
        await asyncio.gather(profile, return_exceptions=True)
    for node in reversed(nodes):
        await node.stop()


async def _watch(node: RunningNode, results: dict[str, float]) -> None:
    """A township: report as soon as it holds its sub-item. The province: note when
    its mirror holds every township's report (only townships report here)."""
    ctx = node.ctx
    township = ctx.certificate.level == "township"
    wanted = int(os.environ["BENCH_TOWNSHIPS"])
    seen = 0
    mine = (select(t.items.c.item_id, t.items.c.assigner)
            .where(t.items.c.assignee == node.id).where(t.items.c.cascade.is_not(None)))
    reporting = (select(func.count()).select_from(t.items)
                 .where(t.items.c.cascade.is_not(None)).where(t.items.c.status == "reporting"))
    row: Any = None
    reports = 0
    while True:
        # Short reads on the loop's thread, as the cascade service reads (run_read).
        if township:
            row = await ctx.db.run_read(lambda conn: conn.execute(mine).first())
        else:
            reports = await ctx.db.run_read(lambda conn: conn.scalar(reporting))
        if township and row is not None:
            results[node.id] = time.time()
            await ctx.store.append_own([
                act(Deployed, me=node.id, item=row.item_id, to=row.assigner, note="已部署"),
                act(Feedback, me=node.id, item=row.item_id, to=row.assigner,
                    text="已完成排查", progress=50, attachments=()),
            ])
            return
        if not township and reports == wanted:
            results["province_up"] = time.time()
            return
        seen = await ctx.store.folded_past(seen)


def _count_sql(node: RunningNode, counts: collections.Counter[str]) -> None:
    """--sql: count the statements each node runs, by level and statement start."""
    level = node.ctx.certificate.level
    db = node.ctx.db
    engines = [db._writer.sync_engine, db._reader.sync_engine]
    engines += [e for e in (db._sync_writer, db._sync_reader) if e is not None]

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counts[f"{level} {' '.join(statement.split())[:70]}"] += 1

    for engine in engines:
        sqlalchemy.event.listen(engine, "before_cursor_execute", count)


def _profile(after: str | None, out: Path) -> asyncio.Task[None] | None:
    """BENCH_PROFILE=S: profile this process from S seconds after it is ready until it
    stops, into ``out`` with the suffix .prof (read it with pstats)."""
    if not after:
        return None

    async def run() -> None:
        await asyncio.sleep(float(after))
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            await asyncio.Event().wait()
        finally:
            profiler.disable()
            profiler.dump_stats(out.with_suffix(".prof"))

    return asyncio.create_task(run())


class _Signed(logging.Handler):
    """--trace: when each item was passed down (the cascade service logs it)."""

    def __init__(self, marks: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self.marks = marks

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if str(record.msg).startswith("passed %s down") and isinstance(args, tuple):
            self.marks.setdefault(f"item:{args[0]}", {})["signed"] = record.created


async def _trace(node: RunningNode, marks: dict[str, dict[str, Any]]) -> None:
    """--trace, a city or county: when it holds its sub-item (row folded), and when
    its mirror holds every report of the townships below it."""
    ctx = node.ctx
    tree = ctx.tree.tree
    below = sum(1 for n in tree.subtree(node.id) if tree.node(n).level == "township")
    mine = marks.setdefault(node.id, {})
    seen = 0
    held = (select(t.items.c.item_id).where(t.items.c.assignee == node.id)
            .where(t.items.c.cascade.is_not(None)))
    reporting = (select(func.count()).select_from(t.items)
                 .where(t.items.c.cascade.is_not(None)).where(t.items.c.status == "reporting"))
    while True:
        item, reports = await ctx.db.run_read(
            lambda conn: (conn.scalar(held), conn.scalar(reporting))
        )
        if item is not None and "held" not in mine:
            mine["held"] = time.time()
            mine["item"] = item
        if reports == below:
            mine["up"] = time.time()
            return
        seen = await ctx.store.folded_past(seen)


# -------------------------------------------------------------------- the driver


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def threads_and_fds(pid: int) -> tuple[int, int]:
    """The process's threads and open file descriptors."""
    threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


async def post_item(url: str, token: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(
        url + "/api/v1/items",
        json={"title": TITLE, "assignee": "dcs", "cascade": "township"},
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        assert resp.status == 201, await resp.text()


def print_trace(marks: dict[str, dict[str, Any]], start: float) -> None:
    """Per level (cities, counties): when they held their sub-item, signed theirs and
    held every report from below, in seconds after the item was posted."""
    levels = {4: "city", 6: "county"}
    for size, level in levels.items():
        nodes = {n: m for n, m in marks.items() if len(n) == size}
        for what in ("held", "signed", "up"):
            values = sorted(
                (marks.get(f"item:{m.get('item')}", {}) if what == "signed" else m).get(what, 0)
                - start for m in nodes.values()
            )
            if values:
                print(f"trace {level:>6} {what:>6}: min {values[0]:.3f} median "
                      f"{values[len(values) // 2]:.3f} max {values[-1]:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cities", type=int, default=4)
    parser.add_argument("--counties", type=int, default=4)
    parser.add_argument("--townships", type=int, default=10)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument(
        "--template",
        help="a folder to keep the created tree in (created there when missing) and "
        "copy for each run: creating 181 nodes takes minutes, copying them a second",
    )
    parser.add_argument("--trace", action="store_true",
                        help="print when each level held, signed and heard back")
    parser.add_argument("--profile", metavar="DIR",
                        help="profile each serving process (cProfile) from when it is "
                        "ready until it stops; the .prof files are left in DIR")
    parser.add_argument("--untuned", action="store_true",
                        help="leave the serving processes' gc.freeze() out (as before issue 17)")
    parser.add_argument("--sql", action="store_true",
                        help="count the SQL statements of each level during the run")
    parser.add_argument("--keep", action="store_true", help="leave the tree's folder")
    parser.add_argument("--log", action="store_true",
                        help="the serving processes log at INFO, with times, into the "
                        "tree's folder (log-N.txt; with --keep)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(Path(args.serve), args.ids.split(","), Path(args.out)))
        return

    shape = shape_of(args.cities, args.counties, args.townships)
    towns = sum(1 for *_, level in shape if level == "township")
    root = Path(tempfile.mkdtemp(prefix="duban-cascade-"))
    procs: list[subprocess.Popen[str]] = []
    logs = contextlib.ExitStack()
    try:
        began = time.monotonic()
        template = Path(args.template) if args.template else None
        if template is not None and (template / "token").exists():
            shutil.rmtree(root)
            shutil.copytree(template, root)
            token = (root / "token").read_text()
            new_ports(root, [n for n, *_ in shape])
            print(f"copied {len(shape)} nodes from {template}")
        else:
            token = asyncio.run(create(root, shape))
            print(f"created {len(shape)} nodes (enrolled over HTTP) in "
                  f"{time.monotonic() - began:.1f} s")
            if template is not None:
                shutil.copytree(root, template)
                (template / "token").write_text(token)
        groups = [["14"]] + [
            [n for n, *_ in shape if n.startswith(city)]
            for city, parent, *_ in shape if parent == "14"
        ]
        env = {**os.environ, "BENCH_TOWNSHIPS": str(towns)}
        if args.trace:
            env["BENCH_TRACE"] = "1"
        if args.profile:
            env["BENCH_PROFILE"] = "0.001"
        if args.untuned:
            env["BENCH_UNTUNED"] = "1"
        if args.sql:
            env["BENCH_SQL"] = "1"
        if args.log:
            env["BENCH_LOG"] = "1"
        for attempt in range(1, START_ATTEMPTS + 1):
            for i, ids in enumerate(groups):
                procs.append(subprocess.Popen(
                    [sys.executable, __file__, "--serve", str(root), "--ids", ",".join(ids),
                     "--out", str(root / f"result-{i}.json")],
                    stdout=subprocess.PIPE, text=True,
                    stderr=logs.enter_context(open(root / f"log-{i}.txt", "w")),  # noqa: SIM115
                    env=env,
                ))
            lines = []
            for proc in procs:
                assert proc.stdout is not None
                lines.append(proc.stdout.readline().strip())
            if all(line == "ready" for line in lines):
                break
            # A port chosen free may be taken by another program before its node
            # listens (a shared machine): new ports, once more.
            taken = any("address already in use" in (root / f"log-{i}.txt").read_text()
                        for i in range(len(groups)))
            stop_all(procs)
            procs.clear()
            assert taken and attempt < START_ATTEMPTS, (
                f"a serving process failed: see {root}/log-*.txt")
            print(f"a port was taken meanwhile; new ports (attempt {attempt + 1})")
            new_ports(root, [n for n, *_ in shape])
        time.sleep(2.0)  # every child's first pull is open
        url = f"http://{cfg.load(root / '14')['server.listen']}"
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        start = time.time()
        asyncio.run(post_item(url, token))
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line == "done", f"a serving process failed: see {root}/log-*.txt"
        cpu_run = sum(cpu_seconds(p.pid) for p in procs) - cpu_before
        times: dict[str, float] = {}
        marks: dict[str, dict[str, Any]] = {}
        for i in range(len(groups)):
            result = json.loads((root / f"result-{i}.json").read_text())
            times.update(result["times"])
            marks.update(result["marks"])
        if args.trace:
            print_trace(marks, start)
        if args.sql:
            sql: collections.Counter[str] = collections.Counter()
            for i in range(len(groups)):
                sql.update(json.loads((root / f"result-{i}.json").read_text())["sql"])
            for statement, n in sql.most_common(40):
                print(f"sql {n:6d} {statement}")
        arrived = [v for k, v in times.items() if k != "province_up"]
        assert len(arrived) == towns, (len(arrived), towns)
        down_s = max(arrived) - start
        up_s = times["province_up"] - start
        print(f"CPU of the whole tree from the post until the province held every report: "
              f"{cpu_run:.2f} s (load average {os.getloadavg()[0]:.1f})")
        print(f"first township after {min(arrived) - start:.3f} s, median "
              f"{sorted(arrived)[len(arrived) // 2] - start:.3f} s")
        for ids, proc in zip(groups, procs, strict=True):
            rss = rss_mib(proc.pid)
            threads, fds = threads_and_fds(proc.pid)
            print(f"process {ids[0]:>4} ({len(ids):>3} nodes): RSS {rss:7.1f} MiB, "
                  f"{rss / len(ids):6.2f} MiB per node; {threads} threads, {fds} fds "
                  f"({fds / len(ids):.1f} per node)")
        time.sleep(2.0)
        before = sum(cpu_seconds(p.pid) for p in procs)
        time.sleep(args.idle)
        used = sum(cpu_seconds(p.pid) for p in procs) - before
        print(f"idle CPU of the whole tree ({len(shape)} nodes, {len(procs)} processes) over "
              f"{args.idle:.0f} s: {100 * used / args.idle:.1f}% of one core")
        print(f"cascade townships={towns} down_s={down_s:.3f} up_s={up_s:.3f}")
    finally:
        stop_all(procs)
        logs.close()
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            for i in range(len(procs)):
                for name in (f"result-{i}.prof", f"log-{i}.txt"):
                    if (root / name).exists():
                        shutil.copy(root / name, Path(args.profile) / name)
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
