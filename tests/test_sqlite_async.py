"""The SQLite connections of node.storage.sqlite_async under real SQLite files: no
thread per connection, one connection's jobs in order, transactions that end."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

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
        added = threading.active_count() - before
        assert 0 < added <= sqlite_async.POOL_THREADS
    finally:
        for db in dbs:
            await db.close()


async def test_a_write_cancelled_mid_statement_ends_its_transaction(tmp_path: Path) -> None:
    """Cancelled while a statement runs on a pool thread, ``write()`` rolls back after
    that statement ends, never beside it: the write lock is free after, and nothing
    of the transaction was kept."""
    path = tmp_path / "node.db"
    async with await _open(path) as db:

        async def body() -> None:
            async with db.write() as conn:
                await conn.execute(insert(schema.meta).values(key="cancelled", value=b"1"))
                await conn.execute(SLOW)

        task = asyncio.ensure_future(body())
        await asyncio.sleep(0.05)
        task.cancel()
        outcome = (await asyncio.gather(task, return_exceptions=True))[0]
        assert isinstance(outcome, asyncio.CancelledError)
        for _ in range(200):  # the rollback follows the slow statement
            if _write_lock_free(path):
                break
            await asyncio.sleep(0.05)
        assert _write_lock_free(path)
        async with db.read() as conn:
            assert await conn.scalar(
                select(schema.meta.c.value).where(schema.meta.c.key == "cancelled")) is None
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
