"""A bounded fuzz of every sync and enrollment endpoint: 4xx for what is wrong, never 5xx,
and nothing stored that should not be.

A province (14) and a city (1401), real aiohttp servers on loopback with their
own SQLite files. The city writes a few items, syncs them up, and stops; then
this test speaks for the city with its own key, so every request passes
authentication and reaches the body parser (the header is signed over each
mutated body, exactly as SyncClient signs it):

- ``POST /sync/v1/up``: the city's last valid batch (only duplicates by now),
  mutated as a whole and event by event (tests/faults/mutate.py), and late
  copies of it with an older ``through``;
- ``GET /sync/v1/hello``: mutated signed claims (the auth envelope's body) and
  mutated header bytes;
- ``GET /sync/v1/down`` and ``/sync/v1/recover``: hostile query values;
- ``POST /enroll/v1/lookup`` and ``/enroll/v1/join``: mutated codes and mutated
  signed join requests (with a code that was never issued).

After all of them the province holds the same events and items as before
(refused events may be kept for audit: that is by design), its cursor for the
city never went backwards, and the city syncs a new write as before.
``DUBAN_FUZZ_SEED`` and ``DUBAN_FUZZ_BODIES`` (default 20,000) replay or widen it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from hierarchy.enrollment import JOIN_TYPE, make_join_request
from node import config as cfg
from node.clock import SystemClock
from node.demo.localtree import RunningNode, Shape
from node.storage import keyfile
from node.sync.auth import AUTH_TYPE, make_header
from protocol import codec, envelope
from protocol.keys import SigningKey
from tests.api_client import person
from tests.faults import checker, mutate
from tests.faults.tree import Outcome, write_item
from tests.federation import build, eventually

SEED = int(os.environ.get("DUBAN_FUZZ_SEED", "1372"))
BODIES = int(os.environ.get("DUBAN_FUZZ_BODIES", "20000"))
SHAPE: Shape = [("14", None, "山西省", "province"), ("1401", "14", "太原市", "city")]
PARENT, CHILD = "14", "1401"
SHARE = {"up": 0.35, "hello": 0.15, "down": 0.15, "recover": 0.1, "lookup": 0.1, "join": 0.15}
CONCURRENCY = 8
QUERY_VALUES = ("", "-1", "0", "1", "00", "+5", "1e9", "0x10", "abc", "9" * 30,
                str(2**62), str(2**62 + 1), str(2**63), str(2**64), str(-(2**63)), "1.5",
                "%00", "%FF", "NaN")

Send = Callable[[str, str, bytes, str | None], Awaitable[int]]


class RawClient:
    """A keep-alive HTTP/1.1 connection of a few lines: the fuzz sends tens of thousands
    of requests, and aiohttp's client would cost more CPU than the server answering."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, body: bytes,
                      headers: dict[str, str]) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
                f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        await self.reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


