"""Every word the pages use exists in both languages (no browser needed)."""

from __future__ import annotations

import re
from pathlib import Path

from node.http.web import i18n, item, ledger
from protocol import rules
from protocol.events import GRADES
from protocol.fold import ExtensionStatus, Status

WEB = Path(__file__).resolve().parents[2] / "node" / "http" / "web"
# _("key") in templates, t("key") / self("key") in Python.
_USES = re.compile(r"""(?:\b_|\bt|self)\(\s*["']([a-z_]+\.[a-z0-9_.\-]*)["']""")


def test_every_key_used_is_in_the_catalogue() -> None:
    used: set[str] = set()
    for path in [*WEB.glob("templates/*.html"), *WEB.glob("*.py")]:
        used.update(_USES.findall(path.read_text(encoding="utf-8")))
    assert used, "found no uses: the pattern is wrong"
    # Keys built in templates ("act." ~ name) are checked family by family.
    dynamic = {
        "act.": [*(name for name, *_ in item.ACTIONS), *item.POSTED],
        "sort.": list(ledger.SORT_CHOICES),
        "item.deadline.": ["deploy", "feedback", "resolve"],
        "item.extension.": [status.value for status in ExtensionStatus],
        "grade.": list(GRADES),
    }
    for prefix, names in dynamic.items():
        assert prefix in used
        used.discard(prefix)
        used.update(prefix + name for name in names)
    missing = sorted(key for key in used if key not in i18n.CATALOG)
    assert not missing, missing


def test_codes_are_translated_in_both_languages() -> None:
    for lang in i18n.LANGS:
        t = i18n.I18n(lang)
        for status in Status:
            assert t.status(status.value) != status.value or lang == "en"
        for colour in rules.Colour:
            assert t.colour(colour.value)
    zh, en = i18n.I18n("zh-CN"), i18n.I18n("en")
    assert [zh.status(s.value) for s in Status] == [
        "已交办", "已部署", "办理中", "按计划推进", "待审核",
        "已退回", "已通过", "已销号", "已撤回",
    ]
    assert en.status("closed") == "Closed"
    for key, pair in i18n.CATALOG.items():
        assert len(pair) == 2 and all(pair), key


def test_refusals_name_the_field_in_the_page_language() -> None:
    zh, en = i18n.I18n("zh-CN"), i18n.I18n("en")
    assert zh.error("missing_field", "deadline") == "请填写“办结时限”。"
    assert en.error("missing_field", "deadline") == "Fill in “Deadline”."
    assert zh.error("bad_field", "milestones[1].due") == "“第2个时间节点的时间”填写不正确。"
    assert zh.error("too_many_attempts", None, wait=30) == "登录失败次数过多，请 30 秒后再试。"
    assert zh.error("something_new", "x") == "操作未完成（something_new）。"


def test_durations_and_countdowns() -> None:
    zh, en = i18n.I18n("zh-CN"), i18n.I18n("en")
    hour = 3_600_000
    assert zh.countdown(51 * hour, 0) == "还剩 2天3小时"
    assert en.countdown(0, 5 * hour) == "overdue by 5h"
    assert zh.ago(None, 0) == "从未"
