"""The storage engine layer on real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from node.storage import schema
from node.storage.db import (
    Database,
    StorageError,
    head_revision,
    migrate,
    normalise_url,
    open_database,
)

NOW = 1_700_000_000_000

ROWS: dict[str, dict[str, Any]] = {
    "meta": {"key": "node_id", "value": b"county-1"},
    "events": {
        "event_id": b"\x01" * 32,
        "type": "item.assign",
        "origin": "city-1",
        "origin_seq": 7,
        "lamport": 12,
        "item_id": "city-1/7",
        "to_node": "county-1",
        "source": "parent",
        "received_at": NOW,
        "raw": b"\x00envelope",
    },
    "routes": {"link": "parent", "pos": 1},
    "links": {"link": "parent", "last_contact": NOW, "last_error": None},
    "refused": {
        "event_id": b"\x02" * 32,
        "type": "item.assign",
        "source": "child-9",
        "reason": "bad_signature",
        "received_at": NOW,
        "raw": b"\xffbad",
    },
    "items": {
        "item_id": "city-1/7",
        "assigner": "city-1",
        "assignee": "county-1",
        "board": "13710",
        "class": "normal",
        "status": "assigned",
        "title": "修复道路",
        "resolve_due": NOW + 86_400_000,
        "assigned_at": NOW,
        "updated_at": NOW,
        "state": b"\x80state",
    },
}


async def _open(url: str) -> Database:
    return await open_database(url, create=True)


async def _count(db: Database, table: str) -> int:
    async with db.read() as conn:
        table_ = schema.metadata.tables[table]
        return int(await conn.scalar(select(func.count()).select_from(table_)) or 0)


async def test_create_migrates_and_every_table_round_trips(db_url: str) -> None:
    db = await _open(db_url)
    async with db:
        assert (await db.schema_state()).revisions == (head_revision(),)
        async with db.write() as conn:
            for name, row in ROWS.items():
                await conn.execute(insert(schema.metadata.tables[name]).values(**row))
    # Reopened without create: committed rows are there, Python-side defaults applied.
    async with await open_database(db_url) as db, db.read() as conn:
        for name, row in ROWS.items():
            table = schema.metadata.tables[name]
            stored = (await conn.execute(select(table))).mappings().one()
            assert {k: stored[k] for k in row} == row, name
        link = (await conn.execute(select(schema.links))).mappings().one()
        assert (link["acked_pos"], link["applied_pos"], link["failures"]) == (0, 0, 0)
        item = (await conn.execute(select(schema.items))).mappings().one()
        assert item["done"] is False and item["progress"] == 0
        assert (await conn.execute(select(schema.events.c.pos))).scalar_one() == 1


async def test_head_matches_schema_py(db_url: str) -> None:
    """The migrations create exactly the tables, columns and indexes of schema.py."""
    async with await _open(db_url) as db, db.read() as conn:

        def diff(sync_conn: Connection) -> list[Any]:
            context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
            return list(compare_metadata(context, schema.metadata))

        assert await conn.run_sync(diff) == []


async def test_autoincrement_positions(db_url: str) -> None:
    async with await _open(db_url) as db:
        async with db.write() as conn:
            for i in range(3):
                row = dict(ROWS["events"], event_id=bytes([i]) * 32, origin_seq=i)
                await conn.execute(insert(schema.events).values(**row))
        async with db.read() as conn:
            positions = (await conn.execute(select(schema.events.c.pos))).scalars().all()
        assert sorted(positions) == [1, 2, 3]


async def test_failed_write_rolls_back_fully(db_url: str) -> None:
    async with await _open(db_url) as db:
        with pytest.raises(RuntimeError, match="boom"):
            async with db.write() as conn:
                for name, row in ROWS.items():
                    await conn.execute(insert(schema.metadata.tables[name]).values(**row))
                raise RuntimeError("boom")
        for name in ROWS:
            assert await _count(db, name) == 0, name
        # A constraint violation mid-batch undoes the rows before it as well.
        with pytest.raises(DBAPIError):
            async with db.write() as conn:
                await conn.execute(insert(schema.meta).values(key="a", value=b"1"))
                await conn.execute(insert(schema.meta).values(key="a", value=b"2"))
        assert await _count(db, "meta") == 0
        # And the writer is usable afterwards.
        async with db.write() as conn:
            await conn.execute(insert(schema.meta).values(key="a", value=b"1"))
        assert await _count(db, "meta") == 1


async def test_reads_are_read_only(db_url: str) -> None:
    async with await _open(db_url) as db:
        with pytest.raises(DBAPIError):
            async with db.read() as conn:
                await conn.execute(insert(schema.meta).values(key="a", value=b"1"))
        assert await _count(db, "meta") == 0


async def test_run_read_reads_committed_rows_only_and_never_writes(db_url: str) -> None:
    """On SQLite it runs on the caller's thread (the event loop's), with the reader's
    settings; while a write transaction is open it neither waits for it nor sees its
    rows; writing through it fails, on both databases."""
    sqlite = db_url.startswith("sqlite")

    def keys(conn: Connection, prefix: str) -> dict[str, Any]:
        return {
            "keys": sorted(
                conn.scalars(select(schema.meta.c.key).where(schema.meta.c.key.like(f"{prefix}%")))
            ),
            "thread": threading.get_ident(),
            "query_only": conn.scalar(text("PRAGMA query_only")) if sqlite else None,
        }

    async with await _open(db_url) as db:
        await db.run_write(lambda conn: _add_meta(conn, "a1"))
        async with db.write() as conn:
            await conn.execute(insert(schema.meta).values(key="a2", value=b"1"))
            seen = await asyncio.wait_for(db.run_read(keys, "a"), timeout=5)
            assert seen["keys"] == ["a1"]
        seen = await db.run_read(keys, "a")
        assert seen["keys"] == ["a1", "a2"]
        if sqlite:
            assert seen["thread"] == threading.get_ident() and seen["query_only"] == 1
        with pytest.raises(DBAPIError):
            await db.run_read(_add_meta, "b")
        assert await db.run_read(keys, "b") == {**seen, "keys": []}


async def test_refuses_database_without_schema(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite"):
        with pytest.raises(StorageError) as missing:
            await open_database(db_url)
        assert missing.value.reason == "schema_outdated"
        assert "duban migrate --data" in missing.value.detail
        assert not (tmp_path / "node.db").exists(), "must not create a database behind our back"
        (tmp_path / "node.db").touch()  # an empty file is an empty SQLite database
    with pytest.raises(StorageError) as empty:
        await open_database(db_url)
    assert empty.value.reason == "schema_outdated"
    assert "duban migrate --data" in empty.value.detail

    assert await migrate(db_url) == head_revision()
    assert await migrate(db_url) == head_revision()  # idempotent
    async with await open_database(db_url) as db:
        assert (await db.schema_state()).revisions == (head_revision(),)


async def test_refuses_unknown_revision(db_url: str) -> None:
    async with await _open(db_url) as db, db.write() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StorageError) as refused:
        await open_database(db_url)
    assert refused.value.reason == "schema_unknown"
    assert "9999" in refused.value.detail
    assert "duban migrate --data" in refused.value.detail
    with pytest.raises(StorageError) as not_migrated:
        await migrate(db_url)
    assert not_migrated.value.reason == "schema_unknown"


async def test_refuses_foreign_tables_without_revision(db_url: str) -> None:
    async with await _open(db_url) as db, db.write() as conn:
        await conn.execute(text("DROP TABLE alembic_version"))
    for attempt in (open_database(db_url), open_database(db_url, create=True), migrate(db_url)):
        with pytest.raises(StorageError) as refused:
            await attempt
        assert refused.value.reason == "schema_unknown"


async def test_concurrent_writers_serialise(db_url: str) -> None:
    async with await _open(db_url) as db:
        async with db.write() as conn:
            await conn.execute(insert(schema.links).values(link="counter"))

        async def bump(times: int) -> None:
            for _ in range(times):
                async with db.write() as conn:
                    # Read-modify-write with a yield in between: lost updates
                    # unless writers really run one at a time.
                    value = await conn.scalar(
                        select(schema.links.c.failures).where(schema.links.c.link == "counter")
                    )
                    await asyncio.sleep(0)
                    await conn.execute(
                        update(schema.links)
                        .where(schema.links.c.link == "counter")
                        .values(failures=int(value or 0) + 1)
                    )

        await asyncio.gather(bump(200), bump(200))
        async with db.read() as conn:
            total = await conn.scalar(
                select(schema.links.c.failures).where(schema.links.c.link == "counter")
            )
        assert total == 400


def _add_meta(conn: Connection, key: str) -> int:
    conn.execute(insert(schema.meta).values(key=key, value=b"1"))
    return int(conn.scalar(select(func.count()).select_from(schema.meta)) or 0)


async def test_run_write_commits_or_rolls_back_and_takes_turns_with_write(db_url: str) -> None:
    async with await _open(db_url) as db:
        assert await db.run_write(lambda conn: _add_meta(conn, "a")) == 1

        def fails(conn: Connection) -> None:
            _add_meta(conn, "b")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await db.run_write(fails)
        with pytest.raises(DBAPIError):  # the second row breaks the key: the first goes too
            await db.run_write(lambda conn: (_add_meta(conn, "c"), _add_meta(conn, "a")))
        async with db.read() as conn:
            assert (await conn.execute(select(schema.meta.c.key))).scalars().all() == ["a"]

        async with db.write() as conn:
            await conn.execute(insert(schema.links).values(link="counter", failures=0))
        counter = schema.links.c.link == "counter"

        def bump_sync(conn: Connection) -> None:
            value = conn.scalar(select(schema.links.c.failures).where(counter))
            conn.execute(update(schema.links).where(counter).values(failures=int(value) + 1))

        async def bump(times: int, synchronous: bool) -> None:
            for _ in range(times):
                if synchronous:
                    await db.run_write(bump_sync)
                    continue
                async with db.write() as conn:
                    value = await conn.scalar(select(schema.links.c.failures).where(counter))
                    await asyncio.sleep(0)  # a lost update unless the writers take turns
                    await conn.execute(
                        update(schema.links).where(counter).values(failures=int(value) + 1)
                    )

        await asyncio.gather(bump(100, True), bump(100, False), bump(100, True))
        async with db.read() as conn:
            assert await conn.scalar(select(schema.links.c.failures).where(counter)) == 300


async def test_sqlite_run_write_runs_on_the_writers_thread(tmp_path: Path) -> None:
    """The body runs off the event loop, which goes on meanwhile, with the writer's
    settings and SQLite's write lock held from its BEGIN."""
    path = tmp_path / "node.db"
    async with await _open(f"sqlite+aiosqlite:///{path}") as db:
        entered, release = threading.Event(), threading.Event()

        def body(conn: Connection) -> dict[str, Any]:
            entered.set()
            seen = {
                "thread": threading.get_ident(),
                "pragmas": [
                    conn.scalar(text(f"PRAGMA {name}"))
                    for name in ("journal_mode", "synchronous", "foreign_keys", "query_only")
                ],
                "busy_timeout": conn.scalar(text("PRAGMA busy_timeout")),
            }
            _assert_write_locked(path)
            assert release.wait(10)
            _add_meta(conn, "a")
            return seen

        job = asyncio.ensure_future(db.run_write(body))
        while not entered.is_set():
            await asyncio.sleep(0.005)
        loop_ran = 0
        for _ in range(5):
            await asyncio.sleep(0.01)
            loop_ran += 1
        assert loop_ran == 5 and not job.done()
        release.set()
        seen = await job
        assert seen["thread"] != threading.get_ident()
        assert seen["pragmas"] == ["wal", 2, 1, 0]
        assert int(seen["busy_timeout"]) >= 1000
        assert await _count(db, "meta") == 1


