"""The 13710 rules: deadlines, reminders and the three colours (docs/rules.md).

Pure functions over unix-millisecond integers: the clock is always a
parameter, never read here, so tests and simulations move time freely.

Deadlines
    deploy (研究部署) +1 day, first feedback +3 days, resolve +7 days for a
    general item, +1 month for a major one, or an explicit instant. They are
    computed once, by the assigner, and carried in the ``item.assigned``
    event: no other node recomputes them, so holiday tables that differ
    between library versions cannot make two nodes disagree.

Time zone
    China time, a fixed UTC+8 offset (China has no daylight saving time).

Natural calendar
    +N days is the same time of day N calendar days later. +1 month is the
    same day of the next month at the same time, clamped to the month's last
    day (Jan 31 -> Feb 28, or 29 in a leap year).

Working calendar (official Chinese calendar, the ``chinesecalendar`` package)
    +N working days is the earliest instant at which N x 24 h of working-day
    time has elapsed since the assignment, counting only time that falls on
    working days (adjusted working weekends 调休 included, holidays excluded).
    So an assignment on a working day at 10:00 is due at 10:00 on the N-th
    working day after it; an assignment on a rest day starts counting at 00:00
    of the next working day and is due at 24:00 of the N-th working day
    counting that one as the first (written as 00:00 of the following calendar
    day). +1 month is the natural month; if that lands on a rest day the item
    is due at the end (24:00) of the next working day. Neither rule gives a
    later assignment an earlier deadline; only month clamping can (Jan 30
    23:00 and Jan 31 00:00 are both due on Feb 28, at 23:00 and 00:00), as
    in every calendar library.

Years the calendar does not cover
    ``chinesecalendar`` knows only the years its release covers (2004-2026 for
    1.11). For other years the arithmetic never fails: it falls back to Monday
    to Friday minus the fixed-date statutory holidays (Jan 1, May 1-2,
    Oct 1-3), ignores lunar holidays and 调休 working weekends, and says so with
    ``calendar_estimated=True``, so the UI can flag the deadline as estimated.
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from typing import TYPE_CHECKING, Final

import chinese_calendar

from protocol import errors
from protocol.errors import ProtocolError
from protocol.events import Deadlines

if TYPE_CHECKING:
    from protocol.fold import ItemState

CHINA_TZ: Final = timezone(timedelta(hours=8), "CST")
HOUR: Final = 3_600_000
DAY: Final = 24 * HOUR
WEEK: Final = 7 * DAY

DEPLOY_DAYS: Final = 1
FEEDBACK_DAYS: Final = 3
GENERAL_DAYS: Final = 7

_MAX_RULES_MS: Final = 253_402_300_799_999 - 400 * DAY  # well inside datetime's year 9999
_FIXED_HOLIDAYS: Final = frozenset({(1, 1), (5, 1), (5, 2), (10, 1), (10, 2), (10, 3)})
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DONE_STATUSES: Final = frozenset({"accepted", "closed", "withdrawn"})


# -- the calendar --------------------------------------------------------------------------


def is_working_day(day: date) -> tuple[bool, bool]:
    """(is ``day`` a working day, is that an estimate because the year is uncovered)."""
    try:
        return bool(chinese_calendar.is_workday(day)), False
    except (NotImplementedError, KeyError, ValueError):
        estimate = day.weekday() < 5 and (day.month, day.day) not in _FIXED_HOLIDAYS
        return estimate, True


def _local(ms: int) -> datetime:
    if type(ms) is not int or not 0 <= ms <= _MAX_RULES_MS:
        raise ProtocolError(errors.BAD_FIELD, "time out of the supported range")
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(CHINA_TZ)


def _ms(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ)


def _next_working_day(day: date) -> tuple[date, bool]:
    """The first working day strictly after ``day`` (and whether any step was estimated)."""
    estimated = False
    while True:
        day += timedelta(days=1)
        working, guess = is_working_day(day)
        estimated |= guess
        if working:
            return day, estimated


def add_days(start: int, days: int, calendar: str) -> tuple[int, bool]:
    """``start`` + ``days`` natural or working days: (deadline ms, calendar estimated)."""
    if days < 0:
        raise ValueError("days must not be negative")
    now = _local(start)
    if calendar == "natural":
        _local(start + days * DAY)  # range check
        return start + days * DAY, False
    if calendar != "working":
        raise ProtocolError(errors.BAD_FIELD, f"calendar: unknown {calendar!r}")
    working, estimated = is_working_day(now.date())
    if not working:
        day, guess = _next_working_day(now.date())
        now, estimated = _midnight(day), estimated or guess
    remaining = timedelta(days=days)
    while True:
        day_end = _midnight(now.date() + timedelta(days=1))
        if remaining <= day_end - now:
            return _ms(now + remaining), estimated
        remaining -= day_end - now
        day, guess = _next_working_day(now.date())
        now, estimated = _midnight(day), estimated or guess


def add_month(start: int, calendar: str) -> tuple[int, bool]:
    """``start`` + one month (see the module docstring): (deadline ms, calendar estimated)."""
    now = _local(start)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    last = _calendar.monthrange(year, month)[1]
    target = now.replace(year=year, month=month, day=min(now.day, last))
    if calendar == "natural":
        return _ms(target), False
    if calendar != "working":
        raise ProtocolError(errors.BAD_FIELD, f"calendar: unknown {calendar!r}")
    working, estimated = is_working_day(target.date())
    if not working:
        day, guess = _next_working_day(target.date())
        target, estimated = _midnight(day + timedelta(days=1)), estimated or guess
    return _ms(target), estimated


# -- deadlines -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputedDeadlines:
    """The assigner's computed deadlines, and whether a holiday table was missing."""

    deploy: int
    feedback: int
    resolve: int
    calendar_estimated: bool

    @property
    def deadlines(self) -> Deadlines:
        """The wire form carried in ``item.assigned``."""
        return Deadlines(deploy=self.deploy, feedback=self.feedback, resolve=self.resolve)


