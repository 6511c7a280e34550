"""How long importing the government tree from CSV takes: a province and a country.

Prints, for a generated province (~1,500 nodes) and a generated country
(~45,000 nodes): the best of three wall-clock times to parse and check the
file, to build the indexed tree, and nodes per second; then the cost of the
questions asked on the hot path (is_ancestor, next_hop) on the country tree.
Never fails on a time. Run: python bench/csv_import.py
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence

from hierarchy.csv_import import import_csv, read_rows
from hierarchy.synthetic import COUNTRY_LEVELS, generate_country_csv, generate_csv
from hierarchy.tree import DEFAULT_LEVELS, Tree


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(label: str, data: bytes, levels: Sequence[str]) -> Tree:
    tree = import_csv(data, levels)
    nodes = read_rows(data, levels)
    total = best(lambda: import_csv(data, levels))
    parse = best(lambda: read_rows(data, levels))
    build = best(lambda: Tree(nodes, levels))
    print(
        f"{label:<10} {len(tree):>7,} nodes {len(data) / 1e6:6.2f} MB  "
        f"import {total * 1000:8.1f} ms  (parse+check {parse * 1000:7.1f} ms, "
        f"index {build * 1000:7.1f} ms)  {len(tree) / total:>10,.0f} nodes/s"
    )
    return tree


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200_000)
    args = parser.parse_args(argv)

    province = generate_csv(11, 10, 13, bom=True).encode("utf-8")
    country = generate_country_csv(bom=True).encode("utf-8")
    measure("province", province, DEFAULT_LEVELS)
    tree = measure("country", country, COUNTRY_LEVELS)

    rng = random.Random(1)
    ids = [n.id for n in tree]
    pairs = [(rng.choice(ids), rng.choice(ids)) for _ in range(args.queries)]
    townships = [i for i in ids if len(i) == 9]
    hops = [rng.choice(townships) for _ in range(args.queries)]
    t_anc = best(lambda: [tree.is_ancestor(a, b) for a, b in pairs])
    t_hop = best(lambda: [tree.next_hop("CN", t) for t in hops])
    n = args.queries
    print(f"is_ancestor {n / t_anc:>12,.0f} /s   next_hop(root, township) {n / t_hop:>12,.0f} /s")


if __name__ == "__main__":
    main()
