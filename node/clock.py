"""Clocks and moments: the node never reads the time itself, it asks the clock it
was given; people read and write moments in China time (``protocol.rules.CHINA_TZ``)."""

from __future__ import annotations

import time
from datetime import date, datetime
from datetime import time as day_time
from typing import Any, Protocol

from node.errors import bad
from protocol.events import MAX_MS
from protocol.rules import CHINA_TZ

MAX_MOMENT_TEXT = 40
"""The longest date or date-time text read as a moment."""


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock tests move by hand (days offline, deadlines, reminders)."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, *, days: float = 0, hours: float = 0, seconds: float = 0) -> None:
        self._now += int((days * 86400 + hours * 3600 + seconds) * 1000)

    def set(self, now_ms: int) -> None:
        self._now = now_ms


class OffsetClock:
    """System time shifted by a settable offset (the demo seeds history in the past)."""

    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


def parse_moment(value: Any, field: str) -> int:
    """A date or date-time: "2026-12-01" (end of that day, China time),
    "2026-12-01T18:00" (China time) or with an offset; or unix ms. Else ``Invalid``
    naming ``field``."""
    if type(value) is int:
        if not 0 < value <= MAX_MS:
            raise bad(field, "out of range")
        return value
    if not isinstance(value, str) or len(value) > MAX_MOMENT_TEXT:
        raise bad(field, "must be a date like 2026-12-01 or a date-time")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, day_time(23, 59, 59), CHINA_TZ)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=CHINA_TZ)
    except ValueError:
        raise bad(field, "must be a date like 2026-12-01 or a date-time") from None
    return int(moment.timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    """Unix ms as an ISO date-time in China time (what people read)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, CHINA_TZ).isoformat(timespec="seconds")
