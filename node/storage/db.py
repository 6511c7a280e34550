"""The node's database: one engine layer for SQLite (embedded) and PostgreSQL (large nodes).

The URL chooses the backend (``sqlite+aiosqlite:///DIR/node.db`` or
``postgresql+asyncpg://...``); everything above this module runs the same code on
both. What is promised:

- **One writer.** All writes go through ``async with db.write() as conn:`` (or
  :meth:`Database.run_write` for a synchronous body), one at a time per process
  (an ``asyncio.Lock``). On SQLite the transaction starts with
  ``BEGIN IMMEDIATE``, so the write lock is taken up front and a writer never
  fails half-way with ``SQLITE_BUSY`` when it upgrades a read lock; on PostgreSQL
  it is an ordinary transaction. The body is one transaction: it commits when the
  block ends and rolls back fully when it raises.
- **Reads never wait for the writer.** ``async with db.read() as conn:`` is a
  read-only snapshot on separate pooled connections (SQLite WAL lets readers run
  beside the one writer; PostgreSQL reads are ``REPEATABLE READ READ ONLY``).
- **Durable commits.** SQLite runs in WAL with ``synchronous=FULL``: a commit that
  returned survives a power cut. Foreign keys are on and a busy timeout covers
  other processes (``duban migrate``, backups) touching the same file.
- **Known schema.** The schema is versioned with Alembic (``migrations/``).
  :func:`open_database` refuses a database whose revision it does not know
  (``schema_unknown``) or that is behind this code (``schema_outdated``);
  :func:`migrate` upgrades, and ``open_database(create=True)`` initialises an
  empty database.

Errors from this module are :class:`StorageError` with a stable ``reason``.
Errors raised by statements inside ``write()``/``read()`` bodies (an
``IntegrityError``, say) are SQLAlchemy's own and are left to the caller.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from node.errors import NodeError
from node.storage import sqlite_async

logger = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).resolve().with_name("migrations")
VERSION_TABLE: Final = "alembic_version"
SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
MIGRATE_HINT: Final = "run `duban migrate --data DIR` (DIR: this node's data directory)"

_DRIVERS: Final = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
_DRIVER_HINTS: Final = {
    "sqlite": "SQLite needs aiosqlite: pip install aiosqlite "
    "(a dependency of duban; this installation is incomplete)",
    "postgresql": "PostgreSQL needs asyncpg: pip install 'duban[postgres]'",
}
_LOCK_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")

T = TypeVar("T")


class StorageError(NodeError):
    """A database that cannot be opened or used (a :class:`node.errors.NodeError`
    of no kind: a failure, not a refusal).

    ``reason`` is a stable code (for logs and the CLI); ``detail`` tells a human
    what happened and what to do. Reasons raised here: ``bad_url``,
    ``driver_missing``, ``unavailable``, ``schema_unknown``, ``schema_outdated``
    (also: no schema yet), ``bad_lock_name``.
    """


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL and pin it to the asyncio driver of its backend.

    Plain ``sqlite://`` and ``postgresql://`` (or ``postgres://``) URLs get their
    asyncio driver added, so a configuration can name just the database. Any
    other backend or driver is refused: Duban runs on asyncio and is tested on
    exactly these two.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError("bad_url", f"not a database URL: {exc}") from None
    # Read the name ourselves: asking SQLAlchemy would load the dialect first.
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _DRIVERS:
        raise StorageError(
            "bad_url",
            f"unsupported database {backend!r}: use sqlite+aiosqlite:///PATH "
            "or postgresql+asyncpg://USER@HOST/DB",
        )
    wanted = _DRIVERS[backend]
    if driver and driver != wanted:
        raise StorageError(
            "bad_url", f"driver {driver!r} is not supported for {backend}: use {backend}+{wanted}"
        )
    parsed = parsed.set(drivername=f"{backend}+{wanted}")
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise StorageError(
            "bad_url",
            "an in-memory SQLite database cannot be shared by the writer and the readers: "
            "give a file, e.g. sqlite+aiosqlite:///DIR/node.db",
        )
    return parsed


def alembic_config(url: str | URL | None = None) -> Config:
    """The Alembic configuration, built in code (no ``alembic.ini`` on disk).

    Also the entry point for developers writing a revision, e.g.
    ``command.revision(alembic_config(url), message=..., autogenerate=True,
    rev_id="0002")``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("version_table", VERSION_TABLE)
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        rendered = normalise_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The schema revision this code runs on."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations/versions holds no revision"
    return head


