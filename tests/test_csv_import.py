"""CSV import: a whole province's file, and broken files reported problem by problem."""

from __future__ import annotations

import pytest

from hierarchy import errors
from hierarchy.csv_import import compare, dump_csv, import_csv, read_rows
from hierarchy.errors import HierarchyError
from hierarchy.synthetic import (
    COUNTRY_LEVELS,
    country_nodes,
    generate_country_csv,
    generate_csv,
    generate_tree,
)
from hierarchy.tree import Node

HEADER = "code,name,parent_code,level\n"
GOOD = HEADER + "14,山西省,,province\n1401,太原市,14,city\n140105,小店区,1401,county\n"


def problems(text: str | bytes) -> list[tuple[int, str]]:
    with pytest.raises(HierarchyError) as info:
        import_csv(text)
    assert info.value.reason == errors.BAD_CSV
    return [(p.line, p.reason) for p in info.value.problems]


@pytest.mark.parametrize("bom", [False, True])
def test_a_whole_province_imports(bom: bool) -> None:
    text = generate_csv(11, 10, 13, bom=bom)
    tree = import_csv(text.encode("utf-8"))
    assert len(tree) == 1552
    assert tree.root.id == "14"
    assert len(tree.at_level("city")) == 11
    assert len(tree.at_level("county")) == 110
    assert len(tree.at_level("township")) == 1430
    assert tree.ancestors("140105001") == ["140105", "1401", "14"]
    assert tree.node("140105001").name == "第1市第5县第1镇"
    assert tree.next_hop("14", "141010013") == "1410"
    assert tree.next_hop("1410", "141010013") == "141010"
    assert tree.is_ancestor("1411", "141110013")
    assert not tree.is_ancestor("1401", "140201001")
    assert tree.subtree_size("1401") == 1 + 10 + 130
    # What it imports, it exports the same way.
    again = import_csv(dump_csv(tree))
    assert [(n.id, n.name, n.parent, n.level) for n in again] == [
        (n.id, n.name, n.parent, n.level) for n in tree
    ]
    assert [n.id for n in generate_tree(11, 10, 13)] == [n.id for n in tree]


def test_a_whole_country_imports_with_its_levels() -> None:
    tree = import_csv(generate_country_csv(), COUNTRY_LEVELS)
    assert len(tree) == len(country_nodes()) == 44_982
    assert tree.next_hop("CN", "140105001") == "14"
    assert tree.path_from_root("410203007") == ["CN", "41", "4102", "410203", "410203007"]


def test_text_bytes_crlf_column_order_quotes_and_blank_lines() -> None:
    text = (
        "\ufefflevel, code ,Name,parent_code\r\n"
        "province,14,山西省,\r\n"
        "\r\n"
        'city,1401,"太原市, 省会",14\r\n'
        'county,"140105","小店区",1401\r\n'
    )
    tree = import_csv(text)
    assert tree.node("1401").name == "太原市, 省会"
    assert tree.node("140105").parent == "1401"
    assert len(import_csv(GOOD.encode("utf-8-sig"))) == 3


def test_each_problem_is_reported_with_its_line() -> None:
    assert problems(GOOD + "140106,迎泽区,9999,county\n") == [(5, errors.UNKNOWN_PARENT)]
    assert problems(GOOD + "1401,又一个,14,city\n") == [(5, errors.DUPLICATE_CODE)]
    assert problems(GOOD + "15,河北省,,province\n") == [(5, errors.SECOND_ROOT)]
    assert problems(GOOD + "140106,迎泽区,1401,district\n") == [(5, errors.UNKNOWN_LEVEL)]
    assert problems(GOOD + "140106,,1401,county\n") == [(5, errors.EMPTY_NAME)]
    assert problems(GOOD + ",迎泽区,1401,county\n") == [(5, errors.EMPTY_CODE)]
    assert problems(GOOD + "140106,迎泽区,1401\n") == [(5, errors.BAD_COLUMNS)]
    assert problems(GOOD + "140106,迎泽区,1401,county,extra\n") == [(5, errors.BAD_COLUMNS)]
    assert problems(GOOD + "140106,迎泽区,140105,city\n") == [(5, errors.LEVEL_ORDER)]
    cycle = GOOD + "a,甲,b,township\nb,乙,a,township\n"
    assert problems(cycle) == [(5, errors.CYCLE), (6, errors.CYCLE)]