def compute_deadlines(
    *, assigned_at: int, item_class: str, calendar: str, explicit_resolve: int | None = None
) -> ComputedDeadlines:
    """The 1-3-7/1-month deadlines of an item assigned at ``assigned_at`` (unix ms).

    ``explicit_resolve`` is required for, and only for, the "explicit" class;
    deploy and feedback deadlines never fall after the resolve deadline.
    Raises :class:`ProtocolError` (``bad_field``) on an impossible request.
    """
    deploy, est_deploy = add_days(assigned_at, DEPLOY_DAYS, calendar)
    feedback, est_feedback = add_days(assigned_at, FEEDBACK_DAYS, calendar)
    estimated = est_deploy or est_feedback
    if item_class == "general":
        resolve, est = add_days(assigned_at, GENERAL_DAYS, calendar)
    elif item_class == "major":
        resolve, est = add_month(assigned_at, calendar)
    elif item_class == "explicit":
        if type(explicit_resolve) is not int or explicit_resolve <= assigned_at:
            raise ProtocolError(errors.BAD_FIELD, "explicit resolve must come after assignment")
        _local(explicit_resolve)
        resolve, est = explicit_resolve, False
    else:
        raise ProtocolError(errors.BAD_FIELD, f"class: unknown {item_class!r}")
    if item_class != "explicit" and explicit_resolve is not None:
        raise ProtocolError(errors.BAD_FIELD, "explicit resolve given for a non-explicit class")
    return ComputedDeadlines(
        deploy=min(deploy, resolve),
        feedback=min(feedback, resolve),
        resolve=resolve,
        calendar_estimated=estimated or est,
    )


# -- reminders and colours -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReminderPolicy:
    """How long before each deadline the handling unit is reminded (ms).

    Defaults are the provincial regulation's: 5 h before the 1-day and 3-day
    deadlines, 24 h before a 7-day one, 48 h before a 1-month one. The same
    windows turn an item yellow. ``overdue`` also lists a reminder at the
    deadline itself.
    """

    deploy_before: int = 5 * HOUR
    feedback_before: int = 5 * HOUR
    resolve_week_before: int = 24 * HOUR
    resolve_month_before: int = 48 * HOUR
    milestone_before: int = 24 * HOUR
    monthly_before: int = 3 * DAY
    """Before a monthly progress report is due (按月反馈): reminded, and yellow."""
    monthly_red_after: int = 7 * DAY
    """After a monthly report's date passed without one: yellow until then, red after."""
    overdue: bool = True

    def __post_init__(self) -> None:
        for name in (
            "deploy_before",
            "feedback_before",
            "resolve_week_before",
            "resolve_month_before",
            "milestone_before",
            "monthly_before",
            "monthly_red_after",
        ):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= 365 * DAY:
                raise ValueError(f"{name} must be 0..365 days in ms")


DEFAULT_POLICY: Final = ReminderPolicy()


