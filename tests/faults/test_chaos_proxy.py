"""A chain under a misbehaving network: every write acknowledged survives, once.

Province → city → county → township, each a real aiohttp server in this process
with its own SQLite file; each child reaches its parent through a
:class:`ChaosProxy` that cuts requests and responses at random byte offsets
(FIN or RST), stalls, delays and refuses connections. Meanwhile a leader at every
node keeps assigning items through the HTTP API. Then the proxies heal, and the
checker (tests/faults/checker.py) must find every acknowledged write exactly
once wherever it belongs, mirrors equal to their owners, rows equal to folds,
and every node able to write and sync again.

The seed is ``DUBAN_FAULT_SEED`` (printed on failure).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from pathlib import Path

import aiohttp
import pytest

from node.clock import SystemClock
from tests.faults import checker
from tests.faults.proxy import Faults
from tests.faults.tree import (
    CHAIN,
    Outcome,
    ProxiedTree,
    fresh_writes,
    keep_writing,
    proxied,
    write_item,
)
from tests.federation import eventually

SEED = int(os.environ.get("DUBAN_FAULT_SEED", "1371"))
CHAOS_SECONDS = 6.0
CONVERGE_SECONDS = 30.0  # after healing; well under the 60 s a stuck request would take


async def chaos_run(fed: ProxiedTree, seconds: float, faults: Faults, seed: int) -> Outcome:
    """Writers at every node for ``seconds`` while every proxy applies ``faults``."""
    rng = random.Random(seed)
    outcome = Outcome()
    stop = asyncio.Event()
    for proxy in fed.proxies.values():
        proxy.set_faults(faults)
    for proxy in fed.proxies.values():
        proxy.faults = faults
    async with aiohttp.ClientSession() as session:
        writers = [
            asyncio.create_task(keep_writing(session, fed.parents, node, fed[node].url,
                                             fed.tokens[node], outcome, stop,
                                             random.Random(rng.random())))
            for node in fed.parents
        ]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*writers)
    fed.heal()
    return outcome


async def settle_and_check(fed: ProxiedTree, writes: list[checker.Write]) -> checker.Verdict:
    try:
        await eventually(lambda: _converged(fed, writes), timeout=CONVERGE_SECONDS,
                         what="convergence after healing")
    except AssertionError:
        pass  # the verdict says what is missing
    return checker.check(fed.parents, fed.dbs, writes)


async def _converged(fed: ProxiedTree, writes: list[checker.Write]) -> bool:
    return checker.converged(fed.parents, fed.dbs, writes)


def report(fed: ProxiedTree, seed: int, outcome: Outcome) -> str:
    lines = [f"seed {seed}; acked {len(outcome.acked)}, indeterminate {outcome.indeterminate}, "
             f"refusals {outcome.refusals}, errors {outcome.errors}"]
    lines += [proxy.summary() for proxy in fed.proxies.values()]
    return "\n".join(lines)


async def test_chain_under_chaos_loses_and_doubles_nothing(tmp_path: Path) -> None:
    async with proxied(tmp_path, SystemClock(), CHAIN, seed=SEED) as fed:
        outcome = await chaos_run(fed, CHAOS_SECONDS, Faults.chaos(), SEED)
        stats = [p.stats for p in fed.proxies.values()]
        # The faults did happen (a quiet run would prove nothing).
        print(report(fed, SEED, outcome))
        assert sum(s.cuts_request for s in stats) and sum(s.cuts_response for s in stats)
        assert sum(s.resets for s in stats) and sum(s.stalls for s in stats)
        assert len(outcome.acked) >= 20, report(fed, SEED, outcome)
        verdict = await settle_and_check(fed, outcome.acked)
        assert verdict.ok, report(fed, SEED, outcome) + "\n" + "\n".join(verdict.problems[:20])

        # Every node can write afterwards, and its write reaches everywhere.
        async with aiohttp.ClientSession() as session:
            urls = {n: fed[n].url for n in fed.parents}
            fresh = await fresh_writes(session, fed.parents, urls, fed.tokens)
        verdict = await settle_and_check(fed, outcome.acked + fresh)
        verdict.assert_ok()


async def test_a_black_holed_connection_does_not_block_the_link(tmp_path: Path) -> None:
    """A connection that goes silent forever (no FIN, no RST) costs the link at most
    a progress timeout (``sync.read_timeout_seconds`` of silence, here 5 s), not the
    whole request timeout (60 s): the next write reaches the parent soon after."""
    shape = CHAIN[:2]
    # Long-polls of 25 s: a request that stays quiet that long is normal for a pull;
    # the black hole below swallows a push (a POST) or the answer to it.
    async with proxied(tmp_path, SystemClock(), shape, seed=SEED,
                       extra={"sync.long_poll_seconds": 25,
                              "sync.request_timeout_seconds": 60.0,
                              "sync.read_timeout_seconds": 5.0}) as fed:
        proxy = fed.proxies["1401"]
        async with aiohttp.ClientSession() as session:
            outcome = Outcome()
            urls = {n: fed[n].url for n in fed.parents}
            writes = await fresh_writes(session, fed.parents, urls, fed.tokens)
            await eventually(lambda: _converged(fed, writes), timeout=20, what="first sync")
            # Every new connection now stalls forever right after its first bytes...
            proxy.set_faults(Faults(stall=1.0, stall_seconds=float("inf")))
            # ...a write at the city is pushed into one of them...
            assert await write_item(session, fed["1401"].url, fed.tokens["1401"], "1401",
                                    "1401", "黑洞期间的事项", outcome) == 201
            await asyncio.sleep(1.0)
            assert proxy.stats.stalls >= 1
            proxy.heal()  # ...and the network is fine again for every new connection.
            # Documented promise: a link makes progress again within the read timeout
            # of a stall (docs/sync.md, "Faults"), well before the 60 s request timeout.
            await eventually(lambda: _converged(fed, writes + outcome.acked), timeout=20,
                             what="the link to recover from a black-holed connection")


async def test_cut_answers_are_not_replayed_requests(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A response cut in the middle makes the child ask again — with a new signed
    header, never the same nonce (the parent would log a replay and refuse it)."""
    caplog.set_level(logging.WARNING)
    async with proxied(tmp_path, SystemClock(), CHAIN[:2], seed=SEED) as fed:
        outcome = await chaos_run(
            fed, 3.0, Faults(cut_response=0.3, reset=0.5), SEED + 1)
        assert fed.proxies["1401"].stats.cuts_response > 0
        verdict = await settle_and_check(fed, outcome.acked)
        verdict.assert_ok()
    replayed = [r.getMessage() for r in caplog.records if "replayed" in r.getMessage()]
    assert not replayed, f"{len(replayed)} replayed requests, e.g. {replayed[:3]}"
