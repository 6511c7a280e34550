"""Where an accepted event goes next: up to the parent, down toward its addressee.

The tree a node routes on is the one its trust store knows (:class:`KnownTree`):
every certificate names its parent. Rules (``source`` is "self", "parent",
"recovery" or a child's id):

- trust records (certificates, revocations) reach the whole tree: up unless
  they came from the parent, and down to every child but the one they came from;
- item events go up unless they came from the parent (every ancestor mirrors
  its subtree), and down to the child on the path toward the event's ``to``
  when that node is a strict descendant, unless they came from that child.
"""

from __future__ import annotations

from hierarchy import errors
from hierarchy.errors import HierarchyError
from hierarchy.tree import Node, Tree
from node.storage.events import PARENT, RECOVERY
from protocol.certs import Certificate, TrustStore

_MAX_PATHS = 100_000  # rows may name nodes no certificate does: keep the cache bounded


class KnownTree:
    """The tree as this node's certificates draw it, as a :class:`hierarchy.tree.Tree`
    (:meth:`Tree.certified`: a level is a label there), built again when the trust
    store grows — every event asks, the tree changes only when a record is added.

    Events may name any id: one that no certificate names is in no subtree but its
    own and below no node, instead of an error."""

    def __init__(self, trust: TrustStore, me: str) -> None:
        self.trust = trust
        self.me = me
        self._tree: Tree | None = None
        self._of = -1
        self._paths: dict[str, str] = {}
        # Each node's Node, by the certificate it was made from: a rebuild after a
        # record is added (a catch-up may add one between any two events) makes only
        # the new ones.
        self._made: dict[str, tuple[Certificate, Node]] = {}

    def _current(self) -> Tree | None:
        """The tree now; None while the trust store holds no certificate."""
        if self._of != len(self.trust):
            nodes = []
            for node_id in self.trust.nodes():
                cert = self.trust.current(node_id)
                made = self._made.get(node_id)
                if made is None or made[0] is not cert:
                    node = Node(id=cert.node, name=cert.name, level=cert.level, parent=cert.parent)
                    made = self._made[node_id] = (cert, node)
                nodes.append(made[1])
            self._tree = Tree.certified(nodes) if nodes else None
            self._of = len(self.trust)
            self._paths.clear()
        return self._tree

    @property
    def tree(self) -> Tree:
        """The tree, for the questions of ``hierarchy`` (permissions, pages)."""
        tree = self._current()
        if tree is None:
            raise HierarchyError(errors.NO_ROOT, "no certificate is held yet")
        return tree

    def children(self) -> list[str]:
        """This node's children, by id."""
        tree = self._current()
        return sorted(tree.children(self.me)) if tree is not None and self.me in tree else []

    def child_toward(self, node: str) -> str | None:
        """The child of ours on the path to ``node``, or None if not a strict descendant."""
        tree = self._current()
        return None if tree is None else tree.child_toward(self.me, node)

    def in_subtree(self, top: str, node: str) -> bool:
        """Whether ``node`` is ``top`` or one of its known descendants."""
        if node == top:
            return True
        tree = self._current()
        return tree is not None and node in tree and top in tree and tree.is_ancestor(top, node)

    def is_ancestor(self, ancestor: str, node: str) -> bool:
        """Whether ``ancestor`` is a known proper ancestor of ``node``."""
        return ancestor != node and self.in_subtree(ancestor, node)

    def subtree(self, top: str) -> list[str]:
        """``top`` and its known descendants, in preorder; none if ``top`` is unknown."""
        tree = self._current()
        return list(tree.subtree(top)) if tree is not None and top in tree else []

    def path_of(self, node: str) -> str:
        """The node's path from the root, "14/1401/140101/", for subtree prefix queries
        (an id no certificate names: "id/")."""
        tree = self._current()
        path = self._paths.get(node)
        if path is None:
            ids = tree.path_from_root(node) if tree is not None and node in tree else [node]
            path = "".join(f"{n}/" for n in ids)
            if len(self._paths) >= _MAX_PATHS:
                self._paths.clear()
            self._paths[node] = path
        return path


def routes_for(
    tree: KnownTree, *, source: str, is_trust_record: bool, to: str | None, has_parent: bool
) -> list[str]:
    """The links (outboxes) one accepted event is queued for."""
    links: list[str] = []
    if has_parent and source not in (PARENT, RECOVERY):
        links.append(PARENT)
    if is_trust_record:
        links.extend(c for c in tree.children() if c != source)
    elif to is not None:
        child = tree.child_toward(to)
        if child is not None and child != source:
            links.append(child)
    return links
