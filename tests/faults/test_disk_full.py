"""A full disk: clear refusals, no acknowledged write lost, resumption by itself.

A province → city → county chain in this process; the city's data directory
(SQLite file, WAL, key) lives on a small filesystem of its own
(tests/faults/disk.py). After a healthy start the filesystem is filled to the
last byte. Writers then keep assigning through the API at every node for a
while: the city must refuse what it cannot store with ``503 storage_full``
(never a bare 500), and the province and county keep acknowledging theirs,
which cannot reach the city now. Then the filler is deleted, and — without any
restart — the city must resume by itself: every acknowledged write reaches
everywhere it belongs, exactly once, mirrors equal their owners, and every node
writes again.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import aiohttp

from node.clock import SystemClock
from node.demo.localtree import Shape
from tests.faults import checker
from tests.faults.disk import available, fill, free, small_filesystem
from tests.faults.tree import Outcome, fresh_writes, keep_writing, proxied, targets, write_item
from tests.federation import eventually

SEED = int(os.environ.get("DUBAN_FAULT_SEED", "1371"))
SHAPE: Shape = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140105", "1401", "小店区", "county"),
]
FULL = "1401"
FULL_SECONDS = 4.0
RESUME_SECONDS = 30.0


async def test_full_disk_refuses_clearly_and_resumes_by_itself(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    with small_filesystem(tmp_path / FULL, size_mb=32) as kind:
        async with proxied(tmp_path, SystemClock(), SHAPE, seed=SEED) as fed:
            outcome = Outcome()
            async with aiohttp.ClientSession() as session:
                for node in fed.parents:  # a healthy start
                    await write_item(session, fed[node].url, fed.tokens[node], node,
                                     targets(fed.parents, node)[0], f"{node} 满盘前事项", outcome)
                await eventually(lambda: _converged(fed, outcome.acked), timeout=20,
                                 what="a healthy start")

                filler = fill(tmp_path / FULL)
                assert available(tmp_path / FULL) < 64 * 1024, f"{kind} not full"
                stop = asyncio.Event()
                writers = [
                    asyncio.create_task(keep_writing(
                        session, fed.parents, node, fed[node].url, fed.tokens[node], outcome,
                        stop, random.Random(rng.random()), pause=0.05))
                    for node in fed.parents
                ]
                await asyncio.sleep(FULL_SECONDS)
                stop.set()
                await asyncio.gather(*writers)
                refusals = dict(outcome.refusals)
                context = (f"seed {SEED}, {kind} of {filler} B filler; acked "
                           f"{len(outcome.acked)}, refusals {refusals}, errors {outcome.errors}")
                # Nothing else than a clear "storage full" from the full node (checked
                # at the end, after what follows, which must hold in any case).
                refusals_ok = bool(refusals) and set(refusals) <= {"503 storage_full"}
                assert not outcome.indeterminate, context

                free(tmp_path / FULL)
                try:
                    await eventually(lambda: _converged(fed, outcome.acked),
                                     timeout=RESUME_SECONDS,
                                     what="the node to resume after space came back")
                except AssertionError:
                    pass  # the verdict says what is missing
                verdict = checker.check(fed.parents, fed.dbs, outcome.acked)
                assert verdict.ok, context + "\n" + "\n".join(verdict.problems[:20])
                assert refusals_ok, f"a full disk must answer 503 storage_full: {context}"

                urls = {n: fed[n].url for n in fed.parents}
                fresh = await fresh_writes(session, fed.parents, urls, fed.tokens)
                await eventually(lambda: _converged(fed, outcome.acked + fresh), timeout=20,
                                 what="fresh writes to sync")
                checker.check(fed.parents, fed.dbs, outcome.acked + fresh).assert_ok()


async def _converged(fed: object, writes: list[checker.Write]) -> bool:
    return checker.converged(fed.parents, fed.dbs, writes)  # type: ignore[attr-defined]
