"""Import the government tree from the CSV file an office keeps in Excel.

Columns ``code,name,parent_code,level`` (in any order, header required), UTF-8
with or without a byte-order mark (Excel writes one). An empty ``parent_code``
marks the root.

A bad file is refused as a whole, listing *every* problem with its line number,
because the person fixing it is at a spreadsheet, not a debugger: unknown
parent, duplicate code, cycle, second root, unknown level, empty name, missing
or extra columns. Line numbers are physical lines of the file (1 is the header),
so they match what an editor shows, even when a quoted field spans lines.

:func:`compare` checks a published tree against the certificates a node holds
(``duban tree import``): a node's place in the tree is fixed by its certificate,
so the file must agree with it; only names may differ.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hierarchy import errors
from hierarchy.errors import HierarchyError, Problem
from hierarchy.tree import DEFAULT_LEVELS, Node, Tree, check_levels, find_problems

COLUMNS: tuple[str, ...] = ("code", "name", "parent_code", "level")
MAX_PROBLEMS_IN_MESSAGE = 20


@dataclass(frozen=True, slots=True)
class _Row:
    """A data line before it is trusted to be a :class:`Node`."""

    id: str
    name: str
    level: str
    parent: str | None
    line: int


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = bytes(data)[: exc.start].count(b"\n") + 1
        problem = Problem(line, errors.BAD_ENCODING, "not UTF-8 (save the file as CSV UTF-8)")
        raise HierarchyError(errors.BAD_CSV, str(problem), (problem,)) from None


def _header(record: list[str], line: int) -> tuple[dict[str, int], list[Problem]]:
    names = [c.strip().lower() for c in record]
    problems = [
        Problem(line, errors.BAD_COLUMNS, f"missing column {c!r}")
        for c in COLUMNS
        if c not in names
    ]
    seen: set[str] = set()
    for name in names:
        if name not in COLUMNS:
            problems.append(Problem(line, errors.BAD_COLUMNS, f"unknown column {name!r}"))
        elif name in seen:
            problems.append(Problem(line, errors.BAD_COLUMNS, f"column {name!r} twice"))
        seen.add(name)
    return {name: i for i, name in enumerate(names)}, problems


def _row(record: list[str], index: dict[str, int], line: int) -> tuple[_Row | None, list[Problem]]:
    if len(record) != len(COLUMNS):
        what = "missing" if len(record) < len(COLUMNS) else "extra"
        detail = f"{what} columns: {len(record)} fields, expected {len(COLUMNS)}"
        return None, [Problem(line, errors.BAD_COLUMNS, detail)]
    code, name, parent, level = (record[index[c]].strip() for c in COLUMNS)
    problems: list[Problem] = []
    if not code:
        problems.append(Problem(line, errors.EMPTY_CODE, "empty code"))
    elif not code.isprintable():
        problems.append(Problem(line, errors.BAD_CODE, f"{code!r} has control characters"))
    if not name:
        problems.append(Problem(line, errors.EMPTY_NAME, f"code {code}"))
    elif not name.isprintable():
        problems.append(Problem(line, errors.BAD_NAME, f"{name!r} has control characters"))
    if parent and not parent.isprintable():
        problems.append(Problem(line, errors.BAD_CODE, f"parent {parent!r}"))
    if not code or not code.isprintable():
        return None, problems  # nothing can refer to it; the rest is still checked
    # Kept even with a bad name, so its children are not reported as orphans.
    return _Row(id=code, name=name, level=level, parent=parent or None, line=line), problems


def _read(data: bytes | str, levels: tuple[str, ...]) -> tuple[list[_Row], list[Problem]]:
    """The file's rows and every problem found in it (none: a good tree)."""
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[Problem] = []
    rows: list[_Row] = []
    index: dict[str, int] | None = None
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if not any(field.strip() for field in record):
                continue
            if index is None:
                index, header_problems = _header(record, start)
                problems.extend(header_problems)
                if header_problems:
                    break
                continue
            row, row_problems = _row(record, index, start)
            problems.extend(row_problems)
            if row is not None:
                rows.append(row)
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, errors.BAD_CSV, str(exc)))
    if index is None and not problems:
        problems.append(Problem(1, errors.BAD_COLUMNS, "empty file; header " + ",".join(COLUMNS)))
    if index is not None and not problems and not rows:
        problems.append(Problem(0, errors.NO_ROOT, "no data lines"))
    structural = find_problems(rows, levels) if rows else []
    first_line: dict[str, int] = {}
    for row in rows:
        first_line.setdefault(row.id, row.line)
    for p in structural:
        # find_problems counts rows; the person at the spreadsheet counts lines.
        at = rows[p.line - 1] if p.line else None
        detail = p.detail
        if at is not None and p.reason == errors.DUPLICATE_CODE:
            detail = f"{at.id} already on line {first_line[at.id]}"
        problems.append(Problem(at.line if at is not None else 0, p.reason, detail))
    return rows, problems


