"""Where an accepted event goes next: up to the parent, down toward its addressee.

The tree a node routes on is the one its trust store knows (:class:`KnownTree`):
every certificate names its parent. Rules (``source`` is "self", "parent",
"recovery" or a child's id):

- item events go up unless they came from the parent (every ancestor mirrors
  its subtree), and down to the child on the path toward the event's ``to``
  when that node is a strict descendant, unless they came from that child;
- a trust record (a certificate or a revocation of node X, its *subject*) goes
  where X's certificate is needed: up unless it came from the parent (every
  ancestor of X), and down only into the subtree that holds X — to every child
  when X is this node or one of its ancestors (the chain every node below needs),
  else to the child on the path toward X. So a node holds its ancestors' chain and
  its own subtree's records, never a sibling's or a cousin's (issue 22: flooding
  every record to every node was N² copies).

Which children "every child" is must be decided when the record is stored, not when
its batch was prepared: a child may enroll in between (:attr:`KnownTree.children_now`).
"""

from __future__ import annotations

from hierarchy import errors
from hierarchy.errors import HierarchyError
from hierarchy.tree import Node, Tree
from node.storage.events import PARENT, RECOVERY
from protocol.certs import CERT_TYPE, REVOCATION_TYPE, Certificate, Revocation, TrustStore
from protocol.envelope import Envelope
from protocol.errors import ProtocolError

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
        self.children_now: tuple[str, ...] = ()
        """This node's children as of the last rebuild, replaced whole (never changed in
        place) on the event loop: readable from the writer's thread, where a received
        batch's trust records are routed to every child inside the write transaction.
        Every path that adds a child routes the child's certificate (which rebuilds)
        before its transaction commits, so a commit after it sees the child."""

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
            tree = self._tree = Tree.certified(nodes) if nodes else None
            self._of = len(self.trust)
            self._paths.clear()
            self.children_now = (
                tuple(sorted(tree.children(self.me))) if tree is not None and self.me in tree
                else ()
            )
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
        self._current()
        return list(self.children_now)

    def holds_for(self, node: str) -> list[bytes]:
        """The trust records ``node`` needs from us, in accepted order: the chain of
        every node of its subtree (its own and its ancestors' records, and its known
        descendants' for a node enrolled again)."""
        nodes = self.subtree(node) or ([node] if self.trust.has_node(node) else [])
        wanted: set[bytes] = set()
        for n in nodes:
            wanted.update(self.trust.chain(n))
        return [raw for raw in self.trust.export() if raw in wanted]

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


def trust_subject(env: Envelope) -> str | None:
    """The node a trust record is about (None if its body does not decode: such a
    record is refused before it is routed)."""
    try:
        if env.type == CERT_TYPE:
            return Certificate.from_body(env.body).node
        if env.type == REVOCATION_TYPE:
            return Revocation.from_body(env.body).node
    except ProtocolError:
        return None
    return None


def to_every_child(tree: KnownTree, subject: str | None) -> bool:
    """Whether a trust record about ``subject`` goes down to every child: it is about
    this node or one of its ancestors."""
    return subject is not None and tree.in_subtree(subject, tree.me)


def with_children_now(tree: KnownTree, links: list[str], source: str) -> list[str]:
    """``links`` and every child of this node now that is not among them nor ``source``.
    Safe on the writer's thread (:attr:`KnownTree.children_now`): a received batch calls
    it inside its write transaction for a record :func:`to_every_child`, so a child
    whose join committed before gets the batch's records (issue 22)."""
    extra = [c for c in tree.children_now if c != source and c not in links]
    return links + extra if extra else links


def routes_for(
    tree: KnownTree,
    *,
    source: str,
    is_trust_record: bool,
    to: str | None,
    has_parent: bool,
    subject: str | None = None,
) -> list[str]:
    """The links (outboxes) one accepted event is queued for. For a trust record,
    ``subject`` is the node it is about and ``to`` is not used."""
    links: list[str] = []
    if has_parent and source not in (PARENT, RECOVERY):
        links.append(PARENT)
    if is_trust_record:
        if to_every_child(tree, subject):
            links.extend(c for c in tree.children() if c != source)
            return links
        to = subject
    if to is not None:
        child = tree.child_toward(to)
        if child is not None and child != source:
            links.append(child)
    return links
