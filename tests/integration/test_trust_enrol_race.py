"""A child enrolling while its parent holds a received batch between prepare and commit
still gets that batch's trust records (issue 22).

The parent's ingestor works a batch out in two steps (``Ingestor.prepare`` on the event
loop, ``Ingestor.commit`` in the write transaction) and a join may take the write lock
in between. Before the fix the batch's routes were fixed at prepare, when the child did
not exist yet, and the join queued only the records already stored: the child never
received the batch's records. Here the interleaving is made by hand, in both orders, on
real nodes over loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from node.clock import SystemClock
from node.demo.localtree import LocalTree, RunningNode, Shape
from node.http.enroll import issue_code
from node.setup import join_parent
from node.storage import schema as t
from node.storage.events import PARENT
from protocol.certs import issue_certificate
from tests.federation import FAST_SYNC, build, eventually, settled

SHAPE: Shape = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
]
PROVINCE, CITY, COUNTY = "14", "1401", "140101"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[LocalTree]:
    tree = await build(tmp_path, SystemClock(), SHAPE)
    try:
        await eventually(lambda: settled(tree, len(SHAPE)), what="the tree to settle")
        yield tree
    finally:
        await tree.stop()


def renewal_of_city(fed: LocalTree) -> bytes:
    """The province renews the city's certificate (same key, version + 1): a record
    about the city's own chain, which every node below the city needs."""
    province, city = fed[PROVINCE].ctx, fed[CITY].ctx
    held = city.trust.current(CITY)
    now = city.clock.now_ms()
    return issue_certificate(
        province.key, node=CITY, name=held.name, level=held.level, parent=PROVINCE,
        public_key=held.public_key, version=city.trust.version_of(CITY) + 1,
        not_before=now - 60_000, not_after=held.not_after, from_seq=held.from_seq,
    ).raw


async def enrol_county(fed: LocalTree, tmp_path: Path) -> RunningNode:
    city = fed[CITY]
    code = await issue_code(
        city.ctx.db, CITY, city.ctx.clock, city.ctx.config,
        child=COUNTY, name="小店区", level="county",
    )
    config = await join_parent(
        tmp_path / COUNTY, parent_url=city.url, code=code,
        root=str(city.config["node.root_fingerprint"]), clock=city.clock, extra=FAST_SYNC,
    )
    county = RunningNode(COUNTY, tmp_path / COUNTY, config, city.clock)
    fed.nodes[COUNTY] = county  # stopped with the tree
    return county


async def routed_to(node: RunningNode, link: str, raw: bytes) -> bool:
    async with node.ctx.db.read() as conn:
        pos = await conn.scalar(select(t.events.c.pos).where(t.events.c.raw == raw))
        assert pos is not None, "the record is stored"
        found = await conn.scalar(
            select(t.routes.c.pos).where(t.routes.c.link == link, t.routes.c.pos == pos)
        )
    return found is not None


@pytest.mark.parametrize("join_first", [True, False], ids=["join-in-between", "commit-first"])
async def test_a_child_enrolled_mid_batch_gets_the_batch_s_trust_records(
    fed: LocalTree, tmp_path: Path, join_first: bool
) -> None:
    city = fed[CITY]
    record = renewal_of_city(fed)
    ingestor = city.ctx.ingestor
    prepared = await ingestor.prepare(PARENT, [record])
    assert len(prepared.checked) == 1 and not prepared.refused
    if join_first:
        # The join takes the write lock between this batch's prepare and its commit.
        county = await enrol_county(fed, tmp_path)
        result = await ingestor.commit(prepared)
    else:
        result = await ingestor.commit(prepared)
        county = await enrol_county(fed, tmp_path)
    assert result.accepted == 1
    assert await routed_to(city, COUNTY, record), "queued for the new child"

    await county.start()

    async def renewed() -> bool:
        return county.ctx.trust.version_of(CITY) == city.ctx.trust.version_of(CITY) == 2

    await eventually(renewed, timeout=10, what="the county to hold the city's renewal")
