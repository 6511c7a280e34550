"""The tree: ancestry, routing and subtrees, checked against naive walks."""

from __future__ import annotations

import random

import pytest

from hierarchy import errors
from hierarchy.errors import HierarchyError
from hierarchy.synthetic import generate_tree, province_nodes
from hierarchy.tree import DEFAULT_LEVELS, Node, Tree, find_problems


def small() -> Tree:
    return Tree(
        [
            Node(id="14", name="山西省", level="province"),
            Node(id="1401", name="太原市", level="city", parent="14"),
            Node(id="1402", name="大同市", level="city", parent="14"),
            Node(id="140105", name="小店区", level="county", parent="1401"),
            Node(id="140106", name="迎泽区", level="county", parent="1401"),
            Node(id="140105001", name="坞城街道", level="township", parent="140105"),
            Node(id="140105002", name="营盘街道", level="township", parent="140105"),
            Node(id="140201", name="新荣区", level="county", parent="1402"),
            Node(id="140201001", name="新荣镇", level="township", parent="140201"),
        ]
    )


def test_basic_questions() -> None:
    tree = small()
    assert len(tree) == 9
    assert tree.root.id == "14"
    assert tree.levels == DEFAULT_LEVELS
    assert tree.parent("140105001") == "140105"
    assert tree.parent("14") is None
    assert tree.children("14") == ("1401", "1402")
    assert tree.children("140105001") == ()
    assert [tree.depth(n) for n in ("14", "1401", "140105", "140105001")] == [0, 1, 2, 3]
    assert tree.ancestors("140105001") == ["140105", "1401", "14"]
    assert tree.path_to_root("140105") == ["140105", "1401", "14"]
    assert tree.path_from_root("140105") == ["14", "1401", "140105"]
    assert tree.at_level("city") == ["1401", "1402"]
    assert "1401" in tree and "9999" not in tree
    assert tree.node("1402").name == "大同市"
    assert tree.get("nope") is None


def test_ancestry_is_strict_and_subtree_inclusive() -> None:
    tree = small()
    assert tree.is_ancestor("14", "140105001")
    assert tree.is_ancestor("1401", "140105002")
    assert not tree.is_ancestor("1401", "1401")
    assert not tree.is_ancestor("1401", "140201001")  # another city's township
    assert not tree.is_ancestor("140105001", "140105")  # upside down
    assert tree.in_subtree("1401", "1401")
    assert not tree.in_subtree("1402", "1401")


def test_subtrees_and_descendants_in_preorder() -> None:
    tree = small()
    assert list(tree.subtree("1401")) == [
        "1401",
        "140105",
        "140105001",
        "140105002",
        "140106",
    ]
    assert list(tree.descendants("1402")) == ["140201", "140201001"]
    assert list(tree.descendants("140105001")) == []
    assert tree.subtree_size("14") == 9
    assert [n.id for n in tree][:2] == ["14", "1401"]


def test_next_hop_and_routes() -> None:
    tree = small()
    assert tree.next_hop("14", "140105001") == "1401"
    assert tree.next_hop("1401", "140105001") == "140105"
    assert tree.next_hop("140105", "140105002") == "140105002"
    assert tree.next_hop("14", "140201001") == "1402"
    with pytest.raises(HierarchyError) as info:
        tree.next_hop("1401", "140201001")
    assert info.value.reason == errors.NOT_DESCENDANT
    with pytest.raises(HierarchyError):
        tree.next_hop("140105", "140105")
    assert tree.common_ancestor("140105001", "140106") == "1401"
    assert tree.common_ancestor("140105001", "140105") == "140105"
    assert tree.route("140105001", "140201001") == [
        "140105001",
        "140105",
        "1401",
        "14",
        "1402",
        "140201",
        "140201001",
    ]
    assert tree.route("14", "140105") == ["14", "1401", "140105"]
    assert tree.route("140105", "140105") == ["140105"]


def test_unknown_nodes_are_refused() -> None:
    tree = small()
    for ask in (
        lambda: tree.node("x"),
        lambda: tree.depth("x"),
        lambda: tree.is_ancestor("x", "14"),
        lambda: list(tree.subtree("x")),
        lambda: tree.ancestors("x"),
    ):
        with pytest.raises(HierarchyError) as info:
            ask()
        assert info.value.reason == errors.UNKNOWN_NODE


def test_a_city_may_govern_townships_directly_but_not_upside_down() -> None:
    Tree(
        [
            Node(id="44", name="广东省", level="province"),
            Node(id="4419", name="东莞市", level="city", parent="44"),
            Node(id="441900003", name="东城街道", level="township", parent="4419"),
        ]
    )
    with pytest.raises(HierarchyError) as info:
        Tree(
            [
                Node(id="44", name="广东省", level="province"),
                Node(id="441900003", name="东城街道", level="township", parent="44"),
                Node(id="4419", name="东莞市", level="city", parent="441900003"),
            ]
        )
    assert info.value.reason == errors.LEVEL_ORDER


def test_levels_are_configurable() -> None:
    levels = ("省", "市", "县", "乡")
    tree = Tree(
        [Node(id="a", name="A", level="省"), Node(id="b", name="B", level="市", parent="a")],
        levels,
    )
    assert tree.level_rank("市") == 1
    with pytest.raises(HierarchyError) as info:
        Tree([Node(id="a", name="A", level="province")], levels)
    assert info.value.reason == errors.UNKNOWN_LEVEL