@dataclass(frozen=True, slots=True, kw_only=True)
class SchemaState:
    """What a database holds: its Alembic revision(s) and whether it has other tables."""

    revisions: tuple[str, ...]
    has_tables: bool


class Database:
    """An opened node database: the writer, the readers, and named locks.

    Build it with :func:`open_database`; close it with :meth:`close` (or use it
    as an async context manager). On SQLite the writer and the readers are two
    engines on the same file, so a reader never queues behind the writer's
    connection; on PostgreSQL they share one pool.
    """

    def __init__(
        self,
        url: URL,
        *,
        writer: AsyncEngine,
        reader: AsyncEngine,
        sync_writer: Engine | None = None,
        sync_reader: Engine | None = None,
    ) -> None:
        self.url = url
        self.dialect: str = url.get_backend_name()
        self._writer = writer
        self._reader = reader
        self._sync_writer = sync_writer
        self._sync_reader = sync_reader
        # run_write's bodies go to the process's database threads (one at a time per
        # node: the write lock), so a node has no thread of its own.
        self._writer_thread = sqlite_async.executor() if sync_writer else None
        self._write_lock = asyncio.Lock()
        self._pg_locks: dict[str, AsyncConnection] = {}
        self._file_locks: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"

    @property
    def display_url(self) -> str:
        """The URL without its password, for logs and error details."""
        return self.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """The single write transaction: commits at the end of the block, rolls back on error.

        Keep the body short and batch inside it (one transaction per received
        batch, never per event): every other writer in this process waits.

        Not for a task that may be cancelled mid-way (the sync client's loops): a
        cancel that lands while one of the block's statements runs in aiosqlite's
        thread leaves that connection inside its transaction, holding SQLite's
        write lock for good. Such writers use :meth:`run_write`, which never
        abandons a transaction it began.
        """
        async with self._write_lock, self._writer.begin() as conn:
            yield conn

    async def run_write(self, body: Callable[[Connection], T]) -> T:
        """``body(conn)`` as the single write transaction, on a synchronous connection:
        commits when it returns, rolls back when it raises; returns what it returns.

        For a body of many statements and nothing to await, such as storing a
        received batch. On SQLite it runs on the writer's own thread, statements and
        commit in one hand-off: through :meth:`write`, each statement is a round trip
        to the event loop and waits whenever the loop is busy (preparing the next
        batch), which made a commit take several times its own work. The event loop
        is free meanwhile, so ``body`` must not read state the loop changes; it gets
        its inputs as arguments. On PostgreSQL it runs through ``run_sync`` in
        :meth:`write`. Once started the transaction is never abandoned: cancelling
        the caller waits for it to end (commit or roll back) before the next writer.
        """
        if self._sync_writer is None or self._writer_thread is None:
            async with self.write() as conn:
                return await conn.run_sync(body)
        async with self._write_lock:
            loop = asyncio.get_running_loop()
            job = loop.run_in_executor(self._writer_thread, self._write_on_thread, body)
            try:
                return await asyncio.shield(job)
            except asyncio.CancelledError:
                await asyncio.wait([job])
                raise

    def _write_on_thread(self, body: Callable[[Connection], T]) -> T:
        assert self._sync_writer is not None
        with self._sync_writer.begin() as conn:
            return body(conn)

    async def run_read(self, body: Callable[..., T], *args: Any) -> T:
        """``body(conn, *args)`` in a read-only snapshot transaction, as :meth:`read`, for
        a short read of one or a few statements on the sync path.

        On SQLite it runs at once on the calling thread (the event loop's), through a
        plain ``sqlite3`` connection of its own: a WAL reader never waits for the
        writer. Through :meth:`read` each statement and the transaction's begin and
        end are hand-offs to a database thread and back, and while the writer's
        thread runs a commit each waits for the GIL: a catch-up's duplicate check,
        a millisecond of work, took many times that in wall time (docs/storage.md,
        docs/performance.md). So keep ``body`` short: the loop waits for it. On
        PostgreSQL it runs through ``run_sync`` in :meth:`read`."""
        if self._sync_reader is None:
            async with self.read() as conn:
                return await conn.run_sync(body, *args)
        with self._sync_reader.begin() as conn:
            return body(conn, *args)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot transaction that does not wait for the writer.

        Writing through it fails (``PRAGMA query_only`` on SQLite, a READ ONLY
        transaction on PostgreSQL), which keeps the one-writer rule honest.
        """
        async with self._reader.connect() as conn:
            if self.dialect == "postgresql":
                await conn.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            async with conn.begin():
                yield conn

    async def try_lock(self, name: str) -> bool:
        """Try to take the named lock without waiting; True if this Database holds it.

        Elects one process among several sharing a database (the sync sender of
        a province running several node processes on one PostgreSQL). On
        PostgreSQL it is a session advisory lock held on a connection kept for
        the purpose, so it is released when this process or its connection
        dies. On SQLite it is an ``flock`` on ``<db file>.<name>.lock``, released
        the same way. Calling it again while holding the lock returns True.
        """
        if not _LOCK_NAME.fullmatch(name):
            raise StorageError("bad_lock_name", f"lock names are [a-z0-9_.-]{{1,64}}: {name!r}")
        if name in self._pg_locks or name in self._file_locks:
            return True
        if self.dialect == "postgresql":
            return await self._try_pg_lock(name)
        return self._try_file_lock(name)

    async def unlock(self, name: str) -> None:
        """Release a lock taken with :meth:`try_lock` (nothing if not held)."""
        conn = self._pg_locks.pop(name, None)
        if conn is not None:
            try:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _lock_key(name)})
                await conn.commit()
            finally:
                await conn.close()
        fd = self._file_locks.pop(name, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    async def close(self) -> None:
        """Release held locks and close every connection."""
        for name in list(self._pg_locks) + list(self._file_locks):
            try:
                await self.unlock(name)
            except Exception:  # the connection may already be gone; the lock with it
                logger.warning("could not release lock %s cleanly", name, exc_info=True)
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()
        if self._sync_reader is not None:
            self._sync_reader.dispose()
        sync_writer, thread = self._sync_writer, self._writer_thread
        if sync_writer is not None and thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, sync_writer.dispose)

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def schema_state(self) -> SchemaState:
        """Read the database's schema revision(s) and whether it holds any table."""
        async with self._reader.connect() as conn:
            return await conn.run_sync(_read_schema_state)

    async def _try_pg_lock(self, name: str) -> bool:
        conn = await self._writer.connect()
        try:
            got = await conn.scalar(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": _lock_key(name)}
            )
            await conn.commit()  # a session lock outlives the transaction
        except BaseException:
            await conn.close()
            raise
        if got:
            self._pg_locks[name] = conn
            logger.info("took database lock %s", name)
            return True
        await conn.close()
        return False

    def _try_file_lock(self, name: str) -> bool:
        import fcntl  # POSIX only, like the rest of the node's deployment

        assert self.url.database is not None
        path = f"{self.url.database}.{name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._file_locks[name] = fd
        logger.info("took file lock %s", path)
        return True


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a lock name."""
    digest = hashlib.blake2b(f"duban:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _read_schema_state(conn: Connection) -> SchemaState:
    # Read Alembic's version table directly: a MigrationContext would log its
    # set-up on every start of the node.
    names = set(inspect(conn).get_table_names())
    revisions: tuple[str, ...] = ()
    if VERSION_TABLE in names:
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        revisions = tuple(sorted(rows))
    return SchemaState(revisions=revisions, has_tables=bool(names - {VERSION_TABLE}))


def _sqlite_engine(url: URL, *, writer: bool) -> AsyncEngine:
    """An engine of SQLAlchemy's aiosqlite dialect, its connections those of
    :mod:`node.storage.sqlite_async` (one job per statement, on the process's shared
    database threads), whose transactions SQLAlchemy begins itself (see
    :func:`_sqlite_setup`)."""
    engine = create_async_engine(
        url,
        async_creator=sqlite_async.creator(url, reader=not writer),
        pool_size=1 if writer else 4,
        max_overflow=0 if writer else 8,
    )
    _sqlite_setup(engine.sync_engine, writer=writer)
    _share_compiled(engine.sync_engine)
    return engine


def _sqlite_sync_engine(url: URL, *, writer: bool) -> Engine:
    """The writer of :meth:`Database.run_write` or the reader of :meth:`Database.run_read`:
    the same file through the plain ``sqlite3`` driver, one connection, used on one
    thread only (the writer's, or the event loop's)."""
    engine = create_engine(
        url.set(drivername="sqlite+pysqlite"),
        pool_size=1,
        max_overflow=0,
        connect_args={"check_same_thread": False},
    )
    _sqlite_setup(engine, writer=writer)
    _share_compiled(engine)
    return engine


_SHARED_COMPILED: dict[type, tuple[Any, Any]] = {}


def _share_compiled(engine: Engine) -> None:
    """Let ``engine`` use the dialect and the compiled-statement cache of the first
    SQLite engine of its driver in this process.

    SQLAlchemy keys its cache of compiled statements by the dialect *instance* and
    keeps one cache per engine: every node compiled each of its statements once more
    for each of its four engines, which in a process of 45 fresh nodes was a fifth of
    the cascade's CPU (compiling, in py-spy's samples; docs/performance.md) and in a
    process hosting a county's townships would be the same work hundreds of times,
    and the memory of hundreds of caches. The dialects are alike: the same driver
    and SQLite library, no per-engine dialect option. Each engine keeps its own
    pool and its own connect-time setup (the original dialect's ``on_connect``)."""
    shared = _SHARED_COMPILED.get(type(engine.dialect))
    if shared is None:
        _SHARED_COMPILED[type(engine.dialect)] = (engine.dialect, engine._compiled_cache)
    else:
        engine.dialect, engine._compiled_cache = shared


def _sqlite_setup(engine: Engine, *, writer: bool) -> None:
    """SQLAlchemy's documented recipe for SQLite transactions: the driver's own
    transaction handling is turned off (``isolation_level = None``) and the "begin"
    event emits BEGIN, here ``BEGIN IMMEDIATE`` for a writer. This also makes DDL
    transactional, so a migration is all or nothing."""
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")  # persistent; a no-op once set
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            if not writer:
                cursor.execute("PRAGMA query_only=ON")
        finally:
            cursor.close()
        driver = getattr(dbapi_connection, "driver_connection", None)
        if writer and isinstance(driver, sqlite_async.Connection):
            driver.run_inline(SQLITE_BUSY_TIMEOUT_MS)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to the driver: through exec_driver_sql a BEGIN cost as much as a
        # query (events, a cursor, a result); on the shared-pool driver it only waits
        # to ride with the transaction's first statement.
        driver = conn.connection.driver_connection
        assert driver is not None  # a connection in use
        if isinstance(driver, sqlite_async.Connection):
            driver.begin_later(begin)
        else:
            driver.execute(begin)


def _connect(url: URL, *, create: bool) -> Database:
    """Build the engines for a URL (no I/O yet except SQLite's file check)."""
    try:
        if url.get_backend_name() == "sqlite":
            _check_sqlite_file(url, create=create)
            writer = _sqlite_engine(url, writer=True)
            reader = _sqlite_engine(url, writer=False)
            return Database(
                url,
                writer=writer,
                reader=reader,
                sync_writer=_sqlite_sync_engine(url, writer=True),
                sync_reader=_sqlite_sync_engine(url, writer=False),
            )
        engine = create_async_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True)
        return Database(url, writer=engine, reader=engine)
    except ImportError as exc:
        hint = _DRIVER_HINTS[url.get_backend_name()]
        raise StorageError("driver_missing", f"{hint} ({exc})") from None


