"""How fast a township catches up after being offline while its parent queued events.

Two real node processes on loopback (``python -m node.cli run``): a province
(the root) and a township enrolled under it with the real CLI (``init``,
``invite``, ``join``). With both stopped, N events addressed to the township
are written into the province's database (mostly assignments, a fifth of them
follow-up updates of earlier items), signed either in Merkle batches
(``--signing batch``: one signature per ``--sign-batch`` events, as
``EventLog.append_own`` does) or one signature per event (``--signing single``).
Then the province is restarted, the township is started, and the clock runs
from the moment the township serves (its sync client starts just before) until
its database holds all N events; its SQLite file is read-only polled from here.

The last line is ``catchup events=N seconds=S rate=R/s``. ``--timeline`` runs the
township with ``-v`` and prints its sync client's page-by-page log: how long each
page was waited for, prepared, and how long it then waited for the commit before.
``--profile cprofile`` runs the township under cProfile (its main thread, over the
timed window only), ``--profile py-spy`` samples both processes, every thread,
whole lifetime (``pip install py-spy``); either prints a summary of where time went.
Run: python bench/catchup.py [--events 10000] [--signing batch|single]
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
import io
import os
import pstats
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Sequence

from node import config as cfg
from node.clock import SystemClock
from node.context import open_node
from node.storage.events import SELF, Accepted, Draft, EventLog
from node.workflow.drafts import act, assign
from protocol import codec, envelope
from protocol.events import Deadlines, Event, Updated, encode_event

PROVINCE = "14"
TOWNSHIP = "140105001"
FOLLOW_UP_SHARE = 0.2
READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str) -> str:
    """Run one ``duban`` command to completion; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"duban {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


class NodeProcess:
    """One ``duban run`` process; ``prefix`` wraps it (cProfile, py-spy)."""

    def __init__(self, data: Path, port: int, log: Path) -> None:
        self.data = data
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(
        self, prefix: Sequence[str] = (), python: Sequence[str] = (), verbose: bool = False
    ) -> None:
        """``prefix`` wraps the interpreter (py-spy); ``python`` replaces ``-m node.cli``
        (the cProfile wrapper); ``verbose`` logs at INFO (the catch-up's timeline)."""
        command = [*prefix, sys.executable, *(python or ("-m", "node.cli")),
                   *(["-v"] if verbose else []), "run",
                   "--data", str(self.data), "--listen", f"127.0.0.1:{self.port}"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)

    def wait_ready(self) -> None:
        """Block until the node prints that it serves (its sync client is already running)."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if b"serving on" in line:
                return
            if not line and self.proc.poll() is not None:
                break
        raise SystemExit(f"node in {self.data} did not start; see {self.log}")

    def node_pid(self) -> int:
        """The node's own pid (under py-spy, the child of the py-spy process)."""
        assert self.proc is not None
        pid = self.proc.pid
        if Path(self.proc.args[0]).name == "py-spy":  # type: ignore[index, arg-type]
            children = [
                int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                for c in (task / "children").read_text().split()
            ]
            assert children, "py-spy has not started the node"
            pid = children[0]
        return pid

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the node (a clean stop) and wait; SIGKILL to the node if it hangs
        (under py-spy the wrapper then still writes its profile)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            pid = self.node_pid()
            os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"node in {self.data} did not stop on SIGTERM: killing it", file=sys.stderr)
                os.kill(pid, signal.SIGKILL)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.proc = None