class Colour(StrEnum):
    """绿黄红, plus grey for items that need nothing more (accepted, closed, withdrawn)."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    GREY = "grey"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reminder:
    """One reminder: when to send it, about which deadline, and of what kind.

    ``deadline`` is "deploy", "feedback", "resolve", "milestone" (then
    ``milestone`` is its index in the approved plan) or "monthly" (the monthly
    progress report under an approved plan, :attr:`ItemState.monthly_due`); ``kind`` is "due_soon"
    (the window opens) or "overdue" (the deadline passed, step undone).
    ``(deadline, milestone, kind, due)`` identifies a reminder for de-duplication.
    """

    at: int
    deadline: str
    kind: str
    due: int
    milestone: int | None = None


def resolve_window(state: ItemState, policy: ReminderPolicy = DEFAULT_POLICY) -> int:
    """The resolve reminder window: the 1-month one for major items and for
    explicit deadlines more than 7 natural days after assignment, else the 7-day one."""
    if state.item_class == "major" or (
        state.item_class == "explicit" and state.resolve.due - state.assigned_at > WEEK
    ):
        return policy.resolve_month_before
    return policy.resolve_week_before


def _windows(state: ItemState, policy: ReminderPolicy) -> list[tuple[str, int | None, int, int]]:
    """(deadline, milestone index, due, window) for every step not yet done."""
    if state.status in _DONE_STATUSES:
        return []
    out: list[tuple[str, int | None, int, int]] = []
    for name, deadline, window in (
        ("deploy", state.deploy, policy.deploy_before),
        ("feedback", state.first_feedback, policy.feedback_before),
        ("resolve", state.resolve, resolve_window(state, policy)),
    ):
        if deadline.done_at is None:
            out.append((name, None, deadline.due, window))
    for index, milestone in state.pending_milestones():
        out.append(("milestone", index, milestone.due, policy.milestone_before))
    monthly = state.monthly_due
    if monthly is not None:
        out.append(("monthly", None, monthly, policy.monthly_before))
    return out


def _red_from(name: str, due: int, policy: ReminderPolicy) -> int | None:
    """The first instant an undone step makes the item red: just after its due, a
    monthly report ``monthly_red_after`` later, a milestone never (yellow only)."""
    if name == "milestone":
        return None
    if name == "monthly":
        return due + policy.monthly_red_after + 1
    return due + 1


def reminders(state: ItemState, policy: ReminderPolicy = DEFAULT_POLICY) -> tuple[Reminder, ...]:
    """Every reminder the item's current state calls for, past and future, by time.

    Done steps and done items have none. The node sends those whose ``at`` has
    come and that it has not sent before.
    """
    out = []
    for name, index, due, window in _windows(state, policy):
        out.append(
            Reminder(at=due - window, deadline=name, kind="due_soon", due=due, milestone=index)
        )
        if policy.overdue:
            out.append(Reminder(at=due, deadline=name, kind="overdue", due=due, milestone=index))
    return tuple(sorted(out, key=lambda r: (r.at, r.kind, r.deadline, r.milestone or 0)))


def colour(state: ItemState, at: int, policy: ReminderPolicy = DEFAULT_POLICY) -> Colour:
    """The item's colour at instant ``at`` (unix ms).

    grey: accepted, closed or withdrawn. red: a deploy, feedback or resolve
    deadline has passed (``at`` > due) with its step undone, or a monthly progress
    report under an approved plan is more than ``monthly_red_after`` late. yellow:
    inside the reminder window of an undone deadline, milestone or monthly report,
    or past a plan milestone not reported reached, or a monthly report late by less
    than ``monthly_red_after``. green: otherwise.
    """
    if state.status in _DONE_STATUSES:
        return Colour.GREY
    windows = _windows(state, policy)
    reds = (_red_from(name, due, policy) for name, _, due, _ in windows)
    if any(red is not None and at >= red for red in reds):
        return Colour.RED
    if any(at >= due - window for _, _, due, window in windows):
        return Colour.YELLOW
    return Colour.GREEN


def colour_thresholds(
    state: ItemState, policy: ReminderPolicy = DEFAULT_POLICY
) -> tuple[int | None, int | None]:
    """(yellow_from, red_from): the instants the item turns yellow and red if nothing
    more happens; None when it never will (done, or no such deadline).

    Colour is monotone in time for a fixed state, so a ledger can store these two
    numbers and filter by colour in SQL: see :func:`colour_at`.
    """
    windows = _windows(state, policy)
    if not windows:
        return None, None
    reds = [r for name, _, due, _ in windows if (r := _red_from(name, due, policy)) is not None]
    yellow = min(due - window for _, _, due, window in windows)
    return yellow, (min(reds) if reds else None)


def colour_at(done: bool, yellow_from: int | None, red_from: int | None, at: int) -> Colour:
    """The colour from stored thresholds; equals :func:`colour` for the same state."""
    if done:
        return Colour.GREY
    if red_from is not None and at >= red_from:
        return Colour.RED
    if yellow_from is not None and at >= yellow_from:
        return Colour.YELLOW
    return Colour.GREEN
