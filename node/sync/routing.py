"""Where an accepted event goes next: up to the parent, down toward its addressee.

The tree a node routes on is the one its trust store knows: every certificate
names its parent. Rules (``source`` is "self", "parent" or a child's id):

- trust records (certificates, revocations) reach the whole tree: up unless
  they came from the parent, and down to every child but the one they came from;
- item events go up unless they came from the parent (every ancestor mirrors
  its subtree), and down to the child on the path toward the event's ``to``
  when that node is a strict descendant, unless they came from that child.
"""

from __future__ import annotations

from protocol.certs import TrustStore
from protocol.errors import ProtocolError

PARENT = "parent"
SELF = "self"
RECOVERY = "recovery"  # our own subtree's events handed back by the parent after a restore
_MAX_DEPTH = 64
_MAX_PATHS = 100_000  # events may name unknown nodes: keep the cache bounded


class TreeView:
    """Ancestry questions answered from the certificates a node holds."""

    def __init__(self, trust: TrustStore, me: str) -> None:
        self.trust = trust
        self.me = me
        # path_up answers, valid while the trust store holds the same records (every
        # event asks; the tree changes only when a certificate is added).
        self._paths: dict[str, tuple[str, ...]] = {}
        self._paths_of = -1

    def parent_of(self, node: str) -> str | None:
        try:
            return self.trust.current(node).parent
        except ProtocolError:
            return None

    def path_up(self, node: str) -> tuple[str, ...]:
        """``node`` and its known ancestors, nearest first."""
        if self._paths_of != len(self.trust) or len(self._paths) > _MAX_PATHS:
            self._paths.clear()
            self._paths_of = len(self.trust)
        path = self._paths.get(node)
        if path is None:
            out: list[str] = []
            current: str | None = node
            while current is not None and current not in out and len(out) < _MAX_DEPTH:
                out.append(current)
                current = self.parent_of(current)
            path = self._paths[node] = tuple(out)
        return path

    def children(self) -> list[str]:
        return sorted(n for n in self.trust.nodes() if self.parent_of(n) == self.me)

    def child_toward(self, node: str) -> str | None:
        """The child of ours on the path to ``node``, or None if not a strict descendant."""
        path = self.path_up(node)
        if self.me not in path:
            return None
        index = path.index(self.me)
        return path[index - 1] if index > 0 else None

    def in_subtree(self, node: str, top: str) -> bool:
        """Whether ``node`` is ``top`` or one of its known descendants."""
        return top in self.path_up(node)

    def is_ancestor(self, ancestor: str, node: str) -> bool:
        return ancestor != node and ancestor in self.path_up(node)


def routes_for(
    view: TreeView, *, source: str, is_trust_record: bool, to: str | None, has_parent: bool
) -> list[str]:
    links: list[str] = []
    if has_parent and source not in (PARENT, RECOVERY):
        links.append(PARENT)
    if is_trust_record:
        links.extend(c for c in view.children() if c != source)
    elif to is not None:
        child = view.child_toward(to)
        if child is not None and child != source:
            links.append(child)
    return links
