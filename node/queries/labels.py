"""Chinese names for the stable English codes, as offices write them in reports.

Codes not listed (a node's own "1+X" boards or sources) are shown as they are.
"""

from __future__ import annotations

from typing import Final

STATUS: Final = {
    "assigned": "已交办",
    "deployed": "已部署",
    "reporting": "办理中",
    "planned": "按方案推进",
    "resolved": "办结待审核",
    "returned": "已退回",
    "accepted": "已办结",
    "closed": "已销号",
    "withdrawn": "已撤回",
}
BOARD: Final = {
    "daily": "日常管理事项",
    "key_task": "重点工作任务",
    "reform": "重大改革事项",
    "engineering": "重点工程项目",
    "tech_upgrade": "重点技改项目",
    "investment": "重点招商项目",
}
SOURCE: Final = {
    "plenary": "政府全体会议",
    "executive": "政府常务会议",
    "office": "政府办公会议",
    "topical": "专题会议",
    "instruction": "领导批示",
    "other": "其他",
}
CLASS: Final = {
    "general": "一般性问题（7天）",
    "major": "重大复杂问题（1个月）",
    "explicit": "明确时限",
}
GRADE: Final = {"excellent": "优秀", "qualified": "合格", "unqualified": "不合格"}
COLOUR: Final = {"green": "绿", "yellow": "黄", "red": "红", "grey": "—"}
DEADLINE: Final = {
    "deploy": "研究部署", "feedback": "首次反馈", "resolve": "落实解决", "monthly": "按月反馈",
}
RULE: Final = {
    "deploy_on_time": "按时研究部署",
    "late_deploy": "逾期研究部署",
    "feedback_on_time": "按时反馈",
    "late_feedback": "逾期反馈",
    "resolved_excellent": "办结评定优秀",
    "resolved_qualified": "办结评定合格",
    "returned": "被退回",
    "unfinished": "季度末逾期未完成",
    "urged": "被催办",
    "monthly_missed": "未按月反馈",
}


def name(table: dict[str, str], code: str | None) -> str:
    if code is None:
        return ""
    return table.get(code, code)
