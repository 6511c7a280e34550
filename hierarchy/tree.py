"""The government tree: who is whose parent, and the questions routing asks.

Node ids are stable strings, usually administrative division codes (14
province, 1401 city, 140105 county, 140105001 township). Levels are ordered
from the top (province, city, county, township by default, configurable); a
child's level is strictly below its parent's but may skip one, because some
cities govern townships directly (不设区的市).

Every question here is asked on the hot path (scope checks on each event,
routing on each hop), so a :class:`Tree` builds its indexes once: a preorder
numbering makes ``is_ancestor`` two integer comparisons and a subtree a slice,
and ``next_hop`` is a binary search among one node's children.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from hierarchy import errors
from hierarchy.errors import HierarchyError, Problem

DEFAULT_LEVELS: tuple[str, ...] = ("province", "city", "county", "township")


def _check_text(value: object, what: str, reason: str, empty_reason: str = "") -> None:
    if type(value) is not str or not value:
        raise HierarchyError(empty_reason or reason, f"{what} must be a non-empty string")
    if value != value.strip() or not value.isprintable():
        raise HierarchyError(reason, f"{what} {value!r} is padded or not printable")


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """One government in the tree; ``parent`` is None for the root only."""

    id: str
    name: str
    level: str
    parent: str | None = None

    def __post_init__(self) -> None:
        _check_text(self.id, "code", errors.BAD_CODE, errors.EMPTY_CODE)
        _check_text(self.name, "name", errors.BAD_NAME, errors.EMPTY_NAME)
        _check_text(self.level, "level", errors.UNKNOWN_LEVEL)
        if self.parent is not None:
            _check_text(self.parent, "parent code", errors.BAD_CODE)
            if self.parent == self.id:
                raise HierarchyError(errors.CYCLE, f"{self.id} is its own parent")


def check_levels(levels: Sequence[str]) -> tuple[str, ...]:
    """Validate a level list (top first): non-empty, distinct names."""
    out = tuple(levels)
    if not out:
        raise HierarchyError(errors.UNKNOWN_LEVEL, "no levels configured")
    for level in out:
        _check_text(level, "level", errors.UNKNOWN_LEVEL)
    if len(set(out)) != len(out):
        raise HierarchyError(errors.UNKNOWN_LEVEL, "level names repeat")
    return out


class NodeShape(Protocol):
    """What structural checks read: a :class:`Node`, or a CSV row not yet one."""

    @property
    def id(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def parent(self) -> str | None: ...


def find_problems(nodes: Sequence[NodeShape], levels: Sequence[str]) -> list[Problem]:
    """Every structural problem of ``nodes`` (``Problem.line`` is the 1-based position).

    Reports duplicate codes, unknown levels, unknown parents, a second root, no
    root, a child not below its parent's level and each node on a cycle (a
    cycle always breaks the level order too; that is not reported twice). Nodes
    hanging below a broken node are not reported again: fixing the cause fixes them.
    """
    rank = {level: i for i, level in enumerate(levels)}
    problems: list[Problem] = []
    first: dict[str, int] = {}
    kept: dict[str, NodeShape] = {}
    for pos, node in enumerate(nodes, 1):
        if node.id in first:
            problems.append(
                Problem(pos, errors.DUPLICATE_CODE, f"{node.id} already at {first[node.id]}")
            )
        else:
            first[node.id] = pos
            kept[node.id] = node
    cycles = _cycles(kept, first)
    on_cycle = {p.line for p in cycles}
    root: str | None = None
    for node_id, node in kept.items():
        pos = first[node_id]
        if node.level not in rank:
            problems.append(Problem(pos, errors.UNKNOWN_LEVEL, f"{node.level!r} for {node_id}"))
        if node.parent is None:
            if root is None:
                root = node_id
            else:
                problems.append(Problem(pos, errors.SECOND_ROOT, f"{node_id}; the root is {root}"))
            continue
        parent = kept.get(node.parent)
        if parent is None:
            problems.append(Problem(pos, errors.UNKNOWN_PARENT, f"{node.parent} of {node_id}"))
        elif pos in on_cycle:
            continue  # every cycle breaks the level order somewhere; say "cycle" once
        elif node.level in rank and parent.level in rank and rank[node.level] <= rank[parent.level]:
            problems.append(
                Problem(
                    pos,
                    errors.LEVEL_ORDER,
                    f"{node_id} ({node.level}) under {parent.id} ({parent.level})",
                )
            )
    problems.extend(cycles)
    if root is None and kept:
        problems.append(Problem(0, errors.NO_ROOT, "no node without a parent"))
    problems.sort(key=lambda p: p.line)
    return problems


def _cycles(kept: dict[str, NodeShape], first: dict[str, int]) -> list[Problem]:
    done: set[str] = set()
    out: list[Problem] = []
    for start in kept:
        path: list[str] = []
        on_path: dict[str, int] = {}
        current: str | None = start
        while current is not None and current in kept and current not in done:
            if current in on_path:
                cycle = path[on_path[current] :]
                text = " -> ".join([*cycle, current])
                out.extend(Problem(first[c], errors.CYCLE, text) for c in cycle)
                break
            on_path[current] = len(path)
            path.append(current)
            current = kept[current].parent
        done.update(path)
    return out


class Tree:
    """An immutable, indexed tree of nodes. Build once, ask many times."""

    __slots__ = (
        "_child_pos",
        "_children",
        "_depth",
        "_end",
        "_levels",
        "_nodes",
        "_order",
        "_pos",
        "_rank",
        "_root",
    )

    def __init__(self, nodes: Iterable[Node], levels: Sequence[str] = DEFAULT_LEVELS) -> None:
        """Check ``nodes`` as a whole; refuse with every problem (reason of the first)."""
        node_list = list(nodes)
        self._levels = check_levels(levels)
        problems = find_problems(node_list, self._levels)
        if not node_list:
            problems = [Problem(0, errors.NO_ROOT, "the tree is empty")]
        if problems:
            text = "; ".join(str(p) for p in problems[:20])
            raise HierarchyError(problems[0].reason, text, tuple(problems))
        self._index(node_list)

    @classmethod
    def certified(cls, nodes: Iterable[Node], levels: Sequence[str] = DEFAULT_LEVELS) -> Tree:
        """The tree of nodes whose shape is vouched for elsewhere: by certificates, each
        signed by its node's parent (a trust store accepts no node before its parent,
        one root, and no change of parent). A level is a label there: one outside
        ``levels`` ranks after them, and a child's level is not compared with its
        parent's — a node must route and answer ancestry whatever level a descendant
        was given. What the indexes need is still checked: one root, every node
        reached from it, no id twice."""
        node_list = list(nodes)
        known = list(check_levels(levels))
        for n in node_list:
            if n.level not in known:
                known.append(n.level)
        tree = cls.__new__(cls)
        tree._levels = tuple(known)
        roots = [n.id for n in node_list if n.parent is None]
        if len(roots) != 1:
            raise HierarchyError(errors.NO_ROOT if not roots else errors.SECOND_ROOT,
                                 f"{len(roots)} nodes without a parent")
        tree._index(node_list)
        if len(tree._nodes) != len(node_list):
            raise HierarchyError(errors.DUPLICATE_CODE, "a node id is given twice")
        if len(tree._order) != len(node_list):
            raise HierarchyError(
                errors.UNKNOWN_PARENT,
                f"{len(node_list) - len(tree._order)} nodes not reached from the root"
                " (an unknown parent or a cycle)",
            )
        return tree

    def _index(self, node_list: list[Node]) -> None:
        """The indexes every question reads: preorder positions, depths, children."""
        self._rank = {level: i for i, level in enumerate(self._levels)}
        self._nodes: dict[str, Node] = {n.id: n for n in node_list}
        children: dict[str, list[str]] = {}
        root = ""
        for n in node_list:
            if n.parent is None:
                root = n.id
            else:
                children.setdefault(n.parent, []).append(n.id)
        self._root = root
        self._children = {k: tuple(v) for k, v in children.items()}
        self._order: list[str] = []
        self._pos: dict[str, int] = {}
        self._end: dict[str, int] = {}
        self._depth: dict[str, int] = {root: 0}
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            node_id, leaving = stack.pop()
            if leaving:
                self._end[node_id] = len(self._order)
                continue
            self._pos[node_id] = len(self._order)
            self._order.append(node_id)
            stack.append((node_id, True))
            kids = self._children.get(node_id, ())
            depth = self._depth[node_id] + 1
            for kid in reversed(kids):
                self._depth[kid] = depth
                stack.append((kid, False))
        self._child_pos = {
            k: [self._pos[c] for c in v] for k, v in self._children.items() if k in self._pos
        }

    # ------------------------------------------------------------ the nodes

    @property
    def levels(self) -> tuple[str, ...]:
        return self._levels

    @property
    def root(self) -> Node:
        return self._nodes[self._root]

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __iter__(self) -> Iterator[Node]:
        """All nodes in preorder (a parent before its children)."""
        return (self._nodes[i] for i in self._order)

    def node(self, node_id: str) -> Node:
        node = self._nodes.get(node_id)
        if node is None:
            raise HierarchyError(errors.UNKNOWN_NODE, repr(node_id)[:80])
        return node

    def get(self, node_id: str) -> Node | None:
        return self._nodes.get(node_id)

    def parent(self, node_id: str) -> str | None:
        return self.node(node_id).parent

    def children(self, node_id: str) -> tuple[str, ...]:
        self.node(node_id)
        return self._children.get(node_id, ())

    def depth(self, node_id: str) -> int:
        """Edges from the root (the root is 0)."""
        self.node(node_id)
        return self._depth[node_id]

    def level_rank(self, level: str) -> int:
        rank = self._rank.get(level)
        if rank is None:
            raise HierarchyError(errors.UNKNOWN_LEVEL, repr(level)[:80])
        return rank

    def at_level(self, level: str) -> list[str]:
        self.level_rank(level)
        return [i for i in self._order if self._nodes[i].level == level]

    # ------------------------------------------------------------- ancestry

    def is_ancestor(self, ancestor: str, node_id: str) -> bool:
        """True when ``ancestor`` is a proper ancestor of ``node_id``."""
        pos, end = self._pos.get(ancestor), self._end.get(ancestor)
        at = self._pos.get(node_id)
        if pos is None or end is None or at is None:
            raise HierarchyError(errors.UNKNOWN_NODE, f"{ancestor!r} or {node_id!r}"[:120])
        return pos < at < end

    def in_subtree(self, top: str, node_id: str) -> bool:
        """True when ``node_id`` is ``top`` or below it."""
        return (top == node_id and top in self._nodes) or self.is_ancestor(top, node_id)

    def ancestors(self, node_id: str) -> list[str]:
        """Parent first, root last (empty for the root)."""
        out: list[str] = []
        current = self.node(node_id).parent
        while current is not None:
            out.append(current)
            current = self._nodes[current].parent
        return out

    def path_to_root(self, node_id: str) -> list[str]:
        """``node_id`` first, the root last."""
        return [node_id, *self.ancestors(node_id)]

    def path_from_root(self, node_id: str) -> list[str]:
        return self.path_to_root(node_id)[::-1]

    def subtree(self, node_id: str) -> Iterator[str]:
        """``node_id`` and everything below it, in preorder."""
        self.node(node_id)
        for i in range(self._pos[node_id], self._end[node_id]):
            yield self._order[i]

    def descendants(self, node_id: str) -> Iterator[str]:
        """Everything strictly below ``node_id``, in preorder."""
        self.node(node_id)
        for i in range(self._pos[node_id] + 1, self._end[node_id]):
            yield self._order[i]

    def subtree_size(self, node_id: str) -> int:
        self.node(node_id)
        return self._end[node_id] - self._pos[node_id]

    # -------------------------------------------------------------- routing

    def next_hop(self, from_id: str, toward: str) -> str:
        """The child of ``from_id`` on the way down to its descendant ``toward``."""
        if not self.is_ancestor(from_id, toward):
            raise HierarchyError(errors.NOT_DESCENDANT, f"{toward} is not below {from_id}")
        kids = self._children[from_id]
        return kids[bisect_right(self._child_pos[from_id], self._pos[toward]) - 1]

    def child_toward(self, from_id: str, toward: str) -> str | None:
        """:meth:`next_hop`, or None when ``toward`` is not strictly below ``from_id``
        or either is unknown: routing asks about any id an event names."""
        pos, end, at = self._pos.get(from_id), self._end.get(from_id), self._pos.get(toward)
        if pos is None or end is None or at is None or not pos < at < end:
            return None
        return self.next_hop(from_id, toward)

    def common_ancestor(self, a: str, b: str) -> str:
        """The lowest node having both ``a`` and ``b`` in its subtree."""
        self.node(a)
        self.node(b)
        while not self.in_subtree(a, b):
            parent = self._nodes[a].parent
            if parent is None:  # pragma: no cover - the root contains everything
                break
            a = parent
        return a

    def route(self, from_id: str, to_id: str) -> list[str]:
        """Every node a message passes from ``from_id`` to ``to_id``, both ends included:
        up to the common ancestor, then down. Federation links are parent-child only."""
        top = self.common_ancestor(from_id, to_id)
        up = self.path_to_root(from_id)[: self._depth[from_id] - self._depth[top] + 1]
        down = self.path_to_root(to_id)[: self._depth[to_id] - self._depth[top]]
        return up + down[::-1]
