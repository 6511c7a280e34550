"""Crash safety with real processes: SIGKILL nodes at random moments of a large sync.

A province, a city and a county run as separate ``duban run`` processes on
loopback, each with its own SQLite file. While they are stopped, thousands of
events are queued in both directions: the province assigns to the city and the
county, the city assigns to the county and to its own office, the county
creates items of its own (upward only). Then all three run, and a seeded RNG
kills one of them with SIGKILL after a random delay, again and again; while a
node is down, it sometimes writes new events of its own (deploying and
reporting on items it has received) before it is restarted.

After everything settles, every node must hold exactly the events that must
reach it (nothing lost, nothing leaked), each once, gapless per origin; every
mirror must equal its owner; every items row must equal a fresh fold of the
stored events; and nothing may have been refused.

The seed is ``DUBAN_CRASH_SEED`` (default 1370); the log of every node is
printed when the test fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from node import config as cfg
from node.clock import SystemClock
from node.context import open_node
from node.drafts import act, assign
from node.enroll_http import issue_code
from node.setup import init_root, join_parent
from node.storage import schema as t
from node.store import Draft
from protocol import codec, envelope
from protocol.events import Deadlines, Deployed, Feedback, Updated, decode_event
from protocol.fold import fold

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("DUBAN_CRASH_SEED", "1370"))

PROVINCE, CITY, COUNTY = "14", "1401", "140105"
TREE: dict[str, str | None] = {PROVINCE: None, CITY: PROVINCE, COUNTY: CITY}
NAMES = {PROVINCE: ("山西省", "province"), CITY: ("太原市", "city"), COUNTY: ("小店区", "county")}
SETTINGS = {
    "sync.batch_events": 200,  # many small transactions: many moments to die between
    "sync.long_poll_seconds": 5,
    "sync.retry_initial_seconds": 0.05,
    "sync.retry_max_seconds": 0.5,
}
KILLS = 18
STALL_SECONDS = 30.0  # settling fails when nothing moves for this long...
SETTLE_SECONDS = 240.0  # ...or when it takes this long in all (a loaded machine is slow)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ancestors(node: str) -> list[str]:
    out = []
    parent = TREE[node]
    while parent is not None:
        out.append(parent)
        parent = TREE[parent]
    return out


def in_subtree(node: str, top: str) -> bool:
    return node == top or top in ancestors(node)


def must_reach(origin: str, to: str) -> set[str]:
    """Where an item event must end up: its origin and every ancestor (mirrors), and
    every node on the way down from the origin to its addressee."""
    nodes = {origin, *ancestors(origin)}
    if to != origin and origin in ancestors(to):
        nodes |= {n for n in [to, *ancestors(to)] if origin in ancestors(n)}
    return nodes


# ------------------------------------------------------------------ processes


@dataclass
class NodeProcess:
    """One node: its data directory, port, and the ``duban run`` process while it runs."""

    id: str
    data: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.id}.log"

    @property
    def db(self) -> Path:
        return self.data / cfg.DB_NAME

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with self.log.open("ab") as log:
            log.write(f"---- start {self.starts} ----\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "run", "--data", str(self.data),
                 "--listen", f"127.0.0.1:{self.port}"],
                cwd=ROOT, stdout=log, stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.starts += 1

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"{self.id} died"
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/status", timeout=2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{self.id} did not come up")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, exactly like a power cut of the process."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, NodeProcess]]:
    made = {n: NodeProcess(n, tmp_path / n, free_port()) for n in TREE}
    yield made
    for node in made.values():  # never leave a process behind, pass or fail
        node.kill()


# --------------------------------------------------------------------- events


@dataclass
class Ledger:
    """Every event this test made, by id: (origin, to)."""

    events: dict[str, tuple[str, str]] = field(default_factory=dict)
    counter: Counter[str] = field(default_factory=Counter)

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


async def enroll(nodes: dict[str, NodeProcess]) -> None:
    """The province by ``init``; each child enrolled over HTTP with a one-time code."""
    clock = SystemClock()
    for node_id, parent in TREE.items():
        node = nodes[node_id]
        name, level = NAMES[node_id]
        extra = {**SETTINGS, "server.listen": f"127.0.0.1:{node.port}"}
        if parent is None:
            await init_root(node.data, node=node_id, name=name, level=level, clock=clock,
                            extra=extra)
        else:
            up = nodes[parent]
            ctx = await open_node(cfg.load(up.data), clock)  # what `duban invite` does
            try:
                code = await issue_code(ctx, child=node_id, name=name, level=level)
                fingerprint = ctx.trust.root_fingerprint
            finally:
                await ctx.close()
            await join_parent(node.data, parent_url=up.url, code=code, root=fingerprint,
                              clock=clock, extra=extra)
        node.start()
        node.wait_ready()


# ----------------------------------------------------------------- inspection


def read(node: NodeProcess, sql: str, *args: object) -> list[tuple]:  # type: ignore[type-arg]
    conn = sqlite3.connect(f"file:{node.db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def item_event_ids(node: NodeProcess) -> set[str]:
    return {r[0].hex() for r in read(node, "SELECT event_id FROM events WHERE item_id IS NOT NULL")}


def pending(node: NodeProcess) -> int:
    rows = read(
        node,
        "SELECT count(*) FROM routes r LEFT JOIN links l ON l.link = r.link "
        "WHERE r.pos > coalesce(l.acked_pos, 0)",
    )
    return int(rows[0][0])


def unfolded(node: NodeProcess) -> int:
    """Received events whose items are not folded into rows yet (Store.materialise_pending)."""
    [(value,)] = read(node, "SELECT value FROM meta WHERE key = 'materialised_pos'") or [(None,)]
    done = codec.decode(value) if value is not None else 0
    return int(read(node, "SELECT count(*) FROM events WHERE pos > ?", done)[0][0])


def settle(nodes: dict[str, NodeProcess], ledger: Ledger) -> None:
    """Wait until every node holds what it must and every outbox is empty, or until
    nothing has moved for STALL_SECONDS (a lost event never arrives)."""
    start = last_move = time.monotonic()
    last: tuple[int, ...] = ()
    while time.monotonic() - last_move < STALL_SECONDS:
        if time.monotonic() - start > SETTLE_SECONDS:
            return
        try:
            held = [item_event_ids(node) for node in nodes.values()]
            waiting = [pending(node) + unfolded(node) for node in nodes.values()]
        except sqlite3.Error:  # a node is creating its database: look again
            time.sleep(0.25)
            continue
        wanted = [
            {e for e, (o, to) in ledger.events.items() if node.id in must_reach(o, to)}
            for node in nodes.values()
        ]
        if held == wanted and not any(waiting):
            return
        now = (*map(len, held), *waiting)
        if now != last:
            last, last_move = now, time.monotonic()
        time.sleep(0.25)


def logs(nodes: dict[str, NodeProcess]) -> str:
    out = []
    for node in nodes.values():
        text = node.log.read_text(errors="replace") if node.log.exists() else ""
        out.append(f"==== {node.id} ({node.starts} starts) ====\n{text[-6000:]}")
    return "\n".join(out)


def check_node(node: NodeProcess, ledger: Ledger, nodes: dict[str, NodeProcess]) -> None:
    me = node.id
    refused = read(node, "SELECT source, reason, detail FROM refused")
    assert not refused, f"{me} refused events: {refused[:5]}"

    # Nothing duplicated: one row per event id and per (origin, seq).
    [(rows, distinct)] = read(node, "SELECT count(*), count(DISTINCT event_id) FROM events")
    assert rows == distinct
    twice = read(node, "SELECT origin, origin_seq, count(*) FROM events WHERE origin IS NOT NULL "
                       "GROUP BY origin, origin_seq HAVING count(*) > 1")
    assert not twice, f"{me} holds events twice: {twice[:5]}"

    # Nothing lost, nothing leaked: exactly the events that must reach this node.
    held = item_event_ids(node)
    want = {e for e, (o, to) in ledger.events.items() if me in must_reach(o, to)}
    assert held == want, (
        f"{me}: {len(want - held)} events missing, {len(held - want)} that do not belong"
    )

    # Each origin's stream is gapless where all of it must arrive: at itself and above.
    for origin in (me, *[n for n in TREE if me in ancestors(n)]):
        seqs = sorted(r[0] for r in read(
            node, "SELECT origin_seq FROM events WHERE origin = ? AND item_id IS NOT NULL",
            origin))
        own = sum(1 for o, _ in ledger.events.values() if o == origin)
        assert seqs == list(range(1, own + 1)), (
            f"{me}: the stream of {origin} has gaps or extras ({len(seqs)} of {own})"
        )

    # Items rows are the fold of the stored events.
    by_item: dict[str, list[tuple[str, object]]] = {}
    for item_id, raw in read(node, "SELECT item_id, raw FROM events WHERE item_id IS NOT NULL"):
        env = envelope.parse(raw)
        by_item.setdefault(item_id, []).append((env.event_id, decode_event(env.type, env.body)))
    rows_by_item = {
        r[0]: r for r in read(
            node, "SELECT item_id, status, assigner, assignee, progress, done, state FROM items")
    }
    assert set(rows_by_item) == set(by_item), f"{me}: items rows differ from the items held"
    for item_id, pairs in by_item.items():
        state = fold(pairs)  # type: ignore[arg-type]
        _, status, assigner, assignee, progress, done, stored = rows_by_item[item_id]
        assert json.loads(stored) == json.loads(json.dumps(state.to_dict())), item_id
        assert (status, assigner, assignee, progress, bool(done)) == (
            str(state.status), state.assigner, state.assignee, state.progress, state.done
        ), item_id

    # Trust records reach the whole tree.
    sql = "SELECT event_id FROM events WHERE item_id IS NULL"
    assert set(read(node, sql)) == set(read(nodes[PROVINCE], sql)), (
        f"{me} holds other trust records than the province"
    )


def check_mirrors(nodes: dict[str, NodeProcess]) -> None:
    """Every ancestor's mirror of a subtree equals what the subtree's top holds of it."""
    for child, parent in TREE.items():
        while parent is not None:
            subtree = [n for n in TREE if in_subtree(n, child)]
            marks = ",".join("?" * len(subtree))
            sql = f"SELECT event_id FROM events WHERE origin IN ({marks})"
            owner = {r[0] for r in read(nodes[child], sql, *subtree)}
            mirror = {r[0] for r in read(nodes[parent], sql, *subtree)}
            assert owner == mirror, f"{parent}'s mirror of {child} differs from {child}'s own"
            parent = TREE[parent]


# ----------------------------------------------------------------------- test


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    nodes: dict[str, NodeProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    ledger = Ledger()
    started = time.monotonic()
    kills: list[str] = []
    try:
        asyncio.run(enroll(nodes))
        # Wait until the province knows the county's certificate: it routes down by it.
        deadline = time.monotonic() + 30
        while len(read(nodes[PROVINCE], "SELECT 1 FROM events WHERE item_id IS NULL")) < 3:
            assert time.monotonic() < deadline, "the county's certificate never reached the top"
            time.sleep(0.05)
        for node in nodes.values():
            node.kill()

        # Queue thousands of events in both directions while everything is down.
        for node_id, count in ((PROVINCE, 2500), (CITY, 1200), (COUNTY, 1500)):
            asyncio.run(write_events(nodes[node_id], count, rng, ledger))
        for node in nodes.values():
            node.start()

        for _ in range(KILLS):
            victim = nodes[rng.choice(list(TREE))]
            if rng.random() < 0.8:  # mostly while it syncs, sometimes while it starts
                victim.wait_ready()
            time.sleep(rng.uniform(0.0, 0.8))
            victim.kill()
            kills.append(victim.id)
            if rng.random() < 0.5:  # it did some work of its own while it was down
                asyncio.run(write_events(victim, rng.randint(1, 150), rng, ledger))
            victim.start()

        settle(nodes, ledger)
        for node in nodes.values():
            node.kill()
        for node in nodes.values():
            check_node(node, ledger, nodes)
        check_mirrors(nodes)
    except AssertionError:
        with capsys.disabled():
            print(f"\nseed {SEED}, killed in order: {kills}\n{logs(nodes)}")
        raise
    assert len(kills) == KILLS
    print(f"{len(ledger.events)} events, kills {kills}, {time.monotonic() - started:.1f} s")
