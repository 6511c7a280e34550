"""Reports as Markdown in Chinese, for leaders to read, print or paste.

Rendered from the same dicts the API answers with, so the text and the JSON
never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from node.queries import labels

_NONE = "无。"


def _when(value: str | None) -> str:
    """An ISO date-time as people write it: 2026-11-22 18:00."""
    if not value:
        return "—"
    return value[:16].replace("T", " ")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "｜").replace("\n", " ").strip() or "—"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    if not rows:
        return [_NONE]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _num(value: float) -> str:
    return f"{value:g}"


def _status(report: Mapping[str, Any]) -> str:
    return "" if report["final"] else "（期间未结束，数据暂定）"


def _overdue_rows(entries: Sequence[Mapping[str, Any]]) -> list[list[object]]:
    return [
        [
            i,
            e["id"],
            e["title"],
            e["node_name"],
            e["unit_name"],
            labels.name(labels.DEADLINE, e["deadline"]),
            _when(e["due"]),
            e["days_overdue"],
        ]
        for i, e in enumerate(entries, start=1)
    ]


_OVERDUE_HEADERS = ("序号", "事项编号", "事项名称", "承办单位", "责任单位", "逾期环节", "时限",
                    "逾期天数")


def weekly_text(report: Mapping[str, Any]) -> str:
    """The weekly summary (每周汇总)."""
    t = report["totals"]
    lines = [
        f"# {report['scope']['name']}“13710”督办事项每周汇总",
        "",
        f"**{report['period']['label']}**，统计截至 {_when(report['as_of'])}{_status(report)}",
        "",
        "## 一、总体情况",
        "",
        f"本周新增事项 {t['new']} 项；本周到期 {t['due']} 项，其中已办结 {t['due_done']} 项；"
        f"本周办结 {t['closed']} 项（按期办结率 {_rate(t['on_time_rate'])}）；"
        f"逾期未办结 {t['overdue']} 项；在办事项 {t['open']} 项"
        f"（绿 {t['green']}、黄 {t['yellow']}、红 {t['red']}）。",
        "",
        "## 二、分单位情况",
        "",
        *_table(
            ("承办单位", "责任单位", "新增", "到期", "办结", "逾期", "在办"),
            [
                [u["node_name"], u["unit_name"], u["new"], u["due"], u["closed"], u["overdue"],
                 u["open"]]
                for u in report["units"]
            ],
        ),
        "",
        "## 三、分地区情况",
        "",
        *_table(
            ("承办单位", "新增", "到期", "办结", "逾期", "在办", "绿", "黄", "红"),
            [
                [n["name"], n["new"], n["due"], n["closed"], n["overdue"], n["open"],
                 n["green"], n["yellow"], n["red"]]
                for n in report["nodes"]
            ],
        ),
        "",
        "## 四、逾期未办结事项",
        "",
        *_table(_OVERDUE_HEADERS, _overdue_rows(report["overdue"])),
        "",
        "## 五、本周到期事项",
        "",
        *_table(
            ("序号", "事项编号", "事项名称", "承办单位", "责任单位", "办理时限", "当前状态"),
            [
                [i, d["id"], d["title"], d["node_name"], d["unit_name"], _when(d["due"]),
                 labels.name(labels.STATUS, d["status"])]
                for i, d in enumerate(report["due"], start=1)
            ],
        ),
    ]
    return "\n".join(lines) + "\n"


def _ranking_rows(standings: Sequence[Mapping[str, Any]], *, unit: bool) -> list[list[object]]:
    rows = []
    for s in standings:
        c = s["counts"]
        who = [s["node_name"], s["unit_name"]] if unit else [s["node_name"]]
        rows.append([
            s["rank"], *who, _num(s["total"]), _num(s["gained"]), _num(s["deducted"]),
            c["resolved_excellent"], c["resolved_qualified"], c["returned"],
            c["late_feedback"], c["unfinished"],
        ])
    return rows


_RANK_TAIL = ("积分", "加分", "扣分", "优秀", "合格", "退回", "逾期反馈", "未完成")


def rules_text(rules: Mapping[str, float]) -> str:
    parts = []
    for rule, amount in rules.items():
        sign = "−" if rule in ("late_deploy", "late_feedback", "returned", "unfinished") else "+"
        parts.append(f"{labels.RULE[rule]} {sign}{_num(amount)}")
    return "；".join(parts) + "。"


def quarterly_text(report: Mapping[str, Any]) -> str:
    """The quarterly bulletin (季度通报)."""
    t = report["totals"]
    lines = [
        f"# {report['scope']['name']}“13710”督查激励积分季度通报",
        "",
        f"**{report['period']['label']}**，统计截至 {_when(report['as_of'])}{_status(report)}",
        "",
        "## 一、总体情况",
        "",
        f"本季度交办事项 {t['new']} 项，办结 {t['closed']} 项，其中按期办结 "
        f"{t['closed_on_time']} 项，按期办结率 {_rate(t['on_time_rate'])}；"
        f"季度末在办 {t['open']} 项，其中逾期未办结 {t['overdue']} 项。",
        "",
        "## 二、单位积分排名",
        "",
        *_table(("名次", "承办单位", "责任单位", *_RANK_TAIL),
                _ranking_rows(report["rankings"]["units"], unit=True)),
        "",
        "## 三、地区积分排名",
        "",
        *_table(("名次", "承办单位", *_RANK_TAIL),
                _ranking_rows(report["rankings"]["nodes"], unit=False)),
        "",
        "## 四、逾期未办结事项",
        "",
        *_table(_OVERDUE_HEADERS, _overdue_rows(report["overdue"])),
        "",
        "## 附：积分规则",
        "",
        rules_text(report["rules"]),
        "",
        "积分相同时，扣分少者列前；再相同时，评定优秀多者列前；仍相同者名次并列。",
    ]
    return "\n".join(lines) + "\n"
