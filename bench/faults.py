"""The long fault run: a four-level chain of ``duban run`` processes under chaos and kills.

A province, a city, a county and a township run as real processes on loopback,
each child reaching its parent through a :class:`tests.faults.proxy.ChaosProxy`
(cuts at random byte offsets, resets, stalls, delays). For ``--seconds`` a
leader at every node assigns items through the HTTP API while the proxies
misbehave and, every ``--kill-every`` seconds, a random node is killed with
SIGKILL and restarted. Then the proxies heal and the run waits for convergence;
the checker of the test suite (tests/faults/checker.py) gives the verdict, and
a fresh write at every node must be acknowledged and reach everywhere.

Printed: acknowledged writes, indeterminate ones, lost, doubled, time to
converge after healing, the worst delay from a write's 201 to the province
holding it (the worst link stall as a user sees it), the proxies' fault counts,
and RSS and open fds of every node process after its start and at the end.
The run never fails on a time; it exits 1 when the verdict finds a problem.

Run: python bench/faults.py [--seconds 60] [--seed 1371] [--kill-every 10]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/protocol.py is named like the package: keep bench/ off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import random
import shutil
import sqlite3
import tempfile
import time

import aiohttp

from tests.faults import checker
from tests.faults.procs import NodeProcess, enroll, kill_all, make_nodes
from tests.faults.proxy import ChaosProxy, Faults
from tests.faults.tree import Outcome, keep_writing, targets, write_item

TREE: dict[str, str | None] = {"14": None, "1401": "14", "140105": "1401",
                               "140105001": "140105"}
NAMES = {"14": ("山西省", "province"), "1401": ("太原市", "city"),
         "140105": ("小店区", "county"), "140105001": ("小店区第1镇", "township")}
SETTINGS = {
    "sync.long_poll_seconds": 5,
    "sync.retry_initial_seconds": 0.05,
    "sync.retry_max_seconds": 1.0,
    "sync.batch_events": 100,
}
ROOT_ID = "14"


async def watch_root(db: Path, seen: dict[str, float], stop: asyncio.Event) -> None:
    """When each item first appears at the province (polled read-only, 5 times a second)."""
    while not stop.is_set():
        try:
            for (item,) in checker.read(db, "SELECT item_id FROM events WHERE type = ?",
                                        checker.ASSIGNED):
                seen.setdefault(item, time.monotonic())
        except sqlite3.Error:
            pass
        await asyncio.sleep(0.2)


async def killer(nodes: dict[str, NodeProcess], every: float, rng: random.Random,
                 stop: asyncio.Event, kills: list[str]) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=rng.uniform(0.5, 1.5) * every)
            return
        except TimeoutError:
            pass
        victim = nodes[rng.choice(list(TREE))]
        victim.kill()
        kills.append(victim.id)
        await asyncio.sleep(rng.uniform(0, 1))
        victim.start()
        await asyncio.to_thread(victim.wait_ready)


async def writer_loop(session: aiohttp.ClientSession, node: NodeProcess, outcome: Outcome,
                      acked_at: dict[str, float], stop: asyncio.Event,
                      rng: random.Random) -> None:
    inner = asyncio.Event()
    task = asyncio.create_task(keep_writing(session, TREE, node.id, node.url, node.token,
                                            outcome, inner, rng, pause=0.1))
    known = 0
    while not stop.is_set():
        await asyncio.sleep(0.05)
        for w in outcome.acked[known:]:
            acked_at.setdefault(w.item, time.monotonic())
        known = len(outcome.acked)
    inner.set()
    await task
    for w in outcome.acked[known:]:
        acked_at.setdefault(w.item, time.monotonic())


async def run(args: argparse.Namespace, root: Path) -> int:
    rng = random.Random(args.seed)
    nodes = make_nodes(root, TREE)
    proxies: dict[str, ChaosProxy] = {}
    try:
        for i, (child, parent) in enumerate(TREE.items()):
            if parent is not None:
                proxies[child] = ChaosProxy(nodes[parent].port, seed=args.seed * 1000 + i,
                                            name=f"{child}->{parent}")
                await proxies[child].start()
        await enroll(nodes, TREE, NAMES, SETTINGS,
                     parent_url={c: p.url for c, p in proxies.items()})
        await asyncio.sleep(2)
        before = {n: node.pid_rss_fds() for n, node in nodes.items()}

        outcome = Outcome()
        acked_at: dict[str, float] = {}
        seen: dict[str, float] = {}
        kills: list[str] = []
        stop, watching = asyncio.Event(), asyncio.Event()
        watcher = asyncio.create_task(watch_root(nodes[ROOT_ID].db, seen, watching))
        for proxy in proxies.values():
            proxy.set_faults(Faults.chaos())
        print(f"seed {args.seed}: chaos for {args.seconds} s, a kill every "
              f"~{args.kill_every} s", flush=True)
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(writer_loop(session, node, outcome, acked_at, stop,
                                                     random.Random(rng.random())))
                     for node in nodes.values()]
            if args.kill_every > 0:
                tasks.append(asyncio.create_task(
                    killer(nodes, args.kill_every, rng, stop, kills)))
            await asyncio.sleep(args.seconds)
            stop.set()
            await asyncio.gather(*tasks)
            for proxy in proxies.values():
                proxy.heal()
            healed = time.monotonic()
            dbs = {n: node.db for n, node in nodes.items()}
            converge = None
            while time.monotonic() - healed < args.converge_timeout:
                if checker.converged(TREE, dbs, outcome.acked):
                    converge = time.monotonic() - healed
                    break
                await asyncio.sleep(0.1)
            verdict = checker.check(TREE, dbs, outcome.acked)

            fresh = Outcome()
            for node in nodes.values():
                await write_item(session, node.url, node.token, node.id,
                                 targets(TREE, node.id)[0], f"{node.id} 恢复后新事项", fresh)
            end = time.monotonic() + args.converge_timeout
            while time.monotonic() < end and not checker.converged(TREE, dbs, fresh.acked):
                await asyncio.sleep(0.1)
            fresh_verdict = checker.check(TREE, dbs, outcome.acked + fresh.acked)
        watching.set()
        await watcher
        after = {n: node.pid_rss_fds() for n, node in nodes.items()}

        delays = [seen[i] - acked_at[i] for i in acked_at
                  if i in seen and any(w.item == i and ROOT_ID in checker.must_reach(
                      TREE, w.node, w.to) for w in outcome.acked)]
        print(f"acknowledged={len(outcome.acked)} indeterminate={outcome.indeterminate} "
              f"lost={verdict.lost} doubled={verdict.doubled} problems={len(verdict.problems)}")
        print(f"refusals={outcome.refusals} errors={outcome.errors}")
        print(f"kills={len(kills)} {kills}")
        print("converge_after_heal_s=" + (f"{converge:.2f}" if converge is not None
                                          else f">{args.converge_timeout:.0f} (not converged)"))
        if delays:
            print(f"ack_to_province_s max={max(delays):.2f} "
                  f"median={sorted(delays)[len(delays) // 2]:.2f} (n={len(delays)})")
        print(f"fresh_writes={len(fresh.acked)}/{len(TREE)} "
              f"fresh_ok={fresh_verdict.ok}")
        for proxy in proxies.values():
            print(proxy.summary())
        for n in TREE:
            (rss0, fd0), (rss1, fd1) = before[n], after[n]
            print(f"node {n}: rss_kb {rss0} -> {rss1}, fds {fd0} -> {fd1}"
                  f"{' (restarted)' if n in kills else ''}")
        for problem in (verdict.problems + fresh_verdict.problems)[:20]:
            print("PROBLEM", problem)
        return 0 if verdict.ok and fresh_verdict.ok and len(fresh.acked) == len(TREE) else 1
    finally:
        for proxy in proxies.values():
            await proxy.close()
        kill_all(nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the chaos")
    parser.add_argument("--seed", type=int, default=1371)
    parser.add_argument("--kill-every", type=float, default=10.0,
                        help="mean seconds between SIGKILLs (0: none)")
    parser.add_argument("--converge-timeout", type=float, default=180.0)
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="duban-faults-"))
    try:
        code = asyncio.run(run(args, root))
    finally:
        if args.keep:
            print(f"data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