def _refuse(problems: list[Problem]) -> HierarchyError:
    problems.sort(key=lambda p: p.line)
    shown = "; ".join(str(p) for p in problems[:MAX_PROBLEMS_IN_MESSAGE])
    more = len(problems) - MAX_PROBLEMS_IN_MESSAGE
    if more > 0:
        shown += f"; and {more} more"
    return HierarchyError(errors.BAD_CSV, f"{len(problems)} problems: {shown}", tuple(problems))


def read_rows(data: bytes | str, levels: Sequence[str] = DEFAULT_LEVELS) -> list[Node]:
    """Parse and check a CSV file; return its nodes or refuse with every problem."""
    rows, problems = _read(data, check_levels(levels))
    if problems:
        raise _refuse(problems)
    return [_node(r) for r in rows]


def _node(row: _Row) -> Node:
    return Node(id=row.id, name=row.name, level=row.level, parent=row.parent)


@dataclass(frozen=True, slots=True)
class Comparison:
    """A published tree that agrees with the certificates a node holds.

    ``renamed``: certified nodes the file names differently, as the file has them;
    ``not_enrolled``: nodes of the file that hold no certificate yet."""

    tree: Tree
    renamed: tuple[Node, ...]
    not_enrolled: tuple[Node, ...]


def compare(
    data: bytes | str, certified: Mapping[str, Node], levels: Sequence[str] = DEFAULT_LEVELS
) -> Comparison:
    """Check a published tree against ``certified`` (the nodes a node knows by their
    certificates): each must be in the file with the same parent and level; only
    names may differ. Refuses with every problem of the file and of the comparison
    at once (``bad_csv``, with ``parent_differs``, ``level_differs`` and
    ``not_in_file`` among the problems; line 0 is the file as a whole)."""
    rows, problems = _read(data, check_levels(levels))
    first: dict[str, _Row] = {}
    for each in rows:
        first.setdefault(each.id, each)
    for node_id, cert in certified.items():
        row = first.get(node_id)
        if row is None:
            problems.append(
                Problem(0, errors.NOT_IN_FILE, f"{node_id} {cert.name} holds a certificate")
            )
            continue
        if row.parent != cert.parent:
            problems.append(
                Problem(
                    row.line,
                    errors.PARENT_DIFFERS,
                    f"{node_id}: parent {row.parent or '(none)'} in the file, "
                    f"{cert.parent or '(none)'} in its certificate",
                )
            )
        if row.level != cert.level:
            problems.append(
                Problem(
                    row.line,
                    errors.LEVEL_DIFFERS,
                    f"{node_id}: level {row.level} in the file, {cert.level} in its certificate",
                )
            )
    if problems:
        raise _refuse(problems)
    nodes = [_node(r) for r in rows]
    return Comparison(
        tree=Tree(nodes, levels),
        renamed=tuple(n for n in nodes if n.id in certified and certified[n.id].name != n.name),
        not_enrolled=tuple(n for n in nodes if n.id not in certified),
    )


def import_csv(data: bytes | str, levels: Sequence[str] = DEFAULT_LEVELS) -> Tree:
    """The tree in a CSV file (``bytes`` as read from disk, or text)."""
    return Tree(read_rows(data, levels), levels)


def dump_csv(tree: Tree) -> str:
    """The tree as CSV text that :func:`import_csv` reads back (parents first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for node in tree:
        writer.writerow((node.id, node.name, node.parent or "", node.level))
    return out.getvalue()
