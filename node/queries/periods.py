"""Reporting periods in China time: ISO weeks (每周汇总) and quarters (季度通报).

A period is a half-open range of unix milliseconds ``[start, end)``: a week
runs from Monday 00:00 to the next Monday 00:00 (UTC+8), a quarter from the
first day of January, April, July or October 00:00 to the first day of the
next quarter. Pure values: nothing here reads a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from node.errors import Invalid
from protocol.rules import CHINA_TZ

_QUARTER_RE = re.compile(r"(\d{4})-?Q([1-4])\Z", re.IGNORECASE)
_WEEK_RE = re.compile(r"(\d{4})-?W(\d{2})\Z", re.IGNORECASE)
_QUARTER_NAMES = ("一", "二", "三", "四")
MIN_YEAR, MAX_YEAR = 2000, 2200


class PeriodError(Invalid):
    """A period that cannot be read (reason ``bad_period``); the message says the
    expected form and is the whole of ``str()``."""

    def __init__(self, message: str) -> None:
        super().__init__('bad_period', message)

    def __str__(self) -> str:
        return self.detail


def _ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


def _local(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, CHINA_TZ)


@dataclass(frozen=True, slots=True, kw_only=True)
class Quarter:
    """One calendar quarter: Q1 = January to March ... Q4 = October to December."""

    year: int
    quarter: int

    def __post_init__(self) -> None:
        if not MIN_YEAR <= self.year <= MAX_YEAR or not 1 <= self.quarter <= 4:
            raise PeriodError(f"no quarter {self.year}Q{self.quarter}")

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """``2026Q4`` (or ``2026-Q4``)."""
        match = _QUARTER_RE.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise PeriodError("a quarter is written like 2026Q4")
        return cls(year=int(match[1]), quarter=int(match[2]))

    @classmethod
    def of(cls, ms: int) -> Quarter:
        moment = _local(ms)
        return cls(year=moment.year, quarter=(moment.month - 1) // 3 + 1)

    @property
    def start(self) -> int:
        return _ms(datetime(self.year, 3 * self.quarter - 2, 1, tzinfo=CHINA_TZ))

    @property
    def end(self) -> int:
        if self.quarter == 4:
            return _ms(datetime(self.year + 1, 1, 1, tzinfo=CHINA_TZ))
        return _ms(datetime(self.year, 3 * self.quarter + 1, 1, tzinfo=CHINA_TZ))

    def previous(self) -> Quarter:
        if self.quarter == 1:
            return Quarter(year=self.year - 1, quarter=4)
        return Quarter(year=self.year, quarter=self.quarter - 1)

    @property
    def code(self) -> str:
        return f"{self.year}Q{self.quarter}"

    @property
    def label(self) -> str:
        return f"{self.year}年第{_QUARTER_NAMES[self.quarter - 1]}季度"


@dataclass(frozen=True, slots=True, kw_only=True)
class Week:
    """One ISO week (Monday to Sunday), as ``date.isocalendar`` numbers it."""

    year: int
    week: int

    def __post_init__(self) -> None:
        if not MIN_YEAR <= self.year <= MAX_YEAR:
            raise PeriodError(f"no week in year {self.year}")
        try:
            date.fromisocalendar(self.year, self.week, 1)
        except ValueError:
            raise PeriodError(f"{self.year} has no week {self.week}") from None

    @classmethod
    def parse(cls, text: str) -> Week:
        """``2026-W47`` (or ``2026W47``)."""
        match = _WEEK_RE.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise PeriodError("a week is written like 2026-W47")
        return cls(year=int(match[1]), week=int(match[2]))

    @classmethod
    def of(cls, ms: int) -> Week:
        year, week, _ = _local(ms).isocalendar()
        return cls(year=year, week=week)

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def start(self) -> int:
        day = self.monday
        return _ms(datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ))

    @property
    def end(self) -> int:
        day = self.monday + timedelta(days=7)
        return _ms(datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ))

    def previous(self) -> Week:
        return Week.of(self.start - 1)

    @property
    def code(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def label(self) -> str:
        sunday = self.monday + timedelta(days=6)
        return (
            f"{self.year}年第{self.week}周（{self.monday.month}月{self.monday.day}日—"
            f"{sunday.month}月{sunday.day}日）"
        )