def _check_sqlite_file(url: URL, *, create: bool) -> None:
    if url.query.get("uri"):
        return
    assert url.database is not None
    path = Path(url.database)
    if path.exists():
        return
    if not create:
        # Not created behind the operator's back: a wrong path would otherwise
        # start a node on a fresh, empty database.
        raise StorageError(
            "schema_outdated", f"no database at {path} yet: {MIGRATE_HINT} to create it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)


async def _check_connection(db: Database) -> SchemaState:
    """Read the schema state, turning a failure to reach the database into StorageError."""
    try:
        state = await db.schema_state()
        if db.dialect == "sqlite":
            async with db.write() as conn:
                mode = await conn.scalar(text("PRAGMA journal_mode"))
            if str(mode).lower() != "wal":
                raise StorageError(
                    "unavailable",
                    f"{db.display_url}: SQLite refused WAL mode (journal_mode={mode}); "
                    "put the data directory on a local filesystem",
                )
        return state
    except (OSError, DBAPIError) as exc:
        raise StorageError("unavailable", f"cannot use {db.display_url}: {exc}") from None


def _classify(db: Database, state: SchemaState) -> str | None:
    """Refuse what this code cannot run on; return None when the schema is at head.

    Returns "empty" for a database with no tables and no revision.
    """
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    known = {rev.revision for rev in script.walk_revisions()}
    if not state.revisions:
        if state.has_tables:
            raise StorageError(
                "schema_unknown",
                f"{db.display_url} holds tables but no Duban schema revision: "
                "it is not a Duban node database, or it was not created by `duban migrate`",
            )
        return "empty"
    unknown = [rev for rev in state.revisions if rev not in known]
    if unknown:
        raise StorageError(
            "schema_unknown",
            f"{db.display_url} is at schema revision {', '.join(unknown)}, which this "
            f"version of Duban does not know (its newest is {head}); it was probably "
            "migrated by a newer Duban: run that version, or restore a backup and "
            f"{MIGRATE_HINT}",
        )
    if state.revisions != (head,):
        raise StorageError(
            "schema_outdated",
            f"{db.display_url} is at schema revision {', '.join(state.revisions)} and this "
            f"version of Duban needs {head}: back it up, then {MIGRATE_HINT}",
        )
    return None


@functools.cache
def _scripts() -> ScriptDirectory:
    """The migration scripts, read once per process: ``command.upgrade`` reads every
    revision file again for each database, a good part of creating a node (bench/enrol.py)."""
    return ScriptDirectory.from_config(alembic_config())


def _upgrade(conn: Connection) -> None:
    """``command.upgrade(config, "head")`` on ``conn``, with the scripts read once."""
    config = alembic_config()
    config.attributes["connection"] = conn
    script = _scripts()

    def upgrade(rev: Any, context: Any) -> Any:
        return script._upgrade_revs("head", rev)

    with EnvironmentContext(config, script, fn=upgrade, destination_rev="head"):
        script.run_env()


_MIGRATING = threading.Lock()
"""Held while a migration runs in this process. Alembic's ``context`` and ``op`` are
module globals: two upgrades at once (nodes enrolling concurrently in one process)
ran one's operations in the other's database ("table routes already exists")."""


async def _upgrade_to_head(db: Database) -> None:
    # A thread lock, as nodes may run in several event loops of one process; taken
    # without blocking the loop (a migration's statements switch back to it) and
    # without a thread that could take it after its waiter was cancelled.
    while not _MIGRATING.acquire(blocking=False):
        await asyncio.sleep(0.005)
    try:
        async with db.write() as conn:
            await conn.run_sync(_upgrade)
    finally:
        _MIGRATING.release()


async def open_database(url: str | URL, *, create: bool = False) -> Database:
    """Open a node database for running, checking that its schema is this code's.

    Raises StorageError: ``bad_url``, ``driver_missing``, ``unavailable``,
    ``schema_unknown``, ``schema_outdated`` (also for an empty database, or a
    missing SQLite file, without ``create``). With ``create=True`` an empty
    database is migrated to head; a database at an older revision is still
    refused, because upgrading is an operator's decision taken with a backup at
    hand (``duban migrate``).
    """
    parsed = normalise_url(url)
    db = _connect(parsed, create=create)
    try:
        state = await _check_connection(db)
        verdict = _classify(db, state)
        if verdict == "empty":
            if not create:
                raise StorageError(
                    "schema_outdated", f"{db.display_url} has no schema yet: {MIGRATE_HINT}"
                )
            logger.info("initialising empty database %s", db.display_url)
            await _upgrade_to_head(db)
    except BaseException:
        await db.close()
        raise
    logger.info("opened database %s", db.display_url)
    return db


async def migrate(url: str | URL) -> str:
    """Upgrade a database to the newest schema revision, creating it if empty.

    What ``duban migrate`` runs. The whole upgrade is one write transaction, so
    it applies fully or not at all (PostgreSQL and, through the BEGIN recipe,
    SQLite). A database at an unknown revision, or with foreign tables, is
    refused (``schema_unknown``). Returns the revision the database is now at.
    """
    parsed = normalise_url(url)
    db = _connect(parsed, create=True)
    try:
        state = await _check_connection(db)
        try:
            _classify(db, state)
        except StorageError as exc:
            if exc.reason != "schema_outdated":
                raise
        head = head_revision()
        if state.revisions == (head,):
            logger.info("database %s is already at schema revision %s", db.display_url, head)
            return head
        logger.info(
            "migrating %s from %s to %s",
            db.display_url,
            ", ".join(state.revisions) or "an empty database",
            head,
        )
        await _upgrade_to_head(db)
        return head
    finally:
        await db.close()


def placeholders(style: str, n: int, start: int = 1) -> str | None:
    """``n`` parameter markers in the driver's own style, numbered from ``start`` where
    the style numbers them; None for a style not handled."""
    if style == "qmark":
        return ", ".join("?" * n)
    if style == "numeric_dollar":
        return ", ".join(f"${i}" for i in range(start, start + n))
    if style == "format":
        return ", ".join(["%s"] * n)
    return None