class Fuzzer:
    """Builds and sends the mutated requests; counts answers by (endpoint, status)."""

    def __init__(self, parent: RunningNode, key: SigningKey,
                 valid_up: bytes, raws: list[bytes], join: bytes, rng: random.Random) -> None:
        self.parent = parent
        self.key = key
        self.valid_up = valid_up
        self.raws = raws
        self.join = join
        self.rng = rng
        self.answers: Counter[tuple[str, int]] = Counter()
        self.server_errors: list[str] = []
        self.idle: list[RawClient] = []

    async def close(self) -> None:
        for client in self.idle:
            await client.close()

    def header(self, method: str, target: str, body: bytes) -> str:
        return make_header(self.key, node=CHILD, parent=PARENT, method=method, target=target,
                           body=body, now_ms=self.parent.clock.now_ms())

    async def send(self, what: str, method: str, target: str, body: bytes,
                   header: str | None, case: str) -> int:
        headers = {"Content-Type": "application/msgpack"}
        if header is not None:
            headers["Duban-Auth"] = header
        client = self.idle.pop() if self.idle else RawClient(self.parent.port)
        try:
            status = await client.request(method, target, body, headers)
        except BaseException:
            await client.close()
            raise
        self.idle.append(client)
        self.answers[(what, status)] += 1
        if status >= 500:
            self.server_errors.append(f"{what}/{case}: {status} {body[:80]!r}")
        return status

    async def one(self, what: str) -> None:
        rng = self.rng
        if what == "up":
            through = codec.decode(self.valid_up)["through"]  # type: ignore[index]
            roll = rng.random()
            if roll < 0.45:
                case, body = mutate.mutate(rng, self.valid_up)
            elif roll < 0.9:
                events = list(self.raws)
                cases = []
                for i in rng.sample(range(len(events)), rng.randint(1, min(3, len(events)))):
                    name, events[i] = mutate.mutate(rng, events[i])
                    cases.append(name)
                case, body = "event:" + "+".join(cases), codec.encode(
                    {"through": through, "events": events})
            else:  # a late copy of an earlier batch: its cursor is behind the parent's
                case = "late_duplicate"
                body = codec.encode({"through": rng.randint(0, max(0, through - 1)),
                                     "events": self.raws[: rng.randint(0, len(self.raws))]})
            target = "/sync/v1/up"
            await self.send(what, "POST", target, body, self.header("POST", target, body), case)
        elif what == "hello":
            target = "/sync/v1/hello"
            if rng.random() < 0.7:  # a signed claim with a mutated body
                claim = {"node": CHILD, "parent": PARENT, "method": "GET", "target": target,
                         "body": hashlib.sha256(b"").digest(),
                         "at": self.parent.clock.now_ms(), "nonce": rng.randbytes(16)}
                case, raw = mutate.mutate(rng, codec.encode(claim))
                env = envelope.sign(self.key, AUTH_TYPE, raw)
                header = base64.urlsafe_b64encode(env.raw).decode()
            else:  # the header's bytes themselves
                raw = base64.urlsafe_b64decode(self.header("GET", target, b""))
                case, raw = mutate.mutate(rng, raw)
                header = base64.urlsafe_b64encode(raw).decode()
            await self.send(what, "GET", target, b"", header, "claim:" + case)
        elif what in ("down", "recover"):
            names = ("after", "ack", "limit") if what == "down" else ("after",)
            params = [f"{n}={rng.choice(QUERY_VALUES)}" for n in names if rng.random() < 0.8]
            if what == "down":
                params.append("wait=0")  # a long-poll would only wait
            rng.shuffle(params)
            target = f"/sync/v1/{what}" + ("?" + "&".join(params) if params else "")
            await self.send(what, "GET", target, b"", self.header("GET", target, b""),
                            "query:" + target.partition("?")[2])
        elif what == "lookup":
            code = rng.choice((b"ABCD-EFGH-JKLM", b"", "码".encode() * 100, rng.randbytes(40)))
            case, body = mutate.mutate(rng, code)
            await self.send(what, "POST", "/enroll/v1/lookup", body, None, case)
        else:
            case, body = mutate.mutate(rng, self.join)
            if rng.random() < 0.5:  # the same, re-signed by the joining key over new bytes
                inner = envelope.parse(self.join)
                _, mutated = mutate.mutate(rng, inner.body)
                body = envelope.sign(SigningKey.generate(), JOIN_TYPE, mutated).raw
                case = "signed_body"
            await self.send(what, "POST", "/enroll/v1/join", body, None, case)


