"""The pure half of reminders: what is new, late or superseded, who, which words, retries."""

from __future__ import annotations

import json
import random
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import config as cfg
from node.reminders.channels import fill_template
from node.reminders.schedule import (
    Person,
    Settings,
    SettingsError,
    key_of,
    message_key,
    plan_new,
    recipients,
    render,
    retry_delay,
)
from protocol.rules import DEFAULT_POLICY, HOUR, Reminder, ReminderPolicy

T = 1_772_413_200_000  # 2026-03-02 09:00 China time
MIN = 60_000


def soon(due: int, window: int = 5 * HOUR, deadline: str = "deploy") -> Reminder:
    return Reminder(at=due - window, deadline=deadline, kind="due_soon", due=due)


def overdue(due: int, deadline: str = "deploy") -> Reminder:
    return Reminder(at=due, deadline=deadline, kind="overdue", due=due)


# -- what is new -----------------------------------------------------------------------------


def test_only_reminders_whose_time_came_are_planned_in_time_order() -> None:
    due = T + 24 * HOUR
    got = plan_new([overdue(due), soon(due)], now=due - 4 * HOUR, known_since=T, late_after=MIN)
    assert [(p.reminder.kind, p.late, p.superseded) for p in got] == [("due_soon", True, False)]
    got = plan_new([overdue(due), soon(due)], now=due - 5 * HOUR, known_since=T, late_after=MIN)
    assert [(p.reminder.kind, p.late) for p in got] == [("due_soon", False)]


def test_late_counts_from_when_the_reminder_could_first_be_known() -> None:
    due = T + 3 * HOUR  # an explicit deadline so close that the window opened before assignment
    [plan] = plan_new([soon(due)], now=T + 30_000, known_since=T, late_after=10 * MIN)
    assert not plan.late
    [plan] = plan_new([soon(due)], now=T + 11 * MIN, known_since=T, late_after=10 * MIN)
    assert plan.late


def test_a_missed_due_soon_is_superseded_by_its_overdue_notice() -> None:
    due = T + 24 * HOUR
    other = T + 72 * HOUR
    got = plan_new(
        [soon(due), overdue(due), soon(other, deadline="feedback")],
        now=due + HOUR,
        known_since=T,
        late_after=MIN,
    )
    assert [(p.reminder.deadline, p.reminder.kind, p.superseded) for p in got] == [
        ("deploy", "due_soon", True),
        ("deploy", "overdue", False),
    ]


def test_keys_put_the_due_time_in_so_a_moved_deadline_is_a_new_reminder() -> None:
    a, b = soon(T + 24 * HOUR), soon(T + 48 * HOUR)
    assert key_of("14-000001", a) != key_of("14-000001", b)
    milestone = Reminder(at=T, deadline="milestone", kind="due_soon", due=T + HOUR, milestone=0)
    assert key_of("14-000001", milestone)[2] == 0
    assert key_of("14-000001", a)[2] == -1
    one = message_key("14", key_of("14-000001", a), "sms", "13800000001")
    assert one == message_key("14", key_of("14-000001", a), "sms", "13800000001")
    assert one != message_key("1401", key_of("14-000001", a), "sms", "13800000001")
    assert len(one) == 32


# -- who -------------------------------------------------------------------------------------


PEOPLE = [
    Person(name="h", display_name="h", role="unit_head", unit="env"),
    Person(name="o", display_name="o", role="operator", unit="env"),
    Person(name="v", display_name="v", role="viewer", unit="env"),
    Person(name="f", display_name="f", role="unit_head", unit="fin"),
    Person(name="oh", display_name="oh", role="unit_head", unit="office"),
    Person(name="s", display_name="s", role="supervisor", unit=None),
]
UNITS = {"env", "fin", "office", "empty"}


def names(found: tuple[Person, ...]) -> list[str]:
    return [p.name for p in found]


def test_the_handling_units_head_and_operator() -> None:
    found, note = recipients(PEOPLE, unit="env", units=UNITS, office_units={"office"})
    assert names(found) == ["h", "o"] and note == "unit env"


