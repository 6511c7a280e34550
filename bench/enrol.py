"""How long a generated tree takes to enrol in one process, and what each join costs as
the tree grows (issue 22: enrolling in order was quadratic).

The tree: 1 province, ``--cities`` cities, ``--counties`` counties per city and
``--townships`` townships per county (default 1 + 4 + 16 + 160 = 181 nodes, the tree of
``bench/cascade.py``), built with ``node.demo.localtree.build``: every child enrols
with its parent over HTTP (``duban join``'s code) and starts serving. ``--at-once 1``
enrols one node at a time, as before issue 22; the default is localtree's own bound,
a level's nodes at once. Each join (``node.setup.join_parent``: the code's lookup,
the signed request, the new database with its migrations, its trust records) is
timed; the figures: the whole creation, the first and last ten joins, and the slope
of a join's time against the number of nodes already running (least squares; with
joins at once a join's time includes waiting for the others, so read the slope with
``--at-once 1``).

To measure code without ``at_once`` (older), run with that code first on the path:
``PYTHONPATH=/path/to/old/tree python bench/enrol.py --at-once 1``.

The last line: ``enrol nodes=N at_once=K create_s=X join_ms_first=A join_ms_last=B
slope_ms_per_node=S``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/protocol.py is named like the package: keep bench/ off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import asyncio
import inspect
import logging
import shutil
import tempfile
import time
from typing import Any

from node.clock import SystemClock
from node.demo import localtree
from node.demo.localtree import Shape


def shape_of(cities: int, counties: int, townships: int) -> Shape:
    shape: Shape = [("14", None, "省", "province")]
    for c in range(1, cities + 1):
        city = f"14{c:02d}"
        shape.append((city, "14", f"市{c}", "city"))
        for k in range(1, counties + 1):
            county = f"{city}{k:02d}"
            shape.append((county, city, f"县{c}-{k}", "county"))
            for w in range(1, townships + 1):
                shape.append((f"{county}{w:03d}", county, f"镇{c}-{k}-{w}", "township"))
    return shape


async def run(shape: Shape, at_once: int | None) -> None:
    joins: list[tuple[int, float]] = []  # (nodes running when it began, seconds)
    real_join = localtree.join_parent
    running = [1]

    async def timed_join(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        before = running[0]
        config = await real_join(*args, **kwargs)
        joins.append((before, time.perf_counter() - began))
        running[0] += 1
        return config

    localtree.join_parent = timed_join  # type: ignore[assignment]
    kwargs: dict[str, Any] = {}
    if at_once is not None:
        if "at_once" in inspect.signature(localtree.build).parameters:
            kwargs["at_once"] = at_once
        elif at_once != 1:
            raise SystemExit("this code's localtree.build enrols in order: use --at-once 1")
    elif "at_once" in inspect.signature(localtree.build).parameters:
        at_once = localtree.ENROL_AT_ONCE
    else:
        at_once = 1
    root = Path(tempfile.mkdtemp(prefix="duban-enrol-"))
    try:
        began = time.monotonic()
        tree = await localtree.build(root, SystemClock(), shape, **kwargs)
        created = time.monotonic() - began
        await tree.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ms = [d * 1000 for _n, d in joins]
    first = sum(ms[:10]) / max(1, len(ms[:10]))
    last = sum(ms[-10:]) / max(1, len(ms[-10:]))
    xs = [float(n) for n, _d in joins]
    mean_x, mean_y = sum(xs) / len(xs), sum(ms) / len(ms)
    var = sum((x - mean_x) ** 2 for x in xs)
    covar = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ms, strict=True))
    slope = covar / var if var else 0.0
    print(f"created {len(shape)} nodes in {created:.1f} s ({len(joins)} joins, "
          f"{sum(ms) / 1000:.1f} s of join time)")
    print(f"enrol nodes={len(shape)} at_once={at_once} create_s={created:.1f} "
          f"join_ms_first={first:.0f} join_ms_last={last:.0f} slope_ms_per_node={slope:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cities", type=int, default=4)
    parser.add_argument("--counties", type=int, default=4)
    parser.add_argument("--townships", type=int, default=10)
    parser.add_argument("--at-once", type=int, default=None,
                        help="nodes of a level enrolled at once (default: localtree's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(run(shape_of(args.cities, args.counties, args.townships), args.at_once))


if __name__ == "__main__":
    main()
