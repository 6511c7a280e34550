"""The pure half of reminders: settings, what is new, who receives it, in which words.

No I/O here: the scheduler (:mod:`node.reminders.scheduler`) reads the
database and calls these functions, so every decision is testable with plain
values. The reminder times themselves come from :func:`protocol.rules.reminders`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from node.config import ConfigError
from protocol.fold import Instruction, ItemState, Urge
from protocol.rules import CHINA_TZ, DEFAULT_POLICY, HOUR, Reminder, ReminderPolicy

Key = tuple[str, str, int, str, int]
"""(item, deadline, milestone or -1, kind, due): one reminder, sent at most once."""

NO_MILESTONE: Final = -1
LANGUAGES: Final = ("zh", "en")
HANDLING_ROLES: Final = frozenset({"unit_head", "operator"})
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TITLE_CHARS: Final = 40


class SettingsError(ConfigError):
    """A reminders/sms/smtp/webhook setting that cannot be used (the node does not start)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The ``[reminders]`` settings, in milliseconds."""

    enabled: bool = True
    policy: ReminderPolicy = DEFAULT_POLICY
    tick_ms: int = 60_000
    late_after_ms: int = 600_000
    retry_initial_ms: int = 60_000
    retry_max_ms: int = 3_600_000
    max_attempts: int = 12
    language: str = "zh"

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise SettingsError(f"reminders.language: one of {', '.join(LANGUAGES)}")
        if self.tick_ms < 1 or self.retry_initial_ms < 1 or self.retry_max_ms < 1:
            raise SettingsError("reminders: tick and retry delays must be positive")
        if self.max_attempts < 1:
            raise SettingsError("reminders.max_attempts must be at least 1")
        if self.late_after_ms < 0:
            raise SettingsError("reminders.late_after_seconds must not be negative")

    @classmethod
    def from_config(cls, config: Any) -> Settings:
        """From a :class:`node.config.Config` (anything indexable by setting name)."""

        def hours(name: str) -> int:
            return round(float(config[f"reminders.{name}_before_hours"]) * HOUR)

        def ms(name: str) -> int:
            return round(float(config[name]) * 1000)

        try:
            policy = ReminderPolicy(
                deploy_before=hours("deploy"),
                feedback_before=hours("feedback"),
                resolve_week_before=hours("resolve_week"),
                resolve_month_before=hours("resolve_month"),
                milestone_before=hours("milestone"),
                overdue=bool(config["reminders.overdue"]),
            )
        except ValueError as exc:
            raise SettingsError(f"reminders: {exc}") from None
        return cls(
            enabled=bool(config["reminders.enabled"]),
            policy=policy,
            tick_ms=ms("reminders.tick_seconds"),
            late_after_ms=ms("reminders.late_after_seconds"),
            retry_initial_ms=ms("reminders.retry_initial_seconds"),
            retry_max_ms=ms("reminders.retry_max_seconds"),
            max_attempts=int(config["reminders.max_attempts"]),
            language=str(config["reminders.language"]),
        )


URGE: Final = "urge"
INSTRUCTION: Final = "instruction"
NOTICES: Final = frozenset({URGE, INSTRUCTION})
"""The ``deadline`` (and ``kind``) of a notice: an urge (催办) or a leader's instruction
(批示) that reached the handling node, sent once at the next pass whenever it comes."""


def _tag(event_id: str) -> int:
    """A notice's ``milestone`` column: 28 bits of its event id, so two notices of one
    item written in the same millisecond keep two keys."""
    return int(event_id[:7], 16)


def notices(state: ItemState) -> tuple[Reminder, ...]:
    """The urges and instructions on ``state`` as reminders due at once (``at`` 0: an
    author's clock ahead of ours delays nothing), each keyed by its time and event id."""
    out = [
        Reminder(at=0, deadline=URGE, kind=URGE, due=u.at, milestone=_tag(u.event_id))
        for u in state.urges
    ]
    out.extend(
        Reminder(at=0, deadline=INSTRUCTION, kind=INSTRUCTION, due=i.at,
                 milestone=_tag(i.event_id))
        for i in state.instructions
    )
    return tuple(out)


def notice_of(state: ItemState, reminder: Reminder) -> Urge | Instruction | None:
    """The urge or instruction a notice from :func:`notices` stands for."""
    acts: tuple[Urge | Instruction, ...] = (
        state.urges if reminder.deadline == URGE else state.instructions
    )
    for act in acts:
        if act.at == reminder.due and _tag(act.event_id) == reminder.milestone:
            return act
    return None


def key_of(item: str, reminder: Reminder) -> Key:
    milestone = NO_MILESTONE if reminder.milestone is None else reminder.milestone
    return (item, reminder.deadline, milestone, reminder.kind, reminder.due)


def message_key(node: str, key: Key, channel: str, recipient: str) -> str:
    """A stable id of one delivery, handed to gateways so they can drop a repeat."""
    text = "\x1f".join((node, *map(str, key), channel, recipient))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# -- what is new -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Planned:
    """A reminder that fell due and was not recorded before.

    ``late``: it goes out noticeably after its time although it could have been
    known then (the node was down, or the scheduler stalled). ``superseded``: a
    "due_soon" whose deadline has also passed; the "overdue" notice says more,
    so the "due_soon" is recorded but not sent.
    """

    reminder: Reminder
    late: bool
    superseded: bool


def plan_new(
    new: Iterable[Reminder], *, now: int, known_since: int, late_after: int
) -> list[Planned]:
    """Those of ``new`` (reminders of one item not recorded yet) whose time has come.

    ``known_since`` is when the state that calls for them became known (the
    item's newest event, or its assignment): a reminder is late when it goes
    out more than ``late_after`` ms after both its own time and that.
    """
    due = [r for r in new if r.at <= now]
    overdue = {(r.deadline, r.milestone, r.due) for r in due if r.kind == "overdue"}
    return [
        Planned(
            reminder=r,
            # A notice goes out when it reaches us: never late.
            late=r.deadline not in NOTICES and now - max(r.at, known_since) > late_after,
            superseded=r.kind == "due_soon" and (r.deadline, r.milestone, r.due) in overdue,
        )
        for r in sorted(due, key=lambda r: (r.at, r.kind, r.deadline, r.milestone or 0))
    ]


# -- who -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    name: str
    display_name: str
    role: str
    unit: str | None
    phone: str | None = None
    email: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "role": self.role,
            "unit": self.unit,
        }


