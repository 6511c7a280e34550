"""SQLite under SQLAlchemy's asyncio engine: one job per statement, on threads every
database of the process shares.

SQLAlchemy's ``sqlite+aiosqlite`` dialect drives an aiosqlite-shaped connection.
aiosqlite itself gives each connection a thread of its own and makes about four
hand-offs to it per statement (open a cursor, execute, fetch, close), each a wake
of that thread and a wake of the event loop: most of a busy node's CPU when many
nodes share a process (docs/performance.md, "Cascade"), and a thread for every
pooled connection of every node while they sleep (issue 22: ~4 threads a node).

:class:`Connection` here has the same shape, handed to the dialect through
``create_async_engine(async_creator=...)`` (:func:`creator`), and:

- runs a statement's execute and fetch as one job (the rows travel back with it);
  opening and closing a cursor are done in place, they touch no file;
- runs those jobs on one bounded thread pool per process (:func:`executor`), so an
  idle node holds no thread, and a hundred nodes no more than the pool's size;
- keeps one connection's jobs in order: a job starts only after the one before it
  on that connection ended, even when the task that started that one was
  cancelled while it ran (the connection is then rolled back or closed after it,
  never beside it);
- for a node's one writer connection (:meth:`Connection.run_inline`), run the
  statements on the event loop's thread and only the commit on the pool.

Only what the dialect and :mod:`node.storage.db` use is provided.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL

T = TypeVar("T")

_BEGIN: Final = re.compile(r"\s*BEGIN\b", re.IGNORECASE)
_WAIT_CODES: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
"""A BEGIN that failed with these found the write lock held: it waits on the pool."""

POOL_THREADS: Final = 8
"""Threads of the process's database pool: enough for a few slow page reads beside
the writers of busy nodes; statements of SQLite hold the GIL for most of their
Python side, so more would not run faster on the machines a node runs on."""

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The process's database thread pool (made at first use; threads start as jobs
    need them)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="duban-db")
        return _executor


def _execute(
    cursor: sqlite3.Cursor, begin: str | None, sql: str, params: Any
) -> tuple[list[Any] | None, Any, int, int | None]:
    if begin is not None:
        cursor.execute(begin)
    cursor.execute(sql, params)
    description = cursor.description
    rows = cursor.fetchall() if description is not None else None
    return rows, description, cursor.rowcount, cursor.lastrowid


def _executemany(
    cursor: sqlite3.Cursor, begin: str | None, sql: str, params: Iterable[Any]
) -> tuple[list[Any] | None, Any, int, int | None]:
    if begin is not None:
        cursor.execute(begin)
    cursor.executemany(sql, params)
    return None, cursor.description, cursor.rowcount, cursor.lastrowid


def _begin_waiting(raw: sqlite3.Connection, begin: str, busy_ms: int) -> None:
    raw.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    try:
        raw.execute(begin)
    finally:
        raw.execute("PRAGMA busy_timeout=0")


class Cursor:
    """A cursor whose rows arrive with its execute."""

    __slots__ = ("_conn", "_cursor", "_rows", "arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, conn: Connection, cursor: sqlite3.Cursor) -> None:
        self._conn = conn
        self._cursor = cursor
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _took(self, result: tuple[list[Any] | None, Any, int, int | None]) -> Cursor:
        rows, self.description, self.rowcount, self.lastrowid = result
        self._rows = rows if rows is not None else []
        return self

    async def execute(self, sql: str, params: Any = ()) -> Cursor:
        conn = self._conn
        if _BEGIN.match(sql):
            conn.begin_later(sql)
            return self._took((None, None, -1, self.lastrowid))
        return self._took(await conn.statement(_execute, self._cursor, sql, params))

    async def executemany(self, sql: str, params: Iterable[Any]) -> Cursor:
        rows = list(params)
        return self._took(await self._conn.statement(_executemany, self._cursor, sql, rows))

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self.arraysize if size is None else size
        rows, self._rows = self._rows[:n], self._rows[n:]
        return rows

    async def close(self) -> None:
        self._rows = []
        if self._conn.idle():
            self._cursor.close()
        else:  # a cancelled execute may still run on it
            await self._conn.run(self._cursor.close)


class _InPlace:
    """What the dialect's ``isolation_level`` setter puts its change through
    (aiosqlite's job queue): here the change is made at once."""

    __slots__ = ()

    def put_nowait(self, job: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = job
        try:
            future.set_result(function())
        except Exception as exc:  # handed to the awaiting caller
            future.set_exception(exc)


class Connection:
    """An aiosqlite-shaped connection over one ``sqlite3`` connection."""

    def __init__(
        self, raw: sqlite3.Connection, pool: ThreadPoolExecutor, *, reader: bool = False
    ) -> None:
        self._conn = raw
        self._reader = reader
        self._begin: str | None = None
        # The dialect reads this to tell an open connection from a closed one.
        self._connection: sqlite3.Connection | None = raw
        self._tx = _InPlace()
        self._pool = pool
        self._last: asyncio.Future[Any] | None = None
        self._inline = False
        self._busy_ms = 0

    def run_inline(self, busy_ms: int) -> None:
        """From now on run statements on the calling thread (the event loop's), commits
        still on the pool: for the one writer connection of a node.

        Inside a write transaction a statement only changes pages in SQLite's cache:
        the disk is written and synced at the commit, which stays on the pool. Only a
        BEGIN may wait, for another process holding the write lock (a ``duban``
        command on the same file): it is tried here without waiting, and if the lock
        is held, again on the pool, waiting up to ``busy_ms`` as before. Each
        statement then costs what SQLite takes for it, not a hand-off to a thread and
        back (with the GIL, often more than the statement)."""
        self._conn.execute("PRAGMA busy_timeout=0")
        self._busy_ms = busy_ms
        self._inline = True

    async def statement(
        self,
        fn: Callable[[sqlite3.Cursor, str | None, str, Any], T],
        cursor: sqlite3.Cursor,
        sql: str,
        params: Any,
    ) -> T:
        """One statement (with the BEGIN held back, if any) and its rows."""
        begin = self.take_begin()
        if not self._inline:
            return await self.run(fn, cursor, begin, sql, params)
        last = self._last
        if last is not None and not last.done():
            await asyncio.wait([last])
        if begin is not None:
            try:
                self._conn.execute(begin)
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", None) not in _WAIT_CODES:
                    raise
                await self.run(_begin_waiting, self._conn, begin, self._busy_ms)
        return fn(cursor, None, sql, params)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the pool, after this connection's job before it ended."""
        last = self._last
        if last is not None and not last.done():
            await asyncio.wait([last])
        job = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        self._last = job
        # Shielded: cancelling the caller must not mark the job done while its thread
        # still runs it (the next job would start beside it).
        return await asyncio.shield(job)

    def begin_later(self, sql: str) -> None:
        """Hold a BEGIN back: it runs in the job of the transaction's first statement."""
        if self._begin is not None:
            raise sqlite3.OperationalError("cannot start a transaction within a transaction")
        self._begin = sql

    def take_begin(self) -> str | None:
        """The BEGIN held back, if any, for the job about to run."""
        begin, self._begin = self._begin, None
        return begin

    def idle(self) -> bool:
        """Whether no job of this connection is running."""
        return self._last is None or self._last.done()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> Cursor:
        return Cursor(self, self._conn.cursor())

    async def execute(self, sql: str, params: Any = ()) -> Cursor:
        return await self.cursor().execute(sql, params)

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    async def commit(self) -> None:
        await self._end(self._conn.commit)

    async def rollback(self) -> None:
        if self._inline and self.idle():  # discards the cache's pages: no disk to wait for
            self.take_begin()
            self._conn.rollback()
            return
        await self._end(self._conn.rollback)

    async def _end(self, end: Callable[[], None]) -> None:
        """Commit or roll back. A transaction that ran no statement, or none at all
        (the pool's reset of a returned connection), needs no job; nor does the end
        of a read, which writes nothing and waits for nothing."""
        if self.take_begin() is not None and self.idle() and not self._conn.in_transaction:
            return
        if self.idle() and (self._reader or not self._conn.in_transaction):
            end()
            return
        await self.run(end)

    async def close(self) -> None:
        if self._connection is None:
            return
        self._connection = None
        await self.run(self._conn.close)

    def stop(self) -> None:
        """Close without waiting (the dialect's terminate)."""
        self._connection = None
        self._conn.close()


def creator(
    url: URL, pool: ThreadPoolExecutor | None = None, *, reader: bool = False
) -> Callable[[], Any]:
    """The ``async_creator`` of an engine on ``url``: connections opened on the pool
    (the process's, by default) with the arguments SQLAlchemy's own SQLite driver
    would use, and the driver's transaction handling off (SQLAlchemy begins and ends
    transactions itself: :func:`node.storage.db._sqlite_setup`). ``reader``: the
    connections only read (``PRAGMA query_only``), so their transactions end in place."""
    args: Sequence[Any]
    args, kwargs = SQLiteDialect_pysqlite().create_connect_args(url)
    database = args[0]

    def open_raw() -> sqlite3.Connection:
        return sqlite3.connect(
            database,
            timeout=float(kwargs.get("timeout", 5.0)),
            detect_types=int(kwargs.get("detect_types", 0)),
            cached_statements=int(kwargs.get("cached_statements", 128)),
            uri=bool(kwargs.get("uri", False)),
            isolation_level=None,
            check_same_thread=False,
        )

    async def connect() -> Connection:
        use = pool or executor()
        raw = await asyncio.get_running_loop().run_in_executor(use, open_raw)
        return Connection(raw, use, reader=reader)

    return connect
