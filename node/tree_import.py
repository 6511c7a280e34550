"""``duban tree import``: the tree a province publishes, against the node's certificates.

A node's tree is the certificates it holds: each names its node, the node's name,
level and parent, signed by that parent. Enrollment makes them; a CSV file
cannot add a node, move one or change its level — only a certificate can, and
only its parent signs it. So the file (``code,name,parent_code,level``,
hierarchy/csv_import.py) is checked against the certificates: every node known
by certificate must be in it with the same parent and level. Every problem is
listed with its line number, and nothing changes if there is one.

What the file may change is names. The node re-certifies its own children whose
name in the file differs (same key, next version: hierarchy/keys.py ``rename``),
and the new certificates travel the tree like any; the root renames itself the
same way. Nodes further down are renamed by their own parents when they import
the file. Children of this node that the file lists but that hold no
certificate yet are listed, with the ``duban invite`` line that enrolls each.

Signing changes the trust store, which a running node keeps in memory: the
import runs while the node is stopped (node/storage/keyfile.py's lock), unless
it only checks (``dry_run``).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from hierarchy import keys
from hierarchy.csv_import import Comparison, compare
from hierarchy.tree import Node
from node.clock import Clock
from node.config import Config
from node.context import open_node
from node.storage import keyfile
from node.storage.events import SELF

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rename:
    node: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class TreeImport:
    """What an import found and did (``renamed`` is empty after a dry run)."""

    me: str
    comparison: Comparison
    renamed: tuple[Rename, ...]
    """Certified again here under the file's name (or, after a dry run, would be)."""
    revoked: tuple[Rename, ...]
    """Children renamed in the file whose key is revoked: named so when they join again."""
    elsewhere: tuple[Rename, ...]
    """Renamed in the file, certified by another node (their parent renames them)."""
    to_invite: tuple[Node, ...]
    """Children of this node in the file that hold no certificate yet."""
    dry_run: bool


async def import_tree(
    config: Config, clock: Clock, data: bytes, *, dry_run: bool = False
) -> TreeImport:
    """Check the CSV ``data`` against the node's certificates and, unless ``dry_run``,
    re-certify its children (and the root itself) under their new names. Refused
    with every problem (``HierarchyError`` ``bad_csv``) before anything changes."""
    lock = (
        contextlib.nullcontext()
        if dry_run
        else keyfile.hold(config.data_dir, exclusive=True)
    )
    with lock:
        ctx = await open_node(config, clock)
        try:
            trust, me = ctx.trust, ctx.me
            certified: dict[str, Node] = {}
            for node_id in trust.nodes():
                cert = trust.current(node_id)
                certified[node_id] = Node(
                    id=node_id, name=cert.name, level=cert.level, parent=cert.parent
                )
            comparison = compare(data, certified)
            renamed: list[Rename] = []
            revoked: list[Rename] = []
            elsewhere: list[Rename] = []
            for node in comparison.renamed:
                cert = trust.current(node.id)
                change = Rename(node.id, cert.name, node.name)
                if cert.parent != me and not (node.id == me and cert.parent is None):
                    elsewhere.append(change)
                elif any(r.key_id == cert.key_id for r in trust.revocations(node.id)):
                    revoked.append(change)
                else:
                    renamed.append(change)
            if not dry_run and renamed:
                now = ctx.clock.now_ms()
                records = [
                    keys.rename(trust, ctx.key, node=r.node, name=r.new, now=now)
                    for r in renamed
                ]
                await ctx.store.store_trust_records(records, SELF)
                logger.info("re-certified %d nodes under their published names", len(records))
        finally:
            await ctx.close()
    return TreeImport(
        me=me,
        comparison=comparison,
        renamed=tuple(renamed),
        revoked=tuple(revoked),
        elsewhere=tuple(elsewhere),
        to_invite=tuple(n for n in comparison.not_enrolled if n.parent == me),
        dry_run=dry_run,
    )
