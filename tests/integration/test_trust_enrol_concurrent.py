"""Nodes enrolling at once in one process (issue 22): databases migrated concurrently,
and a parent taking many joins at the same time."""

from __future__ import annotations

import asyncio
from pathlib import Path

from node.clock import SystemClock
from node.demo.localtree import Shape
from node.storage.db import head_revision, open_database
from tests.federation import build, eventually, settled


async def test_databases_created_at_once_are_each_migrated(tmp_path: Path) -> None:
    # Alembic's context is global to the process: two upgrades at once used to run
    # each other's operations ("table routes already exists").
    urls = [f"sqlite+aiosqlite:///{tmp_path / f'n{i}.db'}" for i in range(8)]
    dbs = await asyncio.gather(*(open_database(u, create=True) for u in urls))
    try:
        for db in dbs:
            async with db.read() as conn:
                tables = set(await conn.run_sync(lambda c: c.dialect.get_table_names(c)))
                version = await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
                assert version.scalar() == head_revision()
            assert {"events", "routes", "links", "items"} <= tables
    finally:
        for db in dbs:
            await db.close()


async def test_a_parent_enrols_a_whole_level_at_once(tmp_path: Path) -> None:
    shape: Shape = [("14", None, "山西省", "province")]
    shape += [(f"14{i:02d}", "14", f"市{i}", "city") for i in range(1, 11)]
    shape += [(f"14{i:02d}01", f"14{i:02d}", f"县{i}", "county") for i in range(1, 11)]
    fed = await build(tmp_path, SystemClock(), shape)
    try:
        assert list(fed.nodes) == [n for n, *_ in shape]
        await eventually(lambda: settled(fed, len(shape)), timeout=60,
                         what="the tree to settle")
        assert len(fed["14"].ctx.trust.nodes()) == len(shape)
        for i in range(1, 11):
            city, county = f"14{i:02d}", f"14{i:02d}01"
            assert set(fed[city].ctx.trust.nodes()) == {"14", city, county}
            assert set(fed[county].ctx.trust.nodes()) == {"14", city, county}
    finally:
        await fed.stop()
