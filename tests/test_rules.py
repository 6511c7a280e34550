"""13710 deadline arithmetic on the real Chinese calendar, natural mode, month
clamping, the uncovered-year fallback, reminders and colours."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import errors, rules
from protocol.errors import ProtocolError
from protocol.events import Milestone
from protocol.fold import Deadline, ItemState, Plan, PlanStatus, Status
from protocol.rules import (
    CHINA_TZ,
    DAY,
    HOUR,
    Colour,
    ReminderPolicy,
    add_days,
    add_month,
    compute_deadlines,
    is_working_day,
)


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=CHINA_TZ).timestamp()) * 1000


def deadlines(start: int, item_class: str, calendar: str) -> tuple[int, int, int, bool]:
    d = compute_deadlines(assigned_at=start, item_class=item_class, calendar=calendar)
    return d.deploy, d.feedback, d.resolve, d.calendar_estimated


# -- the calendar ----------------------------------------------------------------------------


def test_official_calendar() -> None:
    assert is_working_day(date(2026, 10, 1)) == (False, False)  # National Day
    assert is_working_day(date(2026, 10, 10)) == (True, False)  # adjusted working Saturday
    assert is_working_day(date(2026, 2, 14)) == (True, False)  # adjusted, before Spring Festival
    assert is_working_day(date(2026, 2, 23)) == (False, False)  # a Monday in the holiday
    assert is_working_day(date(2026, 11, 21)) == (False, False)  # an ordinary Saturday


def test_uncovered_years_fall_back_to_weekdays() -> None:
    assert is_working_day(date(2027, 1, 1)) == (False, True)  # fixed holiday, a Friday
    assert is_working_day(date(2027, 1, 4)) == (True, True)  # a Monday
    assert is_working_day(date(2027, 1, 9)) == (False, True)  # a Saturday
    assert is_working_day(date(2027, 10, 1)) == (False, True)
    assert is_working_day(date(2003, 6, 2)) == (True, True)


# -- deadlines -------------------------------------------------------------------------------


def test_major_item_before_national_day_working() -> None:
    # Tue 2026-09-29 10:00; Oct 1-7 are holidays, Sat Oct 10 is a working day.
    assert deadlines(ms(2026, 9, 29, 10), "major", "working") == (
        ms(2026, 9, 30, 10),
        ms(2026, 10, 9, 10),
        ms(2026, 10, 29, 10),
        False,
    )


def test_general_item_crossing_national_day_uses_adjusted_saturday() -> None:
    # Wed 2026-09-30 15:00: +1 skips the whole holiday, +3 lands on the working Saturday.
    assert deadlines(ms(2026, 9, 30, 15), "general", "working") == (
        ms(2026, 10, 8, 15),
        ms(2026, 10, 10, 15),
        ms(2026, 10, 15, 15),
        False,
    )


def test_assignment_on_a_holiday_counts_from_the_next_working_day() -> None:
    # Sat 2026-10-03 (holiday): the clock starts at 00:00 on Thu Oct 8; the N-th working
    # day ends at 24:00, written as 00:00 of the next calendar day.
    assert deadlines(ms(2026, 10, 3, 15), "general", "working") == (
        ms(2026, 10, 9),
        ms(2026, 10, 11),
        ms(2026, 10, 16),
        False,
    )


def test_assignment_at_midnight_of_a_working_day() -> None:
    # Fri 2026-10-09 00:00: one working day has fully elapsed at 24:00 that Friday.
    assert add_days(ms(2026, 10, 9), 1, "working") == (ms(2026, 10, 10), False)


def test_spring_festival() -> None:
    # Fri 2026-02-13 09:00: Sat Feb 14 is a working day, then Feb 15-23 are rest days.
    assert deadlines(ms(2026, 2, 13, 9), "general", "working") == (
        ms(2026, 2, 14, 9),
        ms(2026, 2, 25, 9),
        ms(2026, 3, 2, 9),
        False,
    )
    # natural mode ignores holidays entirely
    assert deadlines(ms(2026, 2, 13, 9), "general", "natural") == (
        ms(2026, 2, 14, 9),
        ms(2026, 2, 16, 9),
        ms(2026, 2, 20, 9),
        False,
    )


def test_month_lands_on_next_working_day_in_working_mode() -> None:
    # 2026-09-01 + 1 month = Thu Oct 1 (holiday) -> the end of Thu Oct 8.
    assert add_month(ms(2026, 9, 1, 14, 30), "working") == (ms(2026, 10, 9), False)
    assert add_month(ms(2026, 9, 1, 14, 30), "natural") == (ms(2026, 10, 1, 14, 30), False)


def test_month_clamping() -> None:
    assert add_month(ms(2026, 1, 31, 8), "natural") == (ms(2026, 2, 28, 8), False)
    assert add_month(ms(2024, 1, 31, 8), "natural") == (ms(2024, 2, 29, 8), False)
    assert add_month(ms(2026, 3, 31, 8), "natural") == (ms(2026, 4, 30, 8), False)
    assert add_month(ms(2026, 12, 15, 8), "natural") == (ms(2027, 1, 15, 8), False)
    # Feb 28 2026 is a Saturday but an adjusted working day: it stays.
    assert add_month(ms(2026, 1, 31, 8), "working") == (ms(2026, 2, 28, 8), False)


def test_time_zone_is_china_time() -> None:
    # 2026-09-29 23:30 UTC is already Wed Sep 30 07:30 in China.
    start = int(datetime(2026, 9, 29, 23, 30, tzinfo=UTC).timestamp()) * 1000
    assert add_days(start, 1, "working") == (ms(2026, 10, 8, 7, 30), False)


def test_uncovered_year_is_estimated_not_an_error() -> None:
    # Tue 2026-12-29: +3 working days crosses into 2027 (Jan 1 fixed holiday, a weekend).
    deploy, feedback, resolve, estimated = deadlines(ms(2026, 12, 29, 9), "general", "working")
    assert (deploy, feedback, resolve) == (
        ms(2026, 12, 30, 9),
        ms(2027, 1, 4, 9),
        ms(2027, 1, 8, 9),
    )
    assert estimated
    # a month landing on Sat 2027-01-30 moves to the end of Mon Feb 1
    assert add_month(ms(2026, 12, 30, 9), "working") == (ms(2027, 2, 2), True)
    # natural mode never needs the holiday table
    assert deadlines(ms(2030, 5, 1, 9), "major", "natural")[3] is False
    assert deadlines(ms(2026, 11, 20, 9), "general", "working")[3] is False


def test_explicit_class() -> None:
    start = ms(2026, 11, 20, 9)
    d = compute_deadlines(
        assigned_at=start,
        item_class="explicit",
        calendar="natural",
        explicit_resolve=start + 2 * DAY,
    )
    assert (d.deploy, d.feedback, d.resolve) == (start + DAY, start + 2 * DAY, start + 2 * DAY)
    tight = compute_deadlines(
        assigned_at=start, item_class="explicit", calendar="working", explicit_resolve=start + HOUR
    )
    assert tight.deadlines.deploy == tight.deadlines.resolve == start + HOUR
    for kwargs in (
        {"item_class": "explicit", "explicit_resolve": None},
        {"item_class": "explicit", "explicit_resolve": start},
        {"item_class": "general", "explicit_resolve": start + DAY},
        {"item_class": "urgent"},
    ):
        with pytest.raises(ProtocolError) as info:
            compute_deadlines(assigned_at=start, calendar="natural", **kwargs)  # type: ignore[arg-type]
        assert info.value.reason == errors.BAD_FIELD
    with pytest.raises(ProtocolError):
        compute_deadlines(assigned_at=start, item_class="general", calendar="lunar")
    with pytest.raises(ProtocolError):
        compute_deadlines(assigned_at=2**60, item_class="general", calendar="working")


@settings(max_examples=150, deadline=None)
@given(
    st.integers(ms(2025, 1, 1), ms(2027, 12, 31)),
    st.sampled_from(("general", "major")),
    st.sampled_from(("natural", "working")),
)
def test_deadline_invariants(start: int, item_class: str, calendar: str) -> None:
    d = compute_deadlines(assigned_at=start, item_class=item_class, calendar=calendar)
    assert start < d.deploy <= d.feedback <= d.resolve
    assert d.deploy - start >= DAY
    if calendar == "natural":
        assert (d.deploy, d.feedback) == (start + DAY, start + 3 * DAY)
    else:
        for due in (d.deploy, d.feedback):
            # due on a working day, or at 00:00 right after one (the end of it)
            local = datetime.fromtimestamp(due / 1000, CHINA_TZ)
            before = datetime.fromtimestamp((due - 1) / 1000, CHINA_TZ).date()
            assert is_working_day(local.date())[0] or is_working_day(before)[0]
    later = compute_deadlines(assigned_at=start + HOUR, item_class=item_class, calendar=calendar)
    assert later.deploy >= d.deploy and later.feedback >= d.feedback  # monotonic
    if item_class == "general":  # month clamping is the documented exception
        assert later.resolve >= d.resolve


# -- reminders and colours -------------------------------------------------------------------

START = ms(2026, 11, 2, 10)  # a Monday


def state(item_class: str = "general", **changes: object) -> ItemState:
    d = compute_deadlines(assigned_at=START, item_class=item_class, calendar="natural")
    base = ItemState(
        item="14-000001",
        title="t",
        description="",
        board="daily",
        source="other",
        item_class=item_class,
        calendar="natural",
        assigner="14",
        assignee="1401",
        assignee_unit=None,
        lead_unit=None,
        co_units=(),
        parent_item=None,
        assigned_at=START,
        status=Status.ASSIGNED,
        deploy=Deadline(due=d.deploy),
        first_feedback=Deadline(due=d.feedback),
        resolve=Deadline(due=d.resolve),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_default_reminders_for_a_new_general_item() -> None:
    s = state()
    got = [(r.at, r.deadline, r.kind) for r in s.reminders()]
    assert got == [
        (START + DAY - 5 * HOUR, "deploy", "due_soon"),
        (START + DAY, "deploy", "overdue"),
        (START + 3 * DAY - 5 * HOUR, "feedback", "due_soon"),
        (START + 3 * DAY, "feedback", "overdue"),
        (START + 7 * DAY - 24 * HOUR, "resolve", "due_soon"),
        (START + 7 * DAY, "resolve", "overdue"),
    ]


def test_major_items_are_reminded_48h_before_and_policy_is_configurable() -> None:
    s = state("major")
    resolve = [r for r in s.reminders() if r.deadline == "resolve"]
    assert resolve[0].at == s.resolve.due - 48 * HOUR
    policy = ReminderPolicy(resolve_month_before=72 * HOUR, overdue=False)
    resolve = [r for r in s.reminders(policy) if r.deadline == "resolve"]
    assert [(r.at, r.kind) for r in resolve] == [(s.resolve.due - 72 * HOUR, "due_soon")]
    with pytest.raises(ValueError):
        ReminderPolicy(deploy_before=-1)


def test_explicit_window_depends_on_length() -> None:
    short = replace(state(), item_class="explicit", resolve=Deadline(due=START + 5 * DAY))
    long = replace(state(), item_class="explicit", resolve=Deadline(due=START + 20 * DAY))
    assert rules.resolve_window(short) == 24 * HOUR
    assert rules.resolve_window(long) == 48 * HOUR


def test_done_steps_and_items_have_no_reminders() -> None:
    s = state(
        status=Status.REPORTING,
        deploy=Deadline(due=START + DAY, done_at=START + HOUR),
        first_feedback=Deadline(due=START + 3 * DAY, done_at=START + 2 * HOUR),
    )
    assert {r.deadline for r in s.reminders()} == {"resolve"}
    for status in (Status.ACCEPTED, Status.CLOSED, Status.WITHDRAWN):
        assert replace(s, status=status).reminders() == ()
        assert replace(s, status=status).colour(START + 100 * DAY) is Colour.GREY


def test_colours() -> None:
    s = state()
    assert s.colour(START) is Colour.GREEN
    assert s.colour(START + DAY - 5 * HOUR - 1) is Colour.GREEN
    assert s.colour(START + DAY - 5 * HOUR) is Colour.YELLOW
    assert s.colour(START + DAY) is Colour.YELLOW  # due now: still in time
    assert s.colour(START + DAY + 1) is Colour.RED
    deployed = replace(
        s, status=Status.DEPLOYED, deploy=Deadline(due=START + DAY, done_at=START + 2 * DAY)
    )
    assert deployed.colour(START + 2 * DAY) is Colour.GREEN  # late, but done: history now
    assert deployed.colour(START + 3 * DAY - HOUR) is Colour.YELLOW
    assert deployed.colour(START + 3 * DAY + 1) is Colour.RED


def test_colour_with_plan_milestones() -> None:
    milestones = (
        Milestone(title="a", due=START + 10 * DAY),
        Milestone(title="b", due=START + 40 * DAY),
    )
    plan = Plan(
        event_id="p",
        milestones=milestones,
        note="",
        submitted_at=START,
        status=PlanStatus.APPROVED,
        decided_at=START,
    )
    s = state(
        "major",
        status=Status.PLANNED,
        deploy=Deadline(due=START + DAY, done_at=START),
        first_feedback=Deadline(due=START + 3 * DAY, done_at=START),
        resolve=Deadline(due=START + 40 * DAY),
        plan=plan,
        approved_plan=plan,
    )
    assert s.colour(START + 5 * DAY) is Colour.GREEN
    assert s.colour(START + 9 * DAY + 1) is Colour.YELLOW  # approaching milestone 0
    assert s.colour(START + 12 * DAY) is Colour.YELLOW  # behind milestone 0
    reached = replace(s, milestones_reached=(0,))
    assert reached.colour(START + 12 * DAY) is Colour.GREEN
    assert reached.colour(START + 40 * DAY + 1) is Colour.RED
    kinds = [(r.deadline, r.milestone, r.kind) for r in s.reminders()]
    assert kinds == [
        ("milestone", 0, "due_soon"),
        ("milestone", 0, "overdue"),
        ("monthly", None, "due_soon"),  # a month after the approval (tests/test_monthly.py)
        ("monthly", None, "overdue"),
        ("resolve", None, "due_soon"),
        ("resolve", None, "overdue"),
    ]
    assert [r.deadline for r in reached.reminders()] == [
        "monthly", "monthly", "resolve", "resolve"]


@settings(max_examples=300, deadline=None)
@given(
    item_class=st.sampled_from(["general", "major"]),
    deployed=st.booleans(),
    reported=st.booleans(),
    with_plan=st.booleans(),
    reached=st.booleans(),
    status=st.sampled_from(list(Status)),
    offset=st.integers(-2 * DAY, 60 * DAY),
)
def test_stored_thresholds_give_the_same_colour(
    item_class: str, deployed: bool, reported: bool, with_plan: bool, reached: bool,
    status: Status, offset: int,
) -> None:
    """The ledger filters colour in SQL from (yellow_from, red_from); it must agree."""
    milestones = (
        Milestone(title="a", due=START + 10 * DAY),
        Milestone(title="b", due=START + 40 * DAY),
    )
    plan = Plan(event_id="p", milestones=milestones, note="", submitted_at=START,
                status=PlanStatus.APPROVED, decided_at=START)
    s = state(item_class, status=status)
    if deployed:
        s = replace(s, deploy=Deadline(due=s.deploy.due, done_at=START + HOUR))
    if reported:
        s = replace(s, first_feedback=Deadline(due=s.first_feedback.due, done_at=START + DAY))
    if with_plan:
        s = replace(s, plan=plan, approved_plan=plan, resolve=Deadline(due=START + 40 * DAY),
                    milestones_reached=(0,) if reached else ())
    yellow_from, red_from = rules.colour_thresholds(s)
    for at in (START + offset, START + offset + 1):
        assert rules.colour_at(s.done, yellow_from, red_from, at) is s.colour(at)
