"""Alembic environment for the node schema.

Normally driven by :func:`node.storage.db.migrate`, which passes its own write
connection in ``config.attributes["connection"]`` so that the upgrade runs
inside the node's one write transaction (``BEGIN IMMEDIATE`` on SQLite) and
commits or rolls back as a whole. Without a connection (a developer running
Alembic commands with :func:`node.storage.db.alembic_config`) it opens a
short-lived async engine on ``sqlalchemy.url``; offline mode (``--sql``) renders
the SQL for review.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from node.storage.schema import metadata

config = context.config


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=config.get_main_option("version_table") or "alembic_version",
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_configure_and_run)
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(
        url=url,
        target_metadata=metadata,
        version_table=config.get_main_option("version_table") or "alembic_version",
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = config.attributes.get("connection")
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        if not url:
            raise RuntimeError("offline migrations need sqlalchemy.url (alembic_config(url))")
        _run_offline(url)
    elif connection is not None:
        _configure_and_run(connection)
    elif url:
        asyncio.run(_run_with_own_engine(url))
    else:
        raise RuntimeError("give a connection or a URL: see node.storage.db.alembic_config")


_main()
