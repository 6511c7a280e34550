"""The SQLite connections of node.storage.sqlite_async under real SQLite files: no
thread per connection, one connection's jobs in order, transactions that end."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from node.storage import schema, sqlite_async
from node.storage.db import Database, open_database

SLOW = text(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000)"
    " SELECT count(*) FROM n"
)


async def _open(path: Path) -> Database:
    return await open_database(f"sqlite+aiosqlite:///{path}", create=True)


def _write_lock_free(path: Path) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


async def test_many_databases_share_a_bounded_set_of_threads(tmp_path: Path) -> None:
    """Thirty open databases, each used for reads and writes at once, add at most the
    pool's threads to the process, whatever their number."""
    before = threading.active_count()
    dbs = [await _open(tmp_path / f"n{i}.db") for i in range(30)]
    try:

        async def use(db: Database, i: int) -> None:
            async with db.write() as conn:
                await conn.execute(insert(schema.meta).values(key=f"k{i}", value=b"v"))
            async with db.read() as conn:
                assert await conn.scalar(
                    select(schema.meta.c.value).where(schema.meta.c.key == f"k{i}")) == b"v"

        await asyncio.gather(*(use(db, i) for i, db in enumerate(dbs)))
        # The pool may have started before this test (an earlier test of the session).
        pool = [t for t in threading.enumerate() if t.name.startswith("duban-db")]
        assert 0 < len(pool) <= sqlite_async.POOL_THREADS
        assert threading.active_count() - before <= sqlite_async.POOL_THREADS
    finally:
        for db in dbs:
            await db.close()


async def test_a_cancelled_write_is_all_or_nothing_and_frees_the_lock(tmp_path: Path) -> None:
    """Cancelled at any point (here: while its slow statement runs, the cancel landing
    at the next await), ``write()`` either committed all of its transaction or none
    of it, never leaves SQLite's write lock held, and the connection works after."""
    path = tmp_path / "node.db"
    async with await _open(path) as db:

        async def body() -> None:
            async with db.write() as conn:
                await conn.execute(insert(schema.meta).values(key="first", value=b"1"))
                await conn.execute(SLOW)
                await conn.execute(insert(schema.meta).values(key="second", value=b"1"))

        task = asyncio.ensure_future(body())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for _ in range(200):
            if _write_lock_free(path):
                break
            await asyncio.sleep(0.05)
        assert _write_lock_free(path)
        async with db.read() as conn:
            kept = set(await conn.scalars(select(schema.meta.c.key).where(
                schema.meta.c.key.in_(["first", "second"]))))
        assert kept in (set(), {"first", "second"})
        async with db.write() as conn:  # the connection is usable again
            await conn.execute(insert(schema.meta).values(key="after", value=b"1"))
        async with db.read() as conn:
            assert await conn.scalar(
                select(schema.meta.c.value).where(schema.meta.c.key == "after")) == b"1"


async def test_transactions_without_statements_and_errors_inside(tmp_path: Path) -> None:
    """A transaction that runs no statement ends cleanly; a failing statement rolls the
    whole transaction back, as on any driver."""
    path = tmp_path / "node.db"
    async with await _open(path) as db:
        async with db.write():
            pass
        async with db.read():
            pass
        assert _write_lock_free(path)
        with pytest.raises(Exception, match="UNIQUE"):
            async with db.write() as conn:
                await conn.execute(insert(schema.meta).values(key="a", value=b"1"))
                await conn.execute(insert(schema.meta).values(key="a", value=b"2"))
        assert _write_lock_free(path)
        async with db.read() as conn:
            assert await conn.scalar(
                select(schema.meta.c.value).where(schema.meta.c.key == "a")) is None


async def test_one_connections_jobs_never_overlap(tmp_path: Path) -> None:
    """A job queued behind a running one on the same connection waits for it, even
    when the task that started the first was cancelled."""
    path = tmp_path / "raw.db"
    connect = sqlite_async.creator(make_url(f"sqlite:///{path}"))
    conn = await connect()
    try:
        running = threading.Event()
        order: list[str] = []
        release = threading.Event()

        def first() -> None:
            running.set()
            assert release.wait(10)
            order.append("first")

        task = asyncio.ensure_future(conn.run(first))
        while not running.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        second = asyncio.ensure_future(conn.run(lambda: order.append("second")))
        await asyncio.sleep(0.05)
        assert order == [] and not second.done()
        release.set()
        await second
        assert order == ["first", "second"]
    finally:
        await conn.close()


async def test_databases_of_a_process_share_compiled_statements(tmp_path: Path) -> None:
    """A statement compiled for one node's database is not compiled again for another's
    (SQLAlchemy keys its cache by dialect instance and engine): both on the loop's
    reader and through ``read()``."""
    from sqlalchemy.engine import CursorResult
    from sqlalchemy.engine.interfaces import CacheStats

    statement = select(schema.meta.c.value).where(schema.meta.c.key == "shared-cache-probe")

    def hit(conn: Any) -> Any:
        result: CursorResult[Any] = conn.execute(statement)
        result.all()
        return result.context.cache_hit

    first, second = await _open(tmp_path / "a.db"), await _open(tmp_path / "b.db")
    try:
        await first.run_read(hit)
        assert await second.run_read(hit) == CacheStats.CACHE_HIT
        async with first.read() as conn:
            await conn.execute(statement)
        async with second.read() as conn:
            result = await conn.execute(statement)
            assert result.context.cache_hit == CacheStats.CACHE_HIT
    finally:
        await first.close()
        await second.close()


async def test_a_write_waits_off_the_loop_for_another_process_lock(tmp_path: Path) -> None:
    """The writer's statements run on the loop's thread, so its BEGIN must not wait
    there: while another connection (a ``duban`` command) holds the write lock, the
    write waits on the pool, the event loop keeps running, and the write goes
    through once the lock is free."""
    path = tmp_path / "node.db"
    async with await _open(path) as db:
        async with db.write() as conn:  # the writer's connection is open
            await conn.execute(insert(schema.meta).values(key="a", value=b"1"))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:

            async def write() -> None:
                async with db.write() as conn:
                    await conn.execute(insert(schema.meta).values(key="b", value=b"1"))

            job = asyncio.ensure_future(write())
            ticks = 0
            for _ in range(10):
                await asyncio.sleep(0.02)
                ticks += 1
            assert ticks == 10 and not job.done(), "the write did not wait for the lock"
        finally:
            other.execute("ROLLBACK")
            other.close()
        await job
        async with db.read() as conn:
            assert await conn.scalar(
                select(schema.meta.c.value).where(schema.meta.c.key == "b")) == b"1"
