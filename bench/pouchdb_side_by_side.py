"""Duban's catch-up against PouchDB's replication, side by side.

The catch-up floor (docs/performance.md): a township catches up 10,000 signed
events at least 2x faster than PouchDB replicates 10,000 plain documents. This
runs, in turn for ``--rounds`` rounds, ``bench/catchup.py --events N`` (two real
nodes on loopback; the time from the township serving until it holds every
event) and ``bench/pouchdb/replicate.js --docs N`` (an express-pouchdb server on
loopback, a fresh on-disk local PouchDB replicating from it; the replication
alone), prints each round, both medians and the ratio pouchdb/duban. On a shared
machine only figures taken in the same minutes compare, hence the alternation.

The npm packages (pinned in bench/pouchdb/package-lock.json) are installed with
``npm ci`` on first use. Nothing fails on a time: the ratio is reported, and
whether it meets the floor, but the exit status is 0 either way.

Run: python bench/pouchdb_side_by_side.py [--rounds 5] [--events 10000]
                                          [-- extra bench/catchup.py arguments]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POUCH = ROOT / "bench" / "pouchdb"
FLOOR = 2.0
TIMEOUT = 900

_DUBAN = re.compile(r"^catchup events=(\d+) seconds=([0-9.]+) ", re.MULTILINE)
_POUCH = re.compile(r"^pouchdb docs=(\d+) seconds=([0-9.]+) ", re.MULTILINE)


def ensure_npm_packages() -> str:
    """The path of ``node``; runs ``npm ci`` in bench/pouchdb if its packages are missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise SystemExit(
            "the PouchDB side needs Node.js 18 or later with npm on PATH "
            f"(node: {node or 'missing'}, npm: {npm or 'missing'}); "
            "install them (e.g. apt-get install nodejs npm) and run this again"
        )
    marker = POUCH / "node_modules" / ".package-lock.json"
    lock = POUCH / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return node
    print(f"installing the PouchDB packages: npm ci in {POUCH}", flush=True)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=POUCH, capture_output=True, text=True,
        timeout=TIMEOUT, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"npm ci in {POUCH} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return node


def _run(command: list[str], pattern: re.Pattern[str], what: str, n: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    found = pattern.search(done.stdout)
    if done.returncode != 0 or found is None or int(found.group(1)) != n:
        raise SystemExit(f"{what} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return float(found.group(2))


def duban(n: int, extra: list[str]) -> float:
    """Seconds of one ``bench/catchup.py`` catch-up of ``n`` signed events."""
    command = [sys.executable, "bench/catchup.py", "--events", str(n), *extra]
    return _run(command, _DUBAN, "bench/catchup.py", n)


def pouchdb(node: str, n: int, batch_size: int) -> float:
    """Seconds of one PouchDB replication of ``n`` plain documents."""
    command = [node, str(POUCH / "replicate.js"), "--docs", str(n),
               "--batch-size", str(batch_size)]
    return _run(command, _POUCH, "bench/pouchdb/replicate.js", n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=10000,
                        help="Duban events and PouchDB documents, each side")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="PouchDB's replication batch_size (its default: 100)")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    opts = parser.parse_args(argv[:cut])
    extra = argv[cut + 1 :]
    n = opts.events
    node = ensure_npm_packages()

    duban_s: list[float] = []
    pouch_s: list[float] = []
    for i in range(opts.rounds):
        # Which side goes first alternates too, so neither always runs after the other.
        order = ("duban", "pouchdb") if i % 2 == 0 else ("pouchdb", "duban")
        for side in order:
            if side == "duban":
                duban_s.append(duban(n, extra))
            else:
                pouch_s.append(pouchdb(node, n, opts.batch_size))
        print(f"round {i + 1}/{opts.rounds}: duban {duban_s[-1]:.3f} s, pouchdb "
              f"{pouch_s[-1]:.3f} s, ratio {pouch_s[-1] / duban_s[-1]:.2f} "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    d, p = statistics.median(duban_s), statistics.median(pouch_s)
    ratio = p / d
    print(f"median duban: {d:.3f} s for {n} signed events (best {min(duban_s):.3f})")
    print(f"median pouchdb: {p:.3f} s for {n} plain documents (best {min(pouch_s):.3f})")
    verdict = "meets" if ratio >= FLOOR else "is below"
    print(f"ratio pouchdb/duban {ratio:.2f}: {verdict} the floor of {FLOOR:g}x")
    print(f"side_by_side events={n} rounds={opts.rounds} duban={d:.3f} "
          f"pouchdb={p:.3f} ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
