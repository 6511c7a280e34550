"""Crash safety with real processes: SIGKILL every level at random moments of a large sync.

A province, a city, a county and a township run as separate ``duban run``
processes on loopback, each with its own SQLite file. While they are stopped,
thousands of events are queued in both directions: each node assigns down its
subtree and to its own office, updates what it assigned, and deploys and reports
on what it received. Then all four run, and a seeded RNG kills them with SIGKILL
after random delays: a matrix in which every level is killed ``KILLS_PER_LEVEL``
times, in a random order, mostly while it syncs, sometimes while it starts. While
a node is down it sometimes writes new events of its own before it is restarted.
All the while a writer assigns items through the HTTP API of whichever nodes run;
each ``201`` it gets is an acknowledged write that must survive the next kill.

After everything settles, every node must hold exactly the queued events that
must reach it (nothing lost, nothing leaked), each once, gapless per origin;
every acknowledged API write exactly once wherever it belongs; every mirror
equal to its owner; every items row equal to a fresh fold; nothing refused; and
every node must still accept a write that then reaches everywhere.

The seed is ``DUBAN_CRASH_SEED`` (default 1370); the log of every node is
printed when the test fails.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from node import config as cfg
from node.clock import SystemClock
from node.context import open_node
from node.storage import schema as t
from node.storage.events import Draft
from node.workflow.drafts import act, assign
from protocol.events import Deadlines, Deployed, Feedback, Updated
from tests.faults import checker
from tests.faults.checker import must_reach, pending, read, unfolded
from tests.faults.procs import NodeProcess, enroll, kill_all, logs, make_nodes

SEED = int(os.environ.get("DUBAN_CRASH_SEED", "1370"))

PROVINCE, CITY, COUNTY, TOWNSHIP = "14", "1401", "140105", "140105001"
TREE: dict[str, str | None] = {PROVINCE: None, CITY: PROVINCE, COUNTY: CITY, TOWNSHIP: COUNTY}
NAMES = {PROVINCE: ("山西省", "province"), CITY: ("太原市", "city"),
         COUNTY: ("小店区", "county"), TOWNSHIP: ("小店区第1镇", "township")}
SETTINGS = {
    "sync.batch_events": 200,  # many small transactions: many moments to die between
    "sync.long_poll_seconds": 5,
    "sync.retry_initial_seconds": 0.05,
    "sync.retry_max_seconds": 0.5,
}
QUEUED = {PROVINCE: 1200, CITY: 600, COUNTY: 600, TOWNSHIP: 400}
KILLS_PER_LEVEL = 3
STALL_SECONDS = 30.0  # settling fails when nothing moves for this long...
SETTLE_SECONDS = 240.0  # ...or when it takes this long in all (a loaded machine is slow)


def in_subtree(node: str, top: str) -> bool:
    return checker.in_subtree(TREE, node, top)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, NodeProcess]]:
    made = make_nodes(tmp_path, TREE)
    yield made
    kill_all(made)  # never leave a process behind, pass or fail


# --------------------------------------------------------------------- events


@dataclass
class Ledger:
    """Every event this test queued, by id: (origin, to); the API writes acknowledged."""

    events: dict[str, tuple[str, str]] = field(default_factory=dict)
    counter: Counter[str] = field(default_factory=Counter)
    acked: list[checker.Write] = field(default_factory=list)
    unanswered: int = 0

    def title(self, node: str) -> str:
        self.counter[node] += 1
        return f"{node} 督办事项 {self.counter[node]}"


def _assign(me: str, to: str, title: str, rng: random.Random) -> Draft:
    return assign(
        me=me, assignee=to, title=title,
        description="按照会议部署研究落实，按时反馈办理情况。" * rng.randint(1, 3),
        board=rng.choice(("daily", "key_task", "reform")),
        item_class=rng.choice(("general", "major")),
        assignee_unit="office" if to == me else None,
    )


async def _items(ctx, where) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    async with ctx.db.read() as conn:
        rows = await conn.execute(
            select(t.items.c.item_id, t.items.c.assigner, t.items.c.assignee, t.items.c.status)
            .where(where)
            .order_by(t.items.c.item_id)
        )
        return [tuple(r) for r in rows]


async def write_events(
    node: NodeProcess, count: int, rng: random.Random, ledger: Ledger
) -> None:
    """``count`` new events of ``node``'s own, written into its database while it is
    stopped, in signed batches of random size (size 1 is a single signature).

    A node assigns down its subtree and to its own office, updates what it
    assigned, and deploys and reports on what it was assigned: always something
    it may do with what it holds, so no receiver has a reason to refuse it.
    """
    me = node.id
    below = [n for n in TREE if n != me and in_subtree(n, me)]
    ctx = await open_node(cfg.load(node.data), SystemClock())
    try:
        await ctx.store.materialise_all()  # killed before folding what it had received
        mine = await _items(ctx, t.items.c.assigner == me)
        received = await _items(
            ctx, (t.items.c.assignee == me) & (t.items.c.assigner != me)
        )
        drafts: list[tuple[Draft, str]] = []
        todo = {r[0]: r[3] for r in received if r[3] in ("assigned", "deployed")}
        for _ in range(count):
            roll = rng.random()
            if todo and roll < 0.4:
                item = rng.choice(sorted(todo))
                assigner = next(r[1] for r in received if r[0] == item)
                if todo.pop(item) == "assigned":
                    drafts.append((act(Deployed, me=me, item=item, to=assigner,
                                       note="已召开专题会议研究部署"), assigner))
                else:
                    drafts.append((act(Feedback, me=me, item=item, to=assigner,
                                       text="已完成阶段性任务", progress=rng.randint(10, 90),
                                       attachments=()), assigner))
            elif mine and roll < 0.55:
                item, _, assignee, _ = rng.choice(mine)
                far = 4_000_000_000_000 + rng.randint(0, 10**9)
                drafts.append((act(Updated, me=me, item=item, to=assignee,
                                   deadlines=Deadlines(deploy=far, feedback=far + 1,
                                                       resolve=far + 2)), assignee))
            else:
                to = rng.choice([*below, me] if below else [me])
                drafts.append((_assign(me, to, ledger.title(me), rng), to))
        while drafts:
            size = rng.choice((1, 1, 7, 50, 200))
            chunk, drafts = drafts[:size], drafts[size:]
            stored = await ctx.store.append_own([d for d, _ in chunk])
            for (event, env), (_, to) in zip(stored, chunk, strict=True):
                assert event.to == to
                ledger.events[env.event_id] = (me, to)
    finally:
        await ctx.close()


def api_writer(
    nodes: dict[str, NodeProcess], ledger: Ledger, stop: threading.Event, rng: random.Random
) -> None:
    """Assign items through the API of the nodes that run, until ``stop``."""
    n = 0
    while not stop.is_set():
        node = nodes[rng.choice(list(TREE))]
        if not node.running:
            time.sleep(0.01)
            continue
        n += 1
        children = [c for c, p in TREE.items() if p == node.id]
        write = node.write(rng.choice(children or [node.id]), f"{node.id} 接口事项 {n}")
        if write is None:
            ledger.unanswered += 1  # refused, cut by a kill, or committed unanswered
        else:
            ledger.acked.append(write)
        time.sleep(rng.uniform(0, 0.05))


# ----------------------------------------------------------------- inspection


def item_event_ids(node: NodeProcess) -> set[str]:
    return {r[0].hex() for r in read(node.db, "SELECT event_id FROM events "
                                              "WHERE item_id IS NOT NULL")}


def api_event_ids(node: NodeProcess, ledger: Ledger) -> set[str]:
    """Assignments made through the API (acknowledged or not): in no queued batch."""
    rows = read(node.db, "SELECT event_id FROM events WHERE type = ? AND item_id IS NOT NULL",
                checker.ASSIGNED)
    return {r[0].hex() for r in rows} - set(ledger.events)


def settle(nodes: dict[str, NodeProcess], ledger: Ledger) -> None:
    """Wait until every node holds what it must and every outbox is empty, or until
    nothing has moved for STALL_SECONDS (a lost event never arrives)."""
    start = last_move = time.monotonic()
    last: tuple[int, ...] = ()
    dbs = {n: node.db for n, node in nodes.items()}
    while time.monotonic() - last_move < STALL_SECONDS:
        if time.monotonic() - start > SETTLE_SECONDS:
            return
        try:
            held = [item_event_ids(node) - api_event_ids(node, ledger)
                    for node in nodes.values()]
            waiting = [pending(node.db) + unfolded(node.db) for node in nodes.values()]
        except sqlite3.Error:  # a node is creating its database: look again
            time.sleep(0.25)
            continue
        wanted = [
            {e for e, (o, to) in ledger.events.items() if node.id in must_reach(TREE, o, to)}
            for node in nodes.values()
        ]
        if (held == wanted and not any(waiting)
                and checker.converged(TREE, dbs, ledger.acked)):
            return
        now = (*map(len, held), *waiting)
        if now != last:
            last, last_move = now, time.monotonic()
        time.sleep(0.25)


def check_node(node: NodeProcess, ledger: Ledger, nodes: dict[str, NodeProcess]) -> None:
    me = node.id
    refused = read(node.db, "SELECT source, reason, detail FROM refused")
    assert not refused, f"{me} refused events: {refused[:5]}"

    # Nothing lost, nothing leaked: exactly the queued events that must reach this node;
    # besides them only assignments made through the API (checked by the checker).
    held = item_event_ids(node) - api_event_ids(node, ledger)
    want = {e for e, (o, to) in ledger.events.items() if me in must_reach(TREE, o, to)}
    assert held == want, (
        f"{me}: {len(want - held)} events missing, {len(held - want)} that do not belong"
    )

    # Each origin's stream is gapless where all of it must arrive: at itself and above.
    for origin in (me, *[n for n in TREE if me in checker.ancestors(TREE, n)]):
        seqs = sorted(r[0] for r in read(
            node.db, "SELECT origin_seq FROM events WHERE origin = ? AND item_id IS NOT NULL",
            origin))
        queued = sum(1 for o, _ in ledger.events.values() if o == origin)
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= queued, (
            f"{me}: the stream of {origin} has gaps ({len(seqs)} events, {queued} queued)"
        )

    # Trust records reach the whole tree.
    # (Unit lists, the other events without an item, go up only: docs/hierarchy.md.)
    sql = ("SELECT event_id FROM events WHERE type IN ('duban.cert', 'duban.revocation')")
    assert set(read(node.db, sql)) == set(read(nodes[PROVINCE].db, sql)), (
        f"{me} holds other trust records than the province"
    )


# ----------------------------------------------------------------------- test


def test_sigkill_every_level_at_random_moments_loses_and_duplicates_nothing(
    nodes: dict[str, NodeProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    ledger = Ledger()
    started = time.monotonic()
    kills: list[str] = []
    stop = threading.Event()
    writer: threading.Thread | None = None
    dbs = {n: node.db for n, node in nodes.items()}
    try:
        asyncio.run(enroll(nodes, TREE, NAMES, SETTINGS))
        # Wait until the province knows every certificate: it routes down by them.
        deadline = time.monotonic() + 30
        while len(read(nodes[PROVINCE].db, "SELECT 1 FROM events WHERE item_id IS NULL")) < 4:
            assert time.monotonic() < deadline, "a certificate never reached the top"
            time.sleep(0.05)
        kill_all(nodes)

        # Queue thousands of events in both directions while everything is down.
        for node_id, count in QUEUED.items():
            asyncio.run(write_events(nodes[node_id], count, rng, ledger))
        for node in nodes.values():
            node.start()
        writer = threading.Thread(target=api_writer,
                                  args=(nodes, ledger, stop, random.Random(SEED + 1)))
        writer.start()

        matrix = [level for level in TREE for _ in range(KILLS_PER_LEVEL)]
        rng.shuffle(matrix)
        for victim_id in matrix:
            victim = nodes[victim_id]
            if rng.random() < 0.8:  # mostly while it syncs, sometimes while it starts
                victim.wait_ready()
            time.sleep(rng.uniform(0.0, 0.8))
            victim.kill()
            kills.append(victim.id)
            if rng.random() < 0.5:  # it did some work of its own while it was down
                asyncio.run(write_events(victim, rng.randint(1, 150), rng, ledger))
            victim.start()
        stop.set()
        writer.join()
        for node in nodes.values():
            node.wait_ready()

        settle(nodes, ledger)
        verdict = checker.check(TREE, dbs, ledger.acked)
        for node in nodes.values():
            check_node(node, ledger, nodes)
        verdict.assert_ok()

        # Every node can write afterwards, and its write reaches everywhere.
        fresh = []
        for node in nodes.values():
            children = [c for c, p in TREE.items() if p == node.id]
            write = node.write(children[0] if children else node.id, f"{node.id} 恢复后新事项")
            assert write is not None, f"{node.id} cannot write after the kills"
            fresh.append(write)
        ledger.acked += fresh
        settle(nodes, ledger)
        kill_all(nodes)
        checker.check(TREE, dbs, ledger.acked).assert_ok()
    except AssertionError:
        with capsys.disabled():
            print(f"\nseed {SEED}, killed in order: {kills}\n{logs(nodes)}")
        raise
    finally:
        stop.set()
        if writer is not None:
            writer.join()
    assert sorted(kills) == sorted(matrix)
    assert ledger.acked, "the API writer got no write acknowledged"
    print(f"{len(ledger.events)} queued events, {len(ledger.acked)} acknowledged API writes "
          f"({ledger.unanswered} unanswered), kills {kills}, {time.monotonic() - started:.1f} s")