async def test_every_sync_endpoint_answers_4xx_to_mutated_bodies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Tens of thousands of refusal warnings cost more to capture than to answer:
    # only errors are kept (a 5xx is found by its status anyway).
    caplog.set_level(logging.ERROR, logger="node")
    rng = random.Random(SEED)
    fed = await build(fast_dir(tmp_path), SystemClock(), SHAPE,
                      extra={"sync.long_poll_seconds": 1, "sync.batch_events": 50})
    try:
        parent, child = fed[PARENT], fed[CHILD]
        tokens = {CHILD: await person(child, "leader", "leader", unit="office")}
        outcome = Outcome()
        async with aiohttp.ClientSession() as session:
            for i in range(6):
                assert await write_item(session, child.url, tokens[CHILD], CHILD, CHILD,
                                        f"模糊测试前事项 {i}", outcome) == 201
            dbs = {n: fed[n].data / cfg.DB_NAME for n in (PARENT, CHILD)}
            tree = {PARENT: None, CHILD: PARENT}

            async def synced() -> bool:
                return checker.converged(tree, dbs, outcome.acked)

            await eventually(synced, what="the city's items at the province")
            await child.stop()  # from now on only this test speaks for the city

            key = keyfile.load(child.config.key_path)
            raws = [r[0] for r in checker.read(
                dbs[CHILD], "SELECT raw FROM events WHERE origin = ? ORDER BY pos", CHILD)]
            link = await parent.ctx.outbox.link_row(CHILD)
            cursor = int(link["applied_pos"])
            valid_up = codec.encode({"through": cursor, "events": raws})
            join = make_join_request(SigningKey.generate(), parent=PARENT, node="1499",
                                     code="NEVER-ISSUED-CODE", now=parent.clock.now_ms())
            before = await parent.ctx.store.counts()
            trust_before = checker.read(dbs[PARENT], "SELECT event_id FROM events "
                                                     "WHERE item_id IS NULL")
            fuzzer = Fuzzer(parent, key, valid_up, raws, join, rng)

            # The valid batch is answered as duplicates: the baseline is right.
            assert await fuzzer.send("up", "POST", "/sync/v1/up", valid_up,
                                     fuzzer.header("POST", "/sync/v1/up", valid_up),
                                     "valid") == 200
            plan = [what for what, share in SHARE.items() for _ in range(int(BODIES * share))]
            rng.shuffle(plan)
            lowest_cursor = cursor
            gate = asyncio.Semaphore(CONCURRENCY)

            async def run(what: str) -> None:
                async with gate:
                    await fuzzer.one(what)

            for start in range(0, len(plan), 500):
                await asyncio.gather(*(run(w) for w in plan[start:start + 500]))
                now = int((await parent.ctx.outbox.link_row(CHILD))["applied_pos"])
                lowest_cursor = min(lowest_cursor, now)

            await fuzzer.close()
            after = await parent.ctx.store.counts()
            summary = (f"seed {SEED}: {len(plan)} bodies; answers "
                       f"{sorted(fuzzer.answers.items())}")
            print(summary)
            assert len(plan) >= min(BODIES, 20_000) - len(SHARE), summary
            problems = []  # all of them at once: one known bug must not hide another
            if fuzzer.server_errors:
                problems.append(f"{len(fuzzer.server_errors)} server errors, e.g. "
                                f"{fuzzer.server_errors[:5]}")
            # Nothing stored that should not be: no event, no item, no certificate.
            if (after["events"], after["items"]) != (before["events"], before["items"]):
                problems.append(f"the fuzz stored events or items: {before} -> {after}")
            if checker.read(dbs[PARENT], "SELECT event_id FROM events "
                                         "WHERE item_id IS NULL") != trust_before:
                problems.append("the fuzz changed the trust records")
            if lowest_cursor < cursor:
                problems.append(f"the city's cursor went back from {cursor} to {lowest_cursor}")
            assert not problems, "\n".join([*problems, summary])

            # And the city syncs as before.
            await child.start()
            assert await write_item(session, child.url, tokens[CHILD], CHILD, CHILD,
                                    "模糊测试后事项", outcome) == 201
            await eventually(synced, what="a new write after the fuzz")
            checker.check(tree, dbs, outcome.acked).assert_ok()
    finally:
        await fed.stop()


def fast_dir(tmp_path: Path) -> Path:
    """Where the two nodes live: in memory when /dev/shm is there (a commit's fsync
    there costs nothing, and the fuzz commits thousands of refused batches)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        return tmp_path
    made = Path(tempfile.mkdtemp(prefix="duban-fuzz-", dir=shm))
    (tmp_path / "nodes").symlink_to(made)
    return made


@pytest.fixture(autouse=True)
def _remove_fast_dirs(tmp_path: Path) -> Iterator[None]:
    yield
    link = tmp_path / "nodes"
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)


@pytest.mark.parametrize("mutator", mutate.MUTATORS, ids=lambda m: m.__name__)
def test_mutators_change_the_bytes(mutator: mutate.Mutator) -> None:
    """Each mutation gives other bytes than it was given (a fuzz that sends the valid
    body again would prove nothing)."""
    rng = random.Random(SEED)
    raw = codec.encode({"through": 12, "events": [b"abc", b"def"], "pending": 3})
    changed = sum(mutator(rng, raw) != raw for _ in range(50))
    assert changed >= 45, f"{mutator.__name__} changed only {changed} of 50"
