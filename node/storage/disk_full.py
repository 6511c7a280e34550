"""Is this error a full disk? The same answer for every database and driver.

A full disk shows as SQLite's ``SQLITE_FULL`` ("database or disk is full", from
aiosqlite or from the writer thread's plain ``sqlite3``), an ``OSError`` with
``ENOSPC`` (or ``EDQUOT``: a quota is as full as a disk) from a file we write,
or PostgreSQL's SQLSTATE 53100 ``disk_full`` (asyncpg's ``DiskFullError``) — each
possibly wrapped by SQLAlchemy (``.orig``) or chained (``__cause__``).
"""

from __future__ import annotations

import errno
import sqlite3

SQLITE_FULL = 13
PG_DISK_FULL = "53100"
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def storage_full(exc: BaseException | None) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sqlite3.Error) and (
            getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL
            or "database or disk is full" in str(exc)
        ):
            return True
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        if getattr(exc, "sqlstate", None) == PG_DISK_FULL or getattr(
            exc, "pgcode", None
        ) == PG_DISK_FULL:
            return True
        orig = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError wraps the driver's
        if isinstance(orig, BaseException) and id(orig) not in seen and storage_full(orig):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
