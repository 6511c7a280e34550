"""node.background: a task survives any exception, logs it once, summarises, recovers.

The failing step is a real SQLite database: ``PRAGMA max_page_count`` makes it
answer "database or disk is full" for real, and raising the limit again is the
disk being freed. The clock is a ManualClock, moved by the step itself, so the
summaries come after a known number of minutes without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import asyncpg
import pytest
from sqlalchemy.exc import OperationalError

from node.background import Backoff, Broadcast, Watch, run_forever
from node.clock import ManualClock
from node.storage.disk_full import storage_full

log = logging.getLogger("node.test_background")


class SmallDisk:
    """A SQLite database that can be made full (and freed) on purpose."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute("CREATE TABLE t (x BLOB)")
        self.conn.commit()
        self.pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])

    def full(self) -> None:
        self.conn.execute(f"PRAGMA max_page_count = {self.pages}")

    def freed(self) -> None:
        self.conn.execute("PRAGMA max_page_count = 1000000")

    def write(self) -> None:
        self.conn.execute("INSERT INTO t VALUES (?)", (b"x" * 65536,))
        self.conn.commit()


def test_sqlite_full_is_storage_full() -> None:
    disk = SmallDisk()
    disk.full()
    with pytest.raises(sqlite3.OperationalError) as caught:
        disk.write()
    assert storage_full(caught.value)
    assert storage_full(OSError(28, "No space left on device"))
    assert not storage_full(sqlite3.OperationalError("no such table: t"))
    wrapped = RuntimeError("while writing")
    wrapped.__cause__ = caught.value
    assert storage_full(wrapped)
    assert storage_full(OperationalError("INSERT", {}, caught.value))  # SQLAlchemy's wrapper
    # PostgreSQL: SQLSTATE 53100, as asyncpg raises it and as SQLAlchemy wraps it.
    disk_full = asyncpg.exceptions.DiskFullError("could not extend file")
    assert storage_full(disk_full)
    assert storage_full(OperationalError("INSERT", {}, disk_full))
    assert not storage_full(asyncpg.exceptions.UniqueViolationError("duplicate key"))


async def test_a_failing_task_survives_logs_once_summarises_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="node.test_background")
    clock = ManualClock(1_000_000)
    watch = Watch("folding", clock=clock, log=log, backoff=Backoff(0.001, 0.005),
                  summary_seconds=300)
    disk = SmallDisk()
    disk.full()
    stopping = asyncio.Event()
    tries = 0
    done = 0

    async def step() -> None:
        nonlocal tries, done
        tries += 1
        clock.advance(seconds=30)  # each try takes half a minute of the node's time
        if tries == 25:  # 12 minutes in: the disk is freed
            disk.freed()
        if tries == 12:  # once, a bug of ours: its traceback is logged
            raise KeyError("unexpected")
        if tries in (14, 15):  # the same bug again: no second traceback
            raise KeyError("unexpected")
        disk.write()
        done += 1
        if done == 3:
            stopping.set()

    async def between() -> None:
        await asyncio.sleep(0)

    await asyncio.wait_for(run_forever(watch, step, stopping, between=between), timeout=30)

    assert tries == 27 and done == 3  # survived 24 failures, then worked again
    records = [(r.levelno, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    warnings = [m for level, m, _ in records if level == logging.WARNING]
    assert warnings[0].startswith("folding failing: 1 attempts")
    assert "storage_full" in warnings[0]
    # A summary every 5 minutes of failing (tries 11 and 21), then the recovery.
    assert [m.split(":")[0] for m in warnings] == [
        "folding failing", "folding still failing", "folding still failing",
        "folding recovered after 24 failures, 720 s (last error",
    ]
    assert "still failing: 11 attempts in 300 s" in warnings[1]
    tracebacks = [m for _, m, traced in records if traced]
    assert len(tracebacks) == 1 and "KeyError" in tracebacks[0]
    assert watch.health.failures == 0 and watch.health.last_error is not None


def test_backoff_doubles_to_its_cap_with_full_jitter() -> None:
    backoff = Backoff(1.0, 8.0)
    for failures, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0), (100, 8.0)):
        delays = [backoff.delay(failures) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2


async def test_broadcast_wakes_every_waiter_and_forgets_cancelled_ones() -> None:
    """notify_all wakes all who wait now (not later ones); a timeout says it did not
    come; waiters cancelled at any moment leave nothing behind and raise nothing but
    their cancel (asyncio.Condition under wait_for raised "Lock is not acquired")."""
    signal = Broadcast()
    waiters = [asyncio.ensure_future(signal.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    signal.notify_all()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await signal.wait(0.01) is False
    for delay in (0, 0.001, 0.005):
        doomed = [asyncio.ensure_future(signal.wait(0.005)) for _ in range(20)]
        await asyncio.sleep(delay)
        for task in doomed:
            task.cancel()
        outcomes = await asyncio.gather(*doomed, return_exceptions=True)
        assert all(o is False or isinstance(o, asyncio.CancelledError) for o in outcomes)
    assert not signal._waiters