def recipients(
    people: Sequence[Person],
    *,
    unit: str | None,
    units: Collection[str],
    office_units: Collection[str],
) -> tuple[tuple[Person, ...], str]:
    """(who is reminded, a note on how they were chosen).

    The handling unit's heads and operators. An item addressed to the node as a
    whole (no unit, or a unit this node does not have), or a unit with nobody in
    those roles, goes to the general office's heads and operators, and failing
    those to the node's supervisors (督查室). ``people`` are enabled accounts.
    """

    def of(codes: Collection[str]) -> tuple[Person, ...]:
        return tuple(p for p in people if p.unit in codes and p.role in HANDLING_ROLES)

    note = ""
    if unit is not None and unit in units:
        chosen = of({unit})
        if chosen:
            return chosen, f"unit {unit}"
        note = f"unit {unit} has no unit_head or operator; "
    chosen = of(office_units)
    if chosen:
        return chosen, note + "the general office"
    chosen = tuple(p for p in people if p.role == "supervisor")
    if chosen:
        return chosen, note + "the supervisors"
    return (), note + "nobody to remind: no unit_head, operator or supervisor"


# -- words -----------------------------------------------------------------------------------

_STEPS: Final = {
    "zh": {"deploy": "研究部署", "feedback": "首次反馈", "resolve": "落实解决",
           "monthly": "按月反馈进展"},
    "en": {"deploy": "deploy", "feedback": "first feedback", "resolve": "resolution",
           "monthly": "monthly progress report"},
}


def china_time(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")


def _short(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= _TITLE_CHARS else title[: _TITLE_CHARS - 1] + "…"


def render(
    *,
    language: str,
    title: str,
    reminder: Reminder,
    late: bool,
    milestone_title: str | None = None,
) -> tuple[str, str]:
    """(subject, text) of a reminder. Chinese by default; the text fits an SMS or two."""
    when = china_time(reminder.due)
    short = _short(title)
    soon = reminder.kind == "due_soon"
    if language == "en":
        step = _STEPS["en"].get(reminder.deadline, reminder.deadline)
        if reminder.deadline == "milestone":
            step = f'plan milestone "{_short(milestone_title or "")}"'
        if soon:
            text = f'[Duban reminder] Item "{short}" is due at {when} ({step}). Please act in time.'
        else:
            text = (
                f'[Duban reminder] Item "{short}" is overdue since {when} ({step}). '
                "Please act and report at once."
            )
        subject = f"[Duban] {short}: {step} {'due soon' if soon else 'overdue'}"
        prefix = "[late] "
    else:
        step = _STEPS["zh"].get(reminder.deadline, reminder.deadline)
        if reminder.deadline == "milestone":
            step = f"计划节点“{_short(milestone_title or '')}”"
        if soon:
            text = f"【督办提醒】事项《{short}》将于{when}到期（{step}），请及时办理。"
        else:
            text = f"【督办提醒】事项《{short}》已于{when}超期（{step}），请尽快办理并反馈。"
        subject = f"【督办提醒】《{short}》{step}{'即将到期' if soon else '已超期'}"
        prefix = "[补发]"
    if late:
        text, subject = prefix + text, prefix + subject
    return subject, text


# -- retries ---------------------------------------------------------------------------------


def render_notice(
    *, language: str, title: str, kind: str, by: str, author: str, text: str
) -> tuple[str, str]:
    """(subject, text) of an urge or an instruction sent to the handling unit: who
    (the person, and the node that signed), on which item, and what they wrote."""
    short = _short(title)
    said = " ".join(text.split())
    if len(said) > 200:
        said = said[:199] + "…"
    if language == "en":
        if kind == URGE:
            return (f"[Duban] Urged: {short}",
                    f'[Duban urge] {author} ({by}) urges item "{short}": {said}')
        return (f"[Duban] Leader's instruction: {short}",
                f'[Duban instruction] {author} ({by}) on item "{short}": {said} '
                "Please carry it out and report.")
    if kind == URGE:
        return (f"【督办催办】《{short}》",
                f"【督办催办】{author}（{by}）催办事项《{short}》：{said}")
    return (f"【领导批示】《{short}》",
            f"【领导批示】{author}（{by}）对事项《{short}》批示：{said} 请抓好落实并反馈落实情况。")


def retry_delay(attempts: int, *, initial: int, cap: int, rng: random.Random) -> int:
    """Delay (ms) after the ``attempts``-th failure: doubling from ``initial`` up to
    ``cap``, then "equal jitter" — uniformly between half of that and all of it."""
    base: int = min(cap, initial * (1 << min(max(attempts, 1) - 1, 40)))
    half = base // 2
    return half + int(rng.random() * (base - half + 1))