def test_a_file_with_several_problems_reports_all_of_them() -> None:
    text = (
        HEADER
        + "14,山西省,,province\n"  # 2
        + "1401,太原市,14,city\n"  # 3
        + "1401,重复,14,city\n"  # 4 duplicate
        + "1402,,14,city\n"  # 5 empty name
        + "1403,孤儿,77,city\n"  # 6 unknown parent
        + "15,河北省,,province\n"  # 7 second root
        + "1404,长治市,14,metropolis\n"  # 8 unknown level
        + "1405,晋城市,14\n"  # 9 missing column
        + "x,甲,y,county\n"  # 10 cycle
        + "y,乙,x,county\n"  # 11 cycle
        + "140201,新荣区,1402,county\n"  # fine: 1402 exists despite its empty name
    )
    found = problems(text)
    assert found == [
        (4, errors.DUPLICATE_CODE),
        (5, errors.EMPTY_NAME),
        (6, errors.UNKNOWN_PARENT),
        (7, errors.SECOND_ROOT),
        (8, errors.UNKNOWN_LEVEL),
        (9, errors.BAD_COLUMNS),
        (10, errors.CYCLE),
        (11, errors.CYCLE),
    ]
    with pytest.raises(HierarchyError) as info:
        import_csv(text)
    assert "line 4" in info.value.detail and "line 11" in info.value.detail


def test_line_numbers_count_physical_lines() -> None:
    # A quoted field may span lines (the name is then refused: no line breaks in names).
    text = HEADER + '14,"山西\n省",,province\n\n1401,太原市,99,city\n'
    assert problems(text) == [(2, errors.BAD_NAME), (5, errors.UNKNOWN_PARENT)]


def test_header_and_file_level_problems() -> None:
    assert problems("") == [(1, errors.BAD_COLUMNS)]
    assert problems("code,name,level\n14,省,province\n") == [(1, errors.BAD_COLUMNS)]
    assert problems("code,name,parent_code,level,note\n") == [(1, errors.BAD_COLUMNS)]
    assert problems(HEADER) == [(0, errors.NO_ROOT)]
    assert problems(HEADER + "a,甲,b,city\nb,乙,a,county\n") == [
        (0, errors.NO_ROOT),
        (2, errors.CYCLE),
        (3, errors.CYCLE),
    ]
    bad_utf8 = GOOD.encode("utf-8") + "1402,大同市,14,city\n".encode("gbk")
    assert problems(bad_utf8) == [(5, errors.BAD_ENCODING)]


def test_many_problems_are_all_kept_but_the_message_stays_short() -> None:
    text = GOOD + "".join(f"9{i},x,nowhere,county\n" for i in range(100))
    with pytest.raises(HierarchyError) as info:
        read_rows(text)
    assert len(info.value.problems) == 100
    assert "and 80 more" in info.value.detail


CERTIFIED = {
    n.id: n
    for n in (
        Node(id="14", name="山西省", level="province"),
        Node(id="1401", name="太原市", level="city", parent="14"),
        Node(id="140105", name="小店区", level="county", parent="1401"),
    )
}


def test_a_published_tree_against_the_certificates() -> None:
    """Names may differ (renamed), nodes may be new (not enrolled); nothing else."""
    text = GOOD.replace("太原市", "太原市（新）") + "1402,大同市,14,city\n"
    result = compare(text, CERTIFIED)
    assert len(result.tree) == 4
    assert [(n.id, n.name) for n in result.renamed] == [("1401", "太原市（新）")]
    assert [n.id for n in result.not_enrolled] == ["1402"]
    unchanged = compare(GOOD, CERTIFIED)
    assert (unchanged.renamed, unchanged.not_enrolled) == ((), ())


def test_every_disagreement_with_the_certificates_has_its_line() -> None:
    text = (
        HEADER
        + "14,山西省,,province\n"  # 2
        + "1401,太原市,14,county\n"  # 3 level differs
        + "1402,大同市,14,city\n"  # 4
        + "1402,大同市,14,city\n"  # 5 duplicate of line 4
        + "1403,,14,city\n"  # 6 empty name: a problem of the file itself
    )  # 140105 is missing: certified, not in the file
    with pytest.raises(HierarchyError) as info:
        compare(text, CERTIFIED)
    got = [(p.line, p.reason) for p in info.value.problems]
    assert got == [
        (0, errors.NOT_IN_FILE),
        (3, errors.LEVEL_DIFFERS),
        (5, errors.DUPLICATE_CODE),
        (6, errors.EMPTY_NAME),
    ]
    assert "already on line 4" in info.value.problems[2].detail
    moved = GOOD.replace("140105,小店区,1401,county", "140105,小店区,14,county")
    with pytest.raises(HierarchyError) as info:
        compare(moved, CERTIFIED)
    [problem] = info.value.problems
    assert (problem.line, problem.reason) == (4, errors.PARENT_DIFFERS)
    assert "parent 14 in the file, 1401 in its certificate" in problem.detail