async def test_sqlite_a_cancelled_run_write_ends_its_transaction_first(tmp_path: Path) -> None:
    """Cancelling the caller does not abandon a transaction running on the writer's
    thread: the caller waits for it to end, and the next writer starts after it."""
    async with await _open(f"sqlite+aiosqlite:///{tmp_path / 'node.db'}") as db:
        entered, release = threading.Event(), threading.Event()

        def body(conn: Connection) -> int:
            _add_meta(conn, "a")
            entered.set()
            assert release.wait(10)
            return _add_meta(conn, "b")

        job = asyncio.ensure_future(db.run_write(body))
        while not entered.is_set():
            await asyncio.sleep(0.005)
        job.cancel()
        await asyncio.sleep(0.05)
        assert not job.done(), "the caller left while its transaction was still running"
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await job
        async with db.write() as conn:
            await conn.execute(insert(schema.meta).values(key="c", value=b"1"))
        assert await _count(db, "meta") == 3


async def test_insert_many_and_where_the_rows_went(db_url: str) -> None:
    """Rows go in many per statement (3,500 events take two), and the position
    of each is known, also when a row the caller did not insert came in between."""
    from node.storage.events import _EVENT_COLUMNS, _new_positions, insert_many

    rows = [
        (i.to_bytes(32, "big"), "item.assigned", "14", i, i, f"14-{i:06d}", "1401", "parent",
         NOW, b"raw")
        for i in range(1, 4504)
    ]
    ours = [r[0] for r in rows[3:]]
    pos = schema.events.c.pos

    def body(conn: Connection) -> None:
        insert_many(conn, schema.events, _EVENT_COLUMNS, rows[:3])
        before = int(conn.scalar(select(func.max(pos))) or 0)
        insert_many(conn, schema.events, _EVENT_COLUMNS, rows[3:1003])
        stored = dict(conn.execute(select(schema.events.c.event_id, pos).where(pos > before)).all())
        assert len(stored) == 1000
        assert _new_positions(conn, ours[:1000], before) == stored
        # Another row first, then ours: the rows after ``before`` are not all ours.
        before = int(conn.scalar(select(func.max(pos))) or 0)
        conn.execute(insert(schema.events).values(**dict(ROWS["events"], event_id=b"\xff" * 32)))
        insert_many(conn, schema.events, _EVENT_COLUMNS, rows[1003:])
        stored = dict(conn.execute(select(schema.events.c.event_id, pos).where(pos > before)).all())
        assert len(stored) == 3501
        found = _new_positions(conn, ours[1000:], before)
        assert {i: found[i] for i in ours[1000:]} == {i: stored[i] for i in ours[1000:]}

    async with await _open(db_url) as db:
        await db.run_write(body)
        assert await _count(db, "events") == 4504