def cpu_seconds(pid: int, task: int | None = None) -> float:
    """User + system CPU time of a process so far (all its threads), or of one of its
    threads (``task``: its thread id; the main thread's is the process id), from /proc."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    fields = Path(path).read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid: int) -> float:
    """CPU seconds of the live descendants of ``pid`` (the township's decoding worker)."""
    total = 0.0
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except FileNotFoundError:
                continue
            for kid in kids:
                try:
                    total += cpu_seconds(kid)
                except FileNotFoundError:
                    continue
                pending.append(kid)
    return total


def tune(data: Path, settings: dict[str, object]) -> None:
    if settings:
        config = cfg.load(data)
        cfg.write(data, {**config.values, **settings})


# ----------------------------------------------------------------- events


def _drafts(n: int, rng: random.Random, assigned: list[str]) -> list[Draft]:
    """``n`` drafts: new assignments, and follow-ups of items assigned before."""
    out: list[Draft] = []
    for i in range(n):
        if assigned and rng.random() < FOLLOW_UP_SHARE:
            item = rng.choice(assigned)
            if rng.random() < 0.5:
                out.append(act(Updated, me=PROVINCE, item=item, to=TOWNSHIP,
                               title=f"（更新）农村人居环境整治第{i}项"))
            else:
                # Extend the deadlines far beyond the original ones.
                far = 4_000_000_000_000 + i
                out.append(act(Updated, me=PROVINCE, item=item, to=TOWNSHIP,
                               deadlines=Deadlines(deploy=far, feedback=far + 1,
                                                   resolve=far + 2),
                               description="按省政府专题会议要求延期，并补充整改要求。"))
        else:
            out.append(assign(
                me=PROVINCE, assignee=TOWNSHIP, title=f"农村人居环境整治第{i}项",
                description="按照省委常委会部署，于规定时限内研究部署并反馈办理情况。" * 2,
                board=rng.choice(("daily", "key_task", "reform", "engineering")),
                item_class=rng.choice(("general", "general", "major")),
            ))
    return out


async def append_single(store: EventLog, drafts: Sequence[Draft]) -> list[Event]:
    """``EventLog.append_own`` with one Ed25519 signature per event instead of a Merkle batch."""
    now = store.clock.now_ms()
    async with store.db.write() as conn:
        seq = _int(await store.get_meta(conn, "own_seq"))
        lamport = _int(await store.get_meta(conn, "lamport"))
        events = [d(seq + i + 1, lamport + i + 1, now) for i, d in enumerate(drafts)]
        accepted = []
        for ev in events:
            env = envelope.sign(store.key, *encode_event(ev))
            accepted.append(Accepted(env=env, event=ev, origin=ev.origin, origin_seq=ev.seq))
        await store.insert_accepted(conn, accepted, SELF, now)
        await store.set_meta(conn, "own_seq", codec.encode(seq + len(events)))
        await store.set_meta(conn, "lamport", codec.encode(lamport + len(events)))
    return events


def _int(raw: bytes | None) -> int:
    value = codec.decode(raw) if raw is not None else 0
    assert type(value) is int
    return value


async def queue_events(data: Path, n: int, *, signing: str, sign_batch: int, seed: int) -> int:
    """Write ``n`` events for the township into the (stopped) province's database;
    returns how many items they assign."""
    rng = random.Random(seed)
    ctx = await open_node(cfg.load(data), SystemClock())
    try:
        assigned: list[str] = []
        left = n
        while left:
            chunk = _drafts(min(sign_batch, left), rng, assigned)
            if signing == "batch":
                events = [ev for ev, _ in await ctx.store.append_own(chunk)]
            else:
                events = await append_single(ctx.store, chunk)
            assigned += [ev.item for ev in events if ev.TYPE == "item.assigned"]
            left -= len(chunk)
    finally:
        await ctx.close()
    return len(assigned)


# ----------------------------------------------------------------- timing


def applied(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM events WHERE origin = ?", (PROVINCE,)).fetchone()
    return int(row[0])


def wait_applied(db: Path, n: int, timeout: float) -> float:
    """Poll the township's database read-only until it holds ``n`` province events."""
    deadline = time.perf_counter() + timeout
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    try:
        while True:
            if applied(conn) >= n:
                return time.perf_counter()
            if time.perf_counter() > deadline:
                raise SystemExit(f"only {applied(conn)} of {n} events arrived in {timeout} s")
            time.sleep(0.002)
    finally:
        conn.close()


def unfolded(conn: sqlite3.Connection) -> int:
    """Received events whose items are not folded into rows yet (node/items/materialiser.py)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'materialised_pos'").fetchone()
    done = _int(row[0] if row else None)
    return int(conn.execute("SELECT count(*) FROM events WHERE pos > ?", (done,)).fetchone()[0])


def wait_folded(db: Path, timeout: float) -> float:
    """Poll until every received event is folded into the township's item rows."""
    deadline = time.perf_counter() + timeout
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    try:
        while unfolded(conn):
            if time.perf_counter() > deadline:
                raise SystemExit(f"{unfolded(conn)} events still unfolded after {timeout} s")
            time.sleep(0.002)
        return time.perf_counter()
    finally:
        conn.close()


def check_township(db: Path, n: int, n_items: int) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        refused = conn.execute("SELECT count(*) FROM refused").fetchone()[0]
        items = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        got = applied(conn)
    finally:
        conn.close()
    if refused or got != n or items != n_items:
        raise SystemExit(f"township holds {got} of {n} events, {items} of {n_items} items "
                         f"and {refused} refusals")
    return f"{got} events, {items} items, 0 refused"


async def stages(parent_dir: Path, child_dir: Path, n: int) -> str:
    """The township's work alone, in this process, on a copy taken before the catch-up:
    the province's outbox pages are read here and handed to the township's ingest, and
    the CPU time (``time.process_time``) of each stage is summed. Steadier than wall
    time on a shared machine, and it splits the work the way the node does it.
    Decoding stays in this process (``sync.decode_processes`` 0) and is timed apart
    from the checks: it is what the decoding worker does in a node."""
    from node.storage.events import PARENT
    from node.sync.catchup.decoder import Decoder

    parent = await open_node(cfg.load(parent_dir), SystemClock())
    child = await open_node(cfg.load(child_dir), SystemClock())
    child.ingestor.decoder = Decoder(0)
    try:
        decode = prepare = commit = main_commit = 0.0
        after = 0
        got = 0
        while True:
            raws, through, _more = await parent.outbox.page(
                TOWNSHIP, after, limit=child.batch_events, max_bytes=child.batch_bytes
            )
            if not raws:
                break
            t0 = time.process_time()
            decoded = await child.ingestor.decode(raws)
            t1 = time.process_time()
            ready = await child.ingestor.prepare(PARENT, raws, decoded)
            t2, m2 = time.process_time(), time.thread_time()
            result = await child.ingestor.commit(ready, applied_pos=through)
            t3, m3 = time.process_time(), time.thread_time()
            decode, prepare, commit = decode + t1 - t0, prepare + t2 - t1, commit + t3 - t2
            main_commit += m3 - m2
            got += result.accepted
            after = through
        t0 = time.process_time()
        await child.store.materialise_all()
        fold = time.process_time() - t0
    finally:
        await child.close()
        await parent.close()
    if got != n:
        raise SystemExit(f"in-process stages applied {got} of {n} events")
    return (f"township stages in one process (CPU s, this process's threads): decode "
            f"{decode:.3f} (the worker's part), checks and verify {prepare:.3f}, commit "
            f"{commit:.3f} (main thread {main_commit:.3f}), together "
            f"{decode + prepare + commit:.3f}; folding the item rows afterwards {fold:.3f}")


# ---------------------------------------------------------------- profiles


# Runs the CLI under cProfile, profiling only between SIGUSR2 (start) and SIGUSR1
# (stop and write the profile to argv[1]): the catch-up, not start-up or shutdown.
CPROFILE_WRAPPER = """
import cProfile, runpy, signal, sys
out, profile = sys.argv.pop(1), cProfile.Profile()
signal.signal(signal.SIGUSR2, lambda *_: profile.enable())
signal.signal(signal.SIGUSR1, lambda *_: (profile.disable(), profile.dump_stats(out)))
runpy.run_module("node.cli", run_name="__main__", alter_sys=True)
"""


def cprofile_summary(path: Path, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def spy_prefix(out: Path) -> list[str]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return [spy, "record", "--nonblocking", "--threads", "--function", "--rate", "500",
            "--format", "raw", "-o", str(out), "--"]


def pyspy_summary(path: Path, top: int) -> str:
    """Samples per thread, then per function: inclusive (on the stack) and own (the leaf).

    Only functions of this project and the libraries' entry points matter here, so
    the inclusive list keeps frames from node/, protocol/ and sqlalchemy/aiosqlite.
    """
    threads: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        samples = int(count)
        total += samples
        threads[frames[0].split(":")[-1].strip()] += samples
        own[frames[-1]] += samples
        for name in set(frames[1:]):
            if any(part in name for part in ("node/", "protocol/")):
                inclusive[name] += samples
    if not total:
        return "no samples"
    lines = [f"{total} samples; per thread:"]
    lines += [f"{c / total:6.1%}  {name}" for name, c in threads.most_common(8)]
    lines.append("inclusive (node/, protocol/):")
    lines += [f"{c / total:6.1%}  {name}" for name, c in inclusive.most_common(top)]
    lines.append("own time:")
    lines += [f"{c / total:6.1%}  {name}" for name, c in own.most_common(top)]
    return "\n".join(lines)


# -------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--signing", choices=("batch", "single"), default="batch")
    parser.add_argument("--sign-batch", type=int, default=1000,
                        help="events per Merkle batch (and per write when queueing)")
    parser.add_argument("--batch-events", type=int, help="sync.batch_events of both nodes")
    parser.add_argument("--verify-threads", type=int, help="sync.verify_threads of the township")
    parser.add_argument("--decode-processes", type=int,
                        help="sync.decode_processes of the township (0: decode in place)")
    parser.add_argument("--profile", choices=("none", "cprofile", "py-spy"), default="none")
    parser.add_argument("--top", type=int, default=30, help="profile lines to print")
    parser.add_argument("--keep", help="keep the nodes in this (new) directory")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeline", action="store_true",
                        help="print the township's page-by-page timeline (it runs with -v)")
    parser.add_argument("--stages", action="store_true",
                        help="also time the township's stages in one process (CPU seconds)")
    args = parser.parse_args()
    n = args.events

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="duban-catchup-"))
    root.mkdir(parents=True, exist_ok=True)
    parent_dir, child_dir = root / PROVINCE, root / TOWNSHIP
    parent = NodeProcess(parent_dir, free_port(), root / "province.log")
    child = NodeProcess(child_dir, free_port(), root / "township.log")
    try:
        cli("init", "--data", str(parent_dir), "--id", PROVINCE, "--name", "山西省",
            "--level", "province", "--listen", f"127.0.0.1:{parent.port}")
        settings: dict[str, object] = {}
        if args.batch_events:
            settings["sync.batch_events"] = args.batch_events
        tune(parent_dir, settings)
        parent.start()
        parent.wait_ready()
        code = cli("invite", "--data", str(parent_dir), "--child", TOWNSHIP,
                   "--name", "某某乡", "--level", "township").strip()
        cli("join", "--data", str(child_dir), "--parent", f"http://127.0.0.1:{parent.port}",
            "--code", code, "--listen", f"127.0.0.1:{child.port}")
        if args.verify_threads:
            settings["sync.verify_threads"] = args.verify_threads
        if args.decode_processes is not None:
            settings["sync.decode_processes"] = args.decode_processes
        tune(child_dir, settings)
        # One session online so the link is established, then the township goes offline.
        child.start()
        child.wait_ready()
        time.sleep(0.5)
        child.stop()
        parent.stop()

        start = time.perf_counter()
        n_items = asyncio.run(queue_events(parent_dir, n, signing=args.signing,
                                 sign_batch=args.sign_batch, seed=args.seed))
        print(f"queued {n} events ({args.signing}-signed) at the province in "
              f"{time.perf_counter() - start:.2f} s", flush=True)
        if args.stages:
            shutil.copytree(child_dir, root / "township-before")

        prefix: list[str] = []
        python: list[str] = []
        profile_out = root / "township.prof"
        if args.profile == "cprofile":
            python = ["-c", CPROFILE_WRAPPER, str(profile_out)]
        elif args.profile == "py-spy":
            profile_out = root / "township.spy"
            prefix = spy_prefix(profile_out)
        parent.start(spy_prefix(root / "province.spy") if args.profile == "py-spy" else ())
        parent.wait_ready()
        t0 = time.perf_counter()
        child.start(prefix, python, verbose=args.timeline)
        child.wait_ready()
        t_ready = time.perf_counter()
        if args.profile == "cprofile":
            os.kill(child.node_pid(), signal.SIGUSR2)
        cpu_ready = cpu_seconds(child.node_pid())
        main_ready = cpu_seconds(child.node_pid(), child.node_pid())
        worker_ready = children_cpu_seconds(child.node_pid())
        parent_ready = cpu_seconds(parent.node_pid())
        t_done = wait_applied(child_dir / cfg.DB_NAME, n, timeout=600)
        cpu_done = cpu_seconds(child.node_pid())
        main_done = cpu_seconds(child.node_pid(), child.node_pid())
        worker_done = children_cpu_seconds(child.node_pid())
        parent_done = cpu_seconds(parent.node_pid())
        if args.profile == "cprofile":  # the window only, not the folding after it
            os.kill(child.node_pid(), signal.SIGUSR1)
            for _ in range(500):
                if profile_out.exists():
                    break
                time.sleep(0.02)
            time.sleep(0.2)  # let it finish writing
        t_folded = wait_folded(child_dir / cfg.DB_NAME, timeout=600)
        cpu_folded = cpu_seconds(child.node_pid())
        child.stop()
        parent.stop()
        print(f"township: {check_township(child_dir / cfg.DB_NAME, n, n_items)}")
        print(f"process start to serving {t_ready - t0:.3f} s; "
              f"start to all applied {t_done - t0:.3f} s; township CPU while catching up "
              f"{cpu_done - cpu_ready:.2f} s, its decoding worker "
              f"{worker_done - worker_ready:.2f} s, "
              f"the province {parent_done - parent_ready:.2f} s "
              f"(load average {os.getloadavg()[0]:.1f})")
        main_cpu = main_done - main_ready
        print(f"township threads while catching up: the main thread (event loop) "
              f"{main_cpu:.2f} s, the others {cpu_done - cpu_ready - main_cpu:.2f} s "
              "(mostly the database writer's)")
        print(f"item rows folded {t_folded - t_ready:.3f} s after serving (township CPU "
              f"{cpu_folded - cpu_ready:.2f} s): the ledger shows every item")
        if args.profile == "cprofile":
            print(cprofile_summary(profile_out, args.top))
        elif args.profile == "py-spy":
            print("== township ==")
            print(pyspy_summary(profile_out, args.top))
            print("== province ==")
            print(pyspy_summary(root / "province.spy", args.top))
        if args.timeline:
            print("township timeline (logged by the sync client, page by page):")
            for line in (root / "township.log").read_text(encoding="utf-8").splitlines():
                if "catch-up page" in line:
                    print("  " + line.partition("node.sync.client: ")[2])
        if args.stages:
            shutil.copytree(root / "township-before", root / "township-stages")
            print(asyncio.run(stages(parent_dir, root / "township-stages", n)))
        seconds = t_done - t_ready
        print(f"catchup events={n} seconds={seconds:.3f} rate={n / seconds:.0f}/s")
    finally:
        child.stop(10)
        parent.stop(10)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
