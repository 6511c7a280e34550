"""The ledger (台账) as an Excel workbook, the way offices print and pass it on.

One sheet, 台账: a title row, a line saying what was exported (scope, filters,
time, count), then the header row and one row per item. The header is frozen
and filterable, columns have widths and wrap, the warning column (预警) is
filled red, yellow or green, and the sheet prints landscape, one page wide,
the header repeated on every page. Written in openpyxl's write-only mode, so a
large ledger streams instead of building every cell in memory first.

Dates are real Excel date-times in China time; the progress is a percentage.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.cell_range import CellRange

from node.queries.scores import number as json_number
from protocol.rules import CHINA_TZ

SHEET: Final = "台账"
CONTENT_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TITLE_ROW, INFO_ROW, HEADER_ROW = 1, 2, 3
FIRST_ROW: Final = HEADER_ROW + 1
MAX_TEXT: Final = 2000
#: Text that spreadsheet programs may read as a formula (OWASP "CSV injection").
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")

COLUMNS: Final = (
    ("序号", 6),
    ("事项编号", 18),
    ("事项名称", 36),
    ("板块", 14),
    ("来源", 14),
    ("事项类别", 18),
    ("交办单位", 14),
    ("承办单位", 14),
    ("责任单位（牵头单位）", 16),
    ("协办单位", 18),
    ("交办时间", 17),
    ("办理时限", 17),
    ("当前状态", 12),
    ("办理进度", 10),
    ("预警", 8),
    ("最新反馈", 48),
    ("是否逾期", 10),
    ("催办情况", 30),
    ("评价", 8),
    ("积分", 8),
)
HEADERS: Final = tuple(name for name, _ in COLUMNS)
WARNING_COLUMN: Final = HEADERS.index("预警") + 1
FILLS: Final = {"red": "FFC7CE", "yellow": "FFEB9C", "green": "C6EFCE", "grey": "D9D9D9"}
WARNING_TEXT: Final = {"red": "红", "yellow": "黄", "green": "绿", "grey": "—"}
_DATETIME = "yyyy-mm-dd hh:mm"
_THIN = Side(style="thin", color="808080")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_WRAP = Alignment(wrap_text=True, vertical="top")
_CENTRE = Alignment(horizontal="center", vertical="top", wrap_text=True)
_CENTRED_COLUMNS = frozenset({"序号", "当前状态", "办理进度", "预警", "是否逾期", "评价", "积分"})


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRow:
    """One item as printed: names and labels already chosen, times in unix ms."""

    item: str
    title: str
    board: str
    source: str
    item_class: str
    assigner: str
    assignee: str
    unit: str
    co_units: str
    assigned_at: int
    deadline: int
    status: str
    progress: int
    colour: str
    latest_feedback: str
    overdue: bool
    urges: str = ""
    """How often the item was urged (催办), and the last time by whom; "" if never."""
    grade: str = ""
    """The closing grade (评价) in Chinese; "" while not graded."""
    points: Decimal | None = None
    """The points its events earned (ledger.points_of); None while being scored again."""


def local_time(ms: int) -> datetime:
    """Unix ms as a naive China-time date-time (Excel has no time zones)."""
    return datetime.fromtimestamp(ms / 1000, CHINA_TZ).replace(tzinfo=None)


def _cell(ws: Any, value: object, **style: Any) -> WriteOnlyCell:
    """A cell of the sheet; a string is always text, never a formula.

    Titles, units and feedback are typed by people, and a ledger is opened by
    others: openpyxl writes a string that starts with ``=`` as a formula, and
    Excel or WPS run text that starts with ``= + - @`` (or a tab or CR before
    one) as one (``=HYPERLINK(...)``); an IME's full-width ``＝ ＋ － ＠`` and blanks
    before a sign are treated alike. Every string is stored as text, and one
    that starts with such a character also gets Excel's quote prefix (as if
    typed after ``'``), so editing the cell keeps it text; the visible text is
    what was typed.
    """
    risky = False
    if isinstance(value, str):  # characters a worksheet cannot hold (from query strings)
        text: str = ILLEGAL_CHARACTERS_RE.sub("", value)
        risky = text.lstrip(" \u3000").startswith(FORMULA_STARTS)
        value = text
    cell = WriteOnlyCell(ws, value=value)
    if isinstance(value, str):
        cell.data_type = "s"
        if risky:
            cell.quotePrefix = True
    for name, setting in style.items():
        setattr(cell, name, setting)
    return cell


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _values(number: int, row: LedgerRow) -> list[object]:
    return [
        number,
        row.item,
        row.title,
        row.board,
        row.source,
        row.item_class,
        row.assigner,
        row.assignee,
        row.unit,
        row.co_units,
        local_time(row.assigned_at),
        local_time(row.deadline),
        row.status,
        row.progress / 100,
        WARNING_TEXT.get(row.colour, row.colour),
        _clip(row.latest_feedback),
        "是" if row.overdue else "否",
        row.urges,
        row.grade,
        "计算中" if row.points is None else json_number(row.points),
    ]


def workbook_bytes(title: str, info: str, rows: Iterable[LedgerRow]) -> bytes:
    """The .xlsx file of the ledger ``rows`` under ``title`` and the ``info`` line."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(SHEET)
    last_column = get_column_letter(len(COLUMNS))
    for index, (_, width) in enumerate(COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(index)].width = width
    ws.freeze_panes = f"A{FIRST_ROW}"
    ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = "9"  # A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.merged_cells.add(CellRange(f"A{TITLE_ROW}:{last_column}{TITLE_ROW}"))
    ws.merged_cells.add(CellRange(f"A{INFO_ROW}:{last_column}{INFO_ROW}"))
    ws.append([_cell(ws, title, font=Font(bold=True, size=16),
                     alignment=Alignment(horizontal="center", vertical="center"))])
    ws.append([_cell(ws, info, font=Font(size=10), alignment=Alignment(horizontal="left"))])
    header_fill = PatternFill("solid", fgColor="DDEBF7")
    ws.append([
        _cell(ws, name, font=Font(bold=True), fill=header_fill, border=_BORDER,
              alignment=Alignment(horizontal="center", vertical="center", wrap_text=True))
        for name in HEADERS
    ])
    count = 0
    for count, row in enumerate(rows, start=1):
        cells = []
        for index, value in enumerate(_values(count, row), start=1):
            header = HEADERS[index - 1]
            cell = _cell(ws, value, border=_BORDER,
                         alignment=_CENTRE if header in _CENTRED_COLUMNS else _WRAP)
            if isinstance(value, datetime):
                cell.number_format = _DATETIME
            elif header == "办理进度":
                cell.number_format = "0%"
            if index == WARNING_COLUMN and row.colour in FILLS:
                cell.fill = PatternFill("solid", fgColor=FILLS[row.colour])
            if header == "是否逾期" and row.overdue:
                cell.font = Font(bold=True, color="C00000")
            cells.append(cell)
        ws.append(cells)
    ws.auto_filter.ref = f"A{HEADER_ROW}:{last_column}{HEADER_ROW + max(count, 1)}"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