async def test_reads_proceed_while_a_write_is_open(db_url: str) -> None:
    async with await _open(db_url) as db:
        async with db.write() as conn:
            await conn.execute(insert(schema.meta).values(key="a", value=b"1"))
            # The write transaction is open and holds the write lock: a reader
            # neither waits for it nor sees its uncommitted row.
            assert await asyncio.wait_for(_count(db, "meta"), timeout=5) == 0
        assert await _count(db, "meta") == 1


async def test_read_is_a_snapshot(db_url: str) -> None:
    async with await _open(db_url) as db, db.read() as reader:
        assert await reader.scalar(select(func.count()).select_from(schema.meta)) == 0
        async with db.write() as conn:
            await conn.execute(insert(schema.meta).values(key="a", value=b"1"))
        assert await reader.scalar(select(func.count()).select_from(schema.meta)) == 0


async def test_sqlite_pragmas(tmp_path: Path) -> None:
    async with await _open(f"sqlite+aiosqlite:///{tmp_path / 'node.db'}") as db:
        for session in (db.write, db.read):
            async with session() as conn:
                assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
                assert await conn.scalar(text("PRAGMA synchronous")) == 2  # FULL
                assert await conn.scalar(text("PRAGMA foreign_keys")) == 1
        # The writer's statements run on the loop's thread and never wait there: its
        # BEGIN waits for another process's lock on the pool instead
        # (tests/test_sqlite_async.py).
        async with db.read() as conn:
            assert int(await conn.scalar(text("PRAGMA busy_timeout")) or 0) >= 1000
        async with db.read() as conn:
            assert await conn.scalar(text("PRAGMA query_only")) == 1