def test_an_item_for_the_whole_node_goes_to_the_office_then_the_supervisors() -> None:
    for unit in (None, "unknown_here"):
        found, _ = recipients(PEOPLE, unit=unit, units=UNITS, office_units={"office"})
        assert names(found) == ["oh"]
    found, note = recipients(PEOPLE, unit="empty", units=UNITS, office_units={"office"})
    assert names(found) == ["oh"] and note.startswith("unit empty has no unit_head")
    found, note = recipients(PEOPLE[:4] + PEOPLE[5:], unit=None, units=UNITS, office_units=set())
    assert names(found) == ["s"] and note == "the supervisors"
    found, note = recipients(PEOPLE[2:3], unit=None, units=UNITS, office_units=set())
    assert found == () and "nobody" in note


# -- words -----------------------------------------------------------------------------------


def test_chinese_texts_by_default_and_late_ones_marked() -> None:
    due = T + 24 * HOUR
    subject, text = render(language="zh", title="整治河道", reminder=soon(due), late=False)
    assert text == "【督办提醒】事项《整治河道》将于2026-03-03 09:00到期（研究部署），请及时办理。"
    assert subject == "【督办提醒】《整治河道》研究部署即将到期"
    _, text = render(language="zh", title="整治河道", reminder=overdue(due, "resolve"), late=True)
    assert text == (
        "[补发]【督办提醒】事项《整治河道》已于2026-03-03 09:00超期（落实解决），请尽快办理并反馈。"
    )
    milestone = Reminder(at=T, deadline="milestone", kind="due_soon", due=due, milestone=1)
    _, text = render(
        language="zh", title="t", reminder=milestone, late=False, milestone_title="完成签约"
    )
    assert "（计划节点“完成签约”）" in text


def test_english_texts_and_long_titles_shortened() -> None:
    title = "Repair " + "very " * 20 + "long road"
    _, text = render(language="en", title=title, reminder=soon(T + 24 * HOUR), late=True)
    assert text.startswith('[late] [Duban reminder] Item "Repair very')
    assert "… is due at 2026-03-03 09:00 (deploy)" in text.replace('"', "")
    assert len(text) < 140


# -- retries ---------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=200), st.integers(min_value=0, max_value=2**32))
def test_retry_delays_double_with_equal_jitter_up_to_the_cap(attempts: int, seed: int) -> None:
    delay = retry_delay(attempts, initial=60_000, cap=3_600_000, rng=random.Random(seed))
    base = min(3_600_000, 60_000 * 2 ** min(attempts - 1, 40))
    assert base // 2 <= delay <= base


# -- settings and templates ------------------------------------------------------------------


def test_settings_from_the_default_configuration_are_the_regulations() -> None:
    settings = Settings.from_config(cfg.Config(Path("."), {}))
    assert settings.policy == DEFAULT_POLICY
    assert (settings.enabled, settings.language, settings.tick_ms) == (True, "zh", 60_000)
    custom = cfg.Config(Path("."), {"reminders.deploy_before_hours": 8,
                                    "reminders.overdue": False})
    assert Settings.from_config(custom).policy == ReminderPolicy(
        deploy_before=8 * HOUR, overdue=False
    )
    with pytest.raises(SettingsError):
        Settings.from_config(cfg.Config(Path("."), {"reminders.language": "fr"}))
    with pytest.raises(SettingsError):
        Settings.from_config(cfg.Config(Path("."), {"reminders.milestone_before_hours": -1.0}))


def test_templates_escape_for_their_content_type() -> None:
    values = {"phone": "13800000001", "text": '他说"好"\n& 50%', "message_id": "abc"}
    body = fill_template('{"to": "{phone}", "msg": "{text}", "id": "{message_id}"}', values,
                         "application/json; charset=utf-8")
    assert json.loads(body) == {"to": "13800000001", "msg": '他说"好"\n& 50%', "id": "abc"}
    form = fill_template("mobile={phone}&content={text}&unknown={other}", values,
                         "application/x-www-form-urlencoded")
    assert parse_qs(form) == {"mobile": ["13800000001"], "content": ['他说"好"\n& 50%'],
                              "unknown": ["{other}"]}
