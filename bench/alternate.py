"""Alternate catch-up runs of several source trees and print each one's medians.

On a shared machine the host's phase moves a catch-up's wall time a good deal
from minute to minute (docs/performance.md), so two versions are compared by
running them in turn, round after round, and comparing medians. Each tree is a
checkout of this repository (``git worktree add /tmp/wt-old REV``); its
``bench/catchup.py`` runs with ``PYTHONPATH`` set to it, so the nodes it starts
run that tree's code. A tree may carry extra arguments for its runs after a
``|``: ``"/tmp/wt-new|--batch-events 2000"``.

Run: python bench/alternate.py TREE[,TREE...] [--rounds 8] [-- catchup args]
e.g. python bench/alternate.py /tmp/wt-old,. --rounds 10
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

_CPU = re.compile(
    r"township CPU while catching up ([0-9.]+) s, its decoding worker ([0-9.]+) s,"
    r" the province ([0-9.]+) s"
)
_SECONDS = re.compile(r"^catchup events=\d+ seconds=([0-9.]+) ", re.MULTILINE)


def run(tree: str, args: list[str]) -> tuple[float, float, float, float]:
    """One catch-up of ``tree``: (seconds, township CPU, worker CPU, province CPU)."""
    path, _, more = tree.partition("|")
    root = str(Path(path).resolve())
    # Bytecode is written: a tree whose .pyc files are stale would compile its
    # modules at every start, the decoding worker's inside the timed window.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [sys.executable, "bench/catchup.py", *args, *more.split()],
        cwd=root,
        env={**env, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds, cpu = _SECONDS.search(done.stdout), _CPU.search(done.stdout)
    if done.returncode != 0 or seconds is None or cpu is None:
        output = done.stdout[-2000:] + done.stderr[-2000:]
        raise SystemExit(f"{tree}: the catch-up failed:\n{output}")
    township, worker, province = map(float, cpu.groups())
    return float(seconds.group(1)), township, worker, province


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", help="comma-separated checkouts, each maybe with |extra args")
    parser.add_argument("--rounds", type=int, default=8)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    opts = parser.parse_args(argv[:cut])
    trees = opts.trees.split(",")
    args = argv[cut + 1 :] or ["--events", "10000"]  # for every bench/catchup.py run
    results: dict[str, list[tuple[float, float, float, float]]] = {t: [] for t in trees}
    for i in range(opts.rounds):
        for tree in trees:
            seconds, township, worker, province = figures = run(tree, args)
            results[tree].append(figures)
            print(f"round {i + 1}/{opts.rounds} {tree}: {seconds:.3f} s, CPU township "
                  f"{township:.2f} worker {worker:.2f} province {province:.2f}", flush=True)
    for tree, rows in results.items():
        seconds, township, worker, province = (list(c) for c in zip(*rows, strict=True))
        total = [a + b + c for a, b, c in zip(township, worker, province, strict=True)]
        print(f"median {tree}: {statistics.median(seconds):.3f} s (best {min(seconds):.3f},"
              f" {sum(s <= 0.7 for s in seconds)} of {len(seconds)} within 0.7 s), CPU"
              f" township {statistics.median(township):.2f} worker {statistics.median(worker):.2f}"
              f" province {statistics.median(province):.2f} total {statistics.median(total):.2f}")


if __name__ == "__main__":
    main()
