"""Trust records go only where they are needed (issue 22), on a real 15-node tree.

A node holds its ancestors' chain and its own subtree's certificates and revocations,
never a sibling's or a cousin's. A record about a node reaches that node's ancestors
and its whole subtree (a renewal of a city's certificate reaches its townships), and
nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.clock import SystemClock
from node.demo.localtree import LocalTree
from node.storage.events import SELF
from protocol.certs import issue_certificate, issue_revocation
from tests.federation import FOUR_LEVELS, build, eventually, settled

PROVINCE, CITY, OTHER_CITY = "14", "1401", "1402"
COUNTY, OTHER_COUNTY = "140101", "140102"
TOWN, SIBLING_TOWN, COUSIN_TOWN = "140101001", "140101002", "140102001"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[LocalTree]:
    tree = await build(tmp_path, SystemClock(), FOUR_LEVELS)
    try:
        await eventually(lambda: settled(tree, len(FOUR_LEVELS)), timeout=60,
                         what="the tree to settle")
        yield tree
    finally:
        await tree.stop()


async def quiet(fed: LocalTree, *, but: tuple[str, str]) -> bool:
    """Nothing pending on any link but ``but`` (node, link): the revoked township's
    link, which its parent no longer serves."""
    for node in fed.nodes.values():
        ctx = node.ctx
        links = [link for link in ctx.outbox.all_links() if (node.id, link) != but]
        if any(s.pending_out for s in await ctx.outbox.link_statuses(links)):
            return False
    return True


def holds(fed: LocalTree, node: str) -> set[str]:
    return set(fed[node].ctx.trust.nodes())


async def test_each_node_holds_its_chain_and_its_subtree(fed: LocalTree) -> None:
    everyone = {n for n, *_ in FOUR_LEVELS}
    assert holds(fed, PROVINCE) == everyone
    assert holds(fed, CITY) == {PROVINCE, CITY, COUNTY, OTHER_COUNTY, TOWN, SIBLING_TOWN,
                                COUSIN_TOWN, "140102002"}
    assert holds(fed, COUNTY) == {PROVINCE, CITY, COUNTY, TOWN, SIBLING_TOWN}
    assert holds(fed, TOWN) == {PROVINCE, CITY, COUNTY, TOWN}
    assert holds(fed, "140202002") == {PROVINCE, OTHER_CITY, "140202", "140202002"}
    # What a township holds is its chain, whatever the size of the tree.
    for node, _parent, _name, level in FOUR_LEVELS:
        if level == "township":
            assert len(holds(fed, node)) == 4


async def test_a_record_reaches_its_subject_s_ancestors_and_subtree_only(
    fed: LocalTree,
) -> None:
    province = fed[PROVINCE].ctx
    held = province.trust.current(CITY)
    now = province.clock.now_ms()
    renewal = issue_certificate(
        province.key, node=CITY, name=held.name, level=held.level, parent=PROVINCE,
        public_key=held.public_key, version=province.trust.version_of(CITY) + 1,
        not_before=now - 60_000, not_after=held.not_after, from_seq=held.from_seq,
    ).raw
    province.trust.add(renewal, now)
    await province.store.store_trust_records([renewal], SELF)

    county = fed[COUNTY].ctx
    town_key = county.trust.current(SIBLING_TOWN).key_id
    revocation = issue_revocation(
        county.key, node=SIBLING_TOWN, key_id=town_key,
        version=county.trust.version_of(SIBLING_TOWN) + 1, effective_at=now, last_seq=-1,
        reason="test",
    ).raw
    county.trust.add(revocation, now)
    await county.store.store_trust_records([revocation], SELF)

    # (The revoked township is no longer served: its parent refuses its requests.)
    below_city = [n for n, *_ in FOUR_LEVELS if n.startswith(CITY) and n != SIBLING_TOWN]

    async def arrived() -> bool:
        renewed = all(fed[n].ctx.trust.version_of(CITY) == 2 for n in below_city)
        revoked = all(
            fed[n].ctx.trust.revocations(SIBLING_TOWN) for n in (PROVINCE, CITY, COUNTY)
        )
        return renewed and revoked and await quiet(fed, but=(COUNTY, SIBLING_TOWN))

    await eventually(arrived, timeout=30, what="the renewal and the revocation")
    # Nowhere else: the other city's subtree never learns of the first city, and the
    # revoked township's sibling holds nothing of it.
    for node, *_ in FOUR_LEVELS:
        if node.startswith(OTHER_CITY):
            assert CITY not in holds(fed, node)
    assert SIBLING_TOWN not in holds(fed, TOWN)
    assert not fed[COUSIN_TOWN].ctx.trust.has_node(SIBLING_TOWN)