async def test_sqlite_writer_begins_immediate(tmp_path: Path) -> None:
    """A write transaction holds SQLite's write lock from its BEGIN, before any write."""
    path = tmp_path / "node.db"
    async with await _open(f"sqlite+aiosqlite:///{path}") as db, db.write() as conn:
        await conn.scalar(text("SELECT 1"))
        _assert_write_locked(path)


def _assert_write_locked(path: Path) -> None:
    """Another connection to the SQLite file cannot take the write lock now."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()


async def test_try_lock_elects_one_holder(db_url: str) -> None:
    async with await _open(db_url) as first, await open_database(db_url) as second:
        assert await first.try_lock("sync-sender")
        assert await first.try_lock("sync-sender")  # already held: still ours
        assert not await second.try_lock("sync-sender")
        assert await second.try_lock("other")
        await first.unlock("sync-sender")
        assert await second.try_lock("sync-sender")
        assert not await first.try_lock("sync-sender")
        with pytest.raises(StorageError) as bad:
            await first.try_lock("Bad Name")
        assert bad.value.reason == "bad_lock_name"
    # Closing released everything.
    async with await open_database(db_url) as third:
        assert await third.try_lock("sync-sender")


async def test_missing_driver_is_actionable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(StorageError) as missing:
        await open_database("postgresql+asyncpg://duban@127.0.0.1:1/none")
    assert missing.value.reason == "driver_missing"
    assert "pip install 'duban[postgres]'" in missing.value.detail


async def test_unreachable_postgresql_is_a_storage_error() -> None:
    with pytest.raises(StorageError) as unreachable:
        await open_database("postgresql+asyncpg://duban@127.0.0.1:1/none")
    assert unreachable.value.reason == "unavailable"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////data/node.db", "sqlite+aiosqlite:////data/node.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_plain_urls_get_the_asyncio_driver(url: str, expected: str) -> None:
    assert normalise_url(url).render_as_string() == expected


@pytest.mark.parametrize(
    "url",
    ["mysql+aiomysql://u@h/db", "sqlite+pysqlite:////x.db", "sqlite+aiosqlite://", "not a url"],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(StorageError) as refused:
        normalise_url(url)
    assert refused.value.reason == "bad_url"


async def test_run_write_cancelled_mid_statement_ends_its_transaction(
    tmp_path: Path,
) -> None:
    """``run_write`` never abandons a transaction it began: cancelled while its
    statement runs, it waits for the transaction to end, and the write lock is free
    after. (:meth:`Database.write` cannot promise this: a cancel that lands in one
    of its statements leaves aiosqlite's connection inside the transaction, holding
    the lock for good. Writers that can be cancelled use ``run_write``; see
    ``Outbox.update_link``.)"""
    path = tmp_path / "cancel.db"
    slow = text(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000)"
        " SELECT count(*) FROM n"
    )
    async with await _open(f"sqlite+aiosqlite:///{path}") as db:

        def body(conn: Connection) -> None:
            conn.execute(insert(schema.meta).values(key="cancelled", value=b"1"))
            conn.execute(slow).scalar()

        task = asyncio.ensure_future(db.run_write(body))
        await asyncio.sleep(0.05)
        task.cancel()
        assert isinstance((await asyncio.gather(task, return_exceptions=True))[0],
                          asyncio.CancelledError)
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
        async with db.read() as conn:  # it ran to its end and committed
            assert await conn.scalar(
                select(schema.meta.c.value).where(schema.meta.c.key == "cancelled")) == b"1"