def test_every_structural_problem_is_listed() -> None:
    nodes = [
        Node(id="14", name="省", level="province"),
        Node(id="1401", name="市", level="city", parent="14"),
        Node(id="1401", name="又一个市", level="city", parent="14"),
        Node(id="15", name="另一省", level="province"),
        Node(id="1403", name="孤儿", level="city", parent="9999"),
        Node(id="1404", name="错级", level="village", parent="14"),
        Node(id="a", name="A", level="county", parent="b"),
        Node(id="b", name="B", level="county", parent="a"),
    ]
    problems = find_problems(nodes, DEFAULT_LEVELS)
    assert [(p.line, p.reason) for p in problems] == [
        (3, errors.DUPLICATE_CODE),
        (4, errors.SECOND_ROOT),
        (5, errors.UNKNOWN_PARENT),
        (6, errors.UNKNOWN_LEVEL),
        (7, errors.CYCLE),
        (8, errors.CYCLE),
    ]
    with pytest.raises(HierarchyError) as info:
        Tree(nodes)
    assert len(info.value.problems) == 6
    with pytest.raises(HierarchyError) as info:
        Tree([])
    assert info.value.reason == errors.NO_ROOT


def test_nodes_validate_themselves() -> None:
    for kwargs, reason in (
        ({"id": "", "name": "x", "level": "city"}, errors.EMPTY_CODE),
        ({"id": "1", "name": "", "level": "city"}, errors.EMPTY_NAME),
        ({"id": "1", "name": " x", "level": "city"}, errors.BAD_NAME),
        ({"id": "1", "name": "x", "level": "city", "parent": "1"}, errors.CYCLE),
    ):
        with pytest.raises(HierarchyError) as info:
            Node(**kwargs)  # type: ignore[arg-type]
        assert info.value.reason == reason


def test_indexes_agree_with_naive_walks_on_a_province() -> None:
    tree = generate_tree(11, 10, 13)
    nodes = province_nodes(11, 10, 13)
    assert len(tree) == len(nodes) == 1 + 11 + 110 + 1430
    parent = {n.id: n.parent for n in nodes}

    def naive_ancestors(node: str) -> list[str]:
        out = []
        current = parent[node]
        while current is not None:
            out.append(current)
            current = parent[current]
        return out

    rng = random.Random(7)
    ids = [n.id for n in nodes]
    for _ in range(2000):
        a, b = rng.choice(ids), rng.choice(ids)
        assert tree.is_ancestor(a, b) == (a in naive_ancestors(b))
        if tree.is_ancestor(a, b):
            hop = tree.next_hop(a, b)
            assert parent[hop] == a and (hop == b or tree.is_ancestor(hop, b))
    for node in rng.sample(ids, 50):
        assert tree.ancestors(node) == naive_ancestors(node)
        below = {n for n in ids if node in naive_ancestors(n)}
        assert set(tree.descendants(node)) == below


def test_child_toward_is_next_hop_or_none_for_any_id() -> None:
    tree = small()
    for top in ("14", "1401", "140105"):
        for node in tree:
            expected = tree.next_hop(top, node.id) if tree.is_ancestor(top, node.id) else None
            assert tree.child_toward(top, node.id) == expected
    assert tree.child_toward("14", "9999") is None  # an id no certificate names
    assert tree.child_toward("9999", "14") is None
    assert tree.child_toward("1401", "1401") is None


def test_a_certified_tree_takes_levels_as_labels_but_checks_its_shape() -> None:
    nodes = [
        Node(id="14", name="省", level="province"),
        Node(id="1401", name="市", level="township", parent="14"),  # a child's odd choice
        Node(id="140101", name="县", level="village", parent="1401"),
    ]
    with pytest.raises(HierarchyError):
        Tree(nodes)
    tree = Tree.certified(nodes)
    assert tree.levels == (*DEFAULT_LEVELS, "village")
    assert tree.level_rank("village") == len(DEFAULT_LEVELS)
    assert tree.next_hop("14", "140101") == "1401"
    assert [n.id for n in tree] == [n.id for n in Tree.certified(list(reversed(nodes)))]
    for broken, reason in (
        ([], errors.NO_ROOT),
        ([*nodes, Node(id="15", name="另一省", level="province")], errors.SECOND_ROOT),
        ([*nodes, Node(id="1403", name="孤儿", level="city", parent="9999")],
         errors.UNKNOWN_PARENT),
        ([*nodes, Node(id="a", name="A", level="city", parent="b"),
          Node(id="b", name="B", level="city", parent="a")], errors.UNKNOWN_PARENT),
        ([*nodes, Node(id="1401", name="又一个", level="city", parent="14")],
         errors.DUPLICATE_CODE),
    ):
        with pytest.raises(HierarchyError) as info:
            Tree.certified(broken)
        assert info.value.reason == reason


def test_a_certified_province_answers_as_the_checked_one() -> None:
    nodes = province_nodes(3, 4, 5)
    checked, certified = Tree(nodes), Tree.certified(nodes)
    assert [n.id for n in checked] == [n.id for n in certified]
    for node in random.Random(7).sample([n.id for n in nodes], 30):
        assert certified.path_from_root(node) == checked.path_from_root(node)
        assert certified.child_toward("14", node) == checked.child_toward("14", node)
