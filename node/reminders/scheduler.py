"""The durable reminder scheduler: a dispatcher and a sender over two tables.

One pass, :meth:`Reminders.run_once`, does everything; the node app runs it on
start and then every ``reminders.tick_seconds`` (tests call it after moving a
:class:`~node.clock.ManualClock`). What is promised:

- **Only open items handled here.** The items assigned to this node (its own
  units included) that are not accepted, closed or withdrawn; their reminders
  come from :func:`protocol.rules.reminders` on the current folded state, so
  a step done has none and an extended deadline has new ones.
- **Urges and instructions too.** Each urge (催办) and leader's instruction (批示)
  on such an item is a notice (:func:`node.reminders.schedule.notices`): due at
  once, recorded and sent like a reminder, once, to the same people, never
  marked late. A pass starts as soon as one is folded here (received) or signed
  here (the ``woken`` event), not at the next tick; the record under its key keeps
  it once however many passes see it. A notice among events the materialiser
  had to read back (more than its in-memory cap waiting) waits for the tick.
- **Each reminder once.** A reminder that fell due is recorded in ``reminders``
  under its key ``(item, deadline, milestone, kind, due)`` in the same
  transaction that queues its messages (one per recipient per channel, plus
  one webhook call), so a restart neither repeats nor loses one.
- **None missed while down.** On start every reminder whose time passed while
  the node was down is still unrecorded, so it is recorded and sent then,
  marked late (``[补发]``) when more than ``reminders.late_after_seconds``
  behind. A "due soon" whose deadline has also passed is superseded by the
  "overdue" notice (recorded, not sent).
- **Retries.** A failed attempt keeps the message pending with its error and
  ``next_attempt_at`` (doubling from ``retry_initial_seconds`` up to
  ``retry_max_seconds``, equal jitter); after ``max_attempts`` it is ``failed``.
- **Nothing for done work.** A pending message whose item is done, or whose
  step is done or re-dated, is ``cancelled`` instead of sent.
- **At most one duplicate.** A crash between a successful send and recording it
  sends that message again on restart, with the same message id for the
  receiver to drop (see :mod:`node.reminders.channels`).
- **One sender.** A pass runs only in the process holding the database lock
  ``reminders`` (several processes on one PostgreSQL elect one).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import and_, false, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from node.background import Watch, run_forever, sleep_unless
from node.clock import Clock
from node.items.projection import item_events
from node.reminders.channels import DeliveryError, Notifier, Outgoing
from node.reminders.schedule import (
    NO_MILESTONE,
    NOTICES,
    Key,
    Person,
    Planned,
    Settings,
    key_of,
    message_key,
    notice_of,
    notices,
    plan_new,
    recipients,
    render,
    render_notice,
    retry_delay,
)
from node.storage import schema as t
from node.storage.db import Database
from protocol.errors import ProtocolError
from protocol.fold import ItemState, fold
from protocol.rules import Reminder, reminders

logger = logging.getLogger(__name__)

LOCK: Final = "reminders"
PERSON_CHANNELS: Final = ("sms", "email")
CHANNELS: Final = ("sms", "email", "webhook")
_BATCH: Final = 200
_CHUNK: Final = 400
_CONCURRENCY: Final = 16


@dataclass(slots=True)
class RunReport:
    """What one pass did (also logged)."""

    leader: bool = True
    recorded: int = 0
    superseded: int = 0
    unreachable: int = 0
    queued: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass(slots=True)
class _Open:
    """An open item handled here, its state and every reminder that state calls for."""

    digest: bytes
    state: ItemState
    reminders: tuple[Reminder, ...]
    keys: frozenset[Key] = field(default_factory=frozenset)


class Reminders:
    """Dispatcher and sender of one node. Built once by the app (``node.http.api.reminders``)."""

    def __init__(
        self,
        *,
        me: str,
        db: Database,
        clock: Clock,
        rows_current: Callable[[], Awaitable[object]],
        notifiers: Mapping[str, Notifier],
        settings: Settings,
        rng: random.Random | None = None,
        woken: asyncio.Event | None = None,
    ) -> None:
        """``rows_current()`` returns once the item rows hold every event received so
        far (the scan reads rows); ``woken`` is set when an urge or instruction is
        folded (or signed) here, and starts a pass before the tick."""
        self.me = me
        self.db = db
        self.clock = clock
        self.rows_current = rows_current
        self.notifiers = dict(notifiers)
        self.settings = settings
        self.rng = rng or random.Random()
        self.last_run: int | None = None
        self._lock = asyncio.Lock()
        self.woken = woken
        self._open: dict[str, _Open] = {}
        self._recorded: set[Key] = set()

    # ------------------------------------------------------------------ loop

    async def run(self, watch: Watch, stopping: asyncio.Event) -> None:
        """Run a pass now and then every tick until ``stopping``; a failed pass is
        retried with ``watch``'s backoff (``node.background``), which the caller caps
        at a tick."""
        tick = self.settings.tick_ms / 1000
        woken = self.woken

        async def once() -> None:
            if woken is not None:
                # Cleared before the pass: whatever is folded from now on is either
                # seen by this pass's scan or sets it again for the next.
                woken.clear()
            await self.run_once()

        async def rest() -> None:
            if woken is None:
                await sleep_unless(stopping, tick)
                return
            waits = [asyncio.ensure_future(woken.wait()), asyncio.ensure_future(stopping.wait())]
            try:
                await asyncio.wait(waits, timeout=tick, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

        await run_forever(watch, once, stopping, between=rest)

    async def run_once(self, now: int | None = None) -> RunReport:
        """One pass at ``now`` (default: the node's clock): record, queue and send."""
        async with self._lock:
            if now is None:
                now = self.clock.now_ms()
            if not await self.db.try_lock(LOCK):
                return RunReport(leader=False)
            report = RunReport()
            # The scan reads item rows: let those of events already received be
            # folded first (just after a start, or a sync batch, they may not be yet).
            await self.rows_current()
            await self._scan()
            await self._dispatch(now, report)
            await self._send(now, report)
            self.last_run = now
            if report.recorded or report.sent or report.retrying or report.failed:
                logger.info(
                    "reminders: %d recorded (%d superseded, %d unreachable), %d messages "
                    "queued, %d sent, %d retrying, %d failed, %d cancelled",
                    report.recorded, report.superseded, report.unreachable, report.queued,
                    report.sent, report.retrying, report.failed, report.cancelled,
                )
            return report

    # ------------------------------------------------------------------ scan

    async def _scan(self) -> None:
        """Refresh the open items handled here; refold only those whose state changed."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(t.items.c.item_id, t.items.c.state).where(
                        t.items.c.assignee == self.me, t.items.c.done == false()
                    )
                )
            ).all()
            digests = {item: hashlib.blake2b(blob, digest_size=16).digest() for item, blob in rows}
            changed = [i for i, d in digests.items() if (o := self._open.get(i)) is None
                       or o.digest != d]
            grouped = await item_events(conn, changed) if changed else {}
        for item in list(self._open):
            if item not in digests:
                del self._open[item]
        for item, pairs in grouped.items():
            self._open.pop(item, None)
            try:
                state = fold(pairs)
            except ProtocolError:
                continue
            if state.done or state.assignee != self.me:
                continue
            found = reminders(state, self.settings.policy) + notices(state)
            self._open[item] = _Open(
                digest=digests[item],
                state=state,
                reminders=found,
                keys=frozenset(key_of(item, r) for r in found),
            )
        live = set().union(*(o.keys for o in self._open.values())) if self._open else set()
        self._recorded &= live

    # -------------------------------------------------------------- dispatch

    async def _dispatch(self, now: int, report: RunReport) -> None:
        candidates = {
            key_of(item, r): (item, r)
            for item, entry in self._open.items()
            for r in entry.reminders
            if r.at <= now and key_of(item, r) not in self._recorded
        }
        if not candidates:
            return
        recorded: set[Key] = set()
        async with self.db.write() as conn:
            existing = await _recorded_keys(conn, {item for item, _ in candidates.values()})
            recorded |= existing & set(candidates)
            fresh: dict[str, list[Reminder]] = {}
            for key, (item, r) in candidates.items():
                if key not in existing:
                    fresh.setdefault(item, []).append(r)
            if fresh:
                people, units, offices = await _people(conn)
                for item, new in fresh.items():
                    entry = self._open[item]
                    known_since = max(entry.state.last_event_at, entry.state.assigned_at)
                    planned = plan_new(
                        new,
                        now=now,
                        known_since=known_since,
                        late_after=self.settings.late_after_ms,
                    )
                    for plan in planned:
                        await self._record(conn, entry.state, plan, now, report,
                                           people=people, units=units, offices=offices)
                        recorded.add(key_of(item, plan.reminder))
        self._recorded |= recorded

    async def _record(
        self,
        conn: AsyncConnection,
        state: ItemState,
        plan: Planned,
        now: int,
        report: RunReport,
        *,
        people: list[Person],
        units: set[str],
        offices: set[str],
    ) -> None:
        r = plan.reminder
        key = key_of(state.item, r)
        report.recorded += 1
        messages: list[dict[str, Any]] = []
        if plan.superseded:
            outcome, detail = "superseded", "the deadline has passed too: the overdue notice goes"
            report.superseded += 1
        else:
            chosen, detail = recipients(
                people, unit=state.assignee_unit or state.lead_unit, units=units,
                office_units=offices,
            )
            messages = self._messages(state, plan, chosen, now)
            outcome = "queued"
            if not messages:
                outcome = "no_recipient"
                detail += "; " if detail else ""
                detail += "no channel reaches them" if chosen else ""
                report.unreachable += 1
                logger.warning("reminder %s reaches nobody: %s", key, detail)
        result = await conn.execute(
            t.reminders.insert().values(
                item_id=state.item,
                deadline=r.deadline,
                milestone=NO_MILESTONE if r.milestone is None else r.milestone,
                kind=r.kind,
                due=r.due,
                at=r.at,
                seen_at=now,
                late=plan.late,
                outcome=outcome,
                detail=detail[:1000],
            )
        )
        inserted = result.inserted_primary_key
        assert inserted is not None
        reminder_id = inserted[0]
        if messages:
            for row in messages:
                row["reminder_id"] = reminder_id
            await conn.execute(t.reminder_messages.insert(), messages)
            report.queued += len(messages)

    def _messages(
        self, state: ItemState, plan: Planned, people: Iterable[Person], now: int
    ) -> list[dict[str, Any]]:
        r = plan.reminder
        key = key_of(state.item, r)
        milestone_title = None
        if r.milestone is not None and state.approved_plan is not None:
            steps = state.approved_plan.milestones
            if 0 <= r.milestone < len(steps):
                milestone_title = steps[r.milestone].title
        act = notice_of(state, r) if r.deadline in NOTICES else None
        if act is not None:
            subject, text = render_notice(
                language=self.settings.language, title=state.title, kind=r.kind, by=act.by,
                author=act.author, text=act.text,
            )
        else:
            subject, text = render(
                language=self.settings.language,
                title=state.title,
                reminder=r,
                late=plan.late,
                milestone_title=milestone_title,
            )
        people = list(people)

        def row(channel: str, person: str, recipient: str, body: str | None) -> dict[str, Any]:
            return {
                "message_key": message_key(self.me, key, channel, recipient),
                "item_id": state.item,
                "channel": channel,
                "person": person,
                "recipient": recipient,
                "subject": subject,
                "text": text,
                "body": body,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "late": plan.late,
            }

        out = []
        for person in people:
            for channel in PERSON_CHANNELS:
                address = person.phone if channel == "sms" else person.email
                if channel in self.notifiers and address:
                    out.append(row(channel, person.name, address, None))
        webhook = self.notifiers.get("webhook")
        if webhook is not None and people:
            message_id = message_key(self.me, key, "webhook", "webhook")
            body = {
                "message_id": message_id,
                "node": self.me,
                "item": state.item,
                "title": state.title,
                "deadline": r.deadline,
                "milestone": r.milestone,
                "milestone_title": milestone_title,
                "kind": r.kind,
                "due": r.due,
                "at": r.at,
                "late": plan.late,
                "subject": subject,
                "text": text,
                "recipients": [
                    p.to_dict() | {"phone": p.phone, "email": p.email} for p in people
                ],
            }
            entry = row("webhook", "", "webhook", json.dumps(body, ensure_ascii=False))
            entry["recipient"] = _shown_url(str(getattr(webhook, "url", "webhook")))
            entry["message_key"] = message_id
            out.append(entry)
        return out

    # ------------------------------------------------------------------ send

    async def _send(self, now: int, report: RunReport) -> None:
        live = {k for o in self._open.values() for k in o.keys}
        seen: set[int] = set()
        gate = asyncio.Semaphore(_CONCURRENCY)
        while True:
            async with self.db.read() as conn:
                rows = (
                    await conn.execute(
                        select(t.reminder_messages, t.reminders.c.deadline,
                               t.reminders.c.milestone, t.reminders.c.kind, t.reminders.c.due)
                        .join(t.reminders, t.reminders.c.id == t.reminder_messages.c.reminder_id)
                        .where(
                            t.reminder_messages.c.status == "pending",
                            t.reminder_messages.c.next_attempt_at <= now,
                        )
                        .order_by(t.reminder_messages.c.next_attempt_at, t.reminder_messages.c.id)
                        .limit(_BATCH)
                    )
                ).all()
            rows = [r for r in rows if r.id not in seen]
            if not rows:
                return
            seen.update(r.id for r in rows)

            async def attempt(row: Any) -> tuple[Any, str | None]:
                key: Key = (row.item_id, row.deadline, row.milestone, row.kind, row.due)
                if key not in live:
                    return row, "cancel"
                async with gate:
                    return row, await self._deliver(row)

            results = await asyncio.gather(*(attempt(r) for r in rows))
            await self._mark(results, report)
            if len(rows) < _BATCH:
                return

    async def _deliver(self, row: Any) -> str | None:
        """None when delivered, else the reason it was not."""
        notifier = self.notifiers.get(row.channel)
        if notifier is None:
            return f"channel {row.channel} is not enabled"
        message = Outgoing(
            message_id=row.message_key,
            channel=row.channel,
            recipient=row.recipient,
            subject=row.subject,
            text=row.text,
            body=row.body,
        )
        try:
            await notifier.send(message)
        except DeliveryError as exc:
            return str(exc) or type(exc).__name__
        except Exception as exc:
            logger.exception("%s notifier failed on message %s", row.channel, row.id)
            return f"internal: {type(exc).__name__}"
        return None

    async def _mark(self, results: list[tuple[Any, str | None]], report: RunReport) -> None:
        now = self.clock.now_ms()
        m = t.reminder_messages
        async with self.db.write() as conn:
            for row, error in results:
                if error == "cancel":
                    reason = "item done" if row.item_id not in self._open else "step done"
                    values: dict[str, Any] = {"status": "cancelled", "last_error": reason}
                    report.cancelled += 1
                elif error is None:
                    values = {"status": "sent", "sent_at": now, "attempts": row.attempts + 1,
                              "last_attempt_at": now}
                    report.sent += 1
                else:
                    attempts = row.attempts + 1
                    values = {"attempts": attempts, "last_attempt_at": now, "last_error": error}
                    if attempts >= self.settings.max_attempts:
                        values["status"] = "failed"
                        report.failed += 1
                        logger.error("%s message %s to %s failed for good after %d attempts: %s",
                                     row.channel, row.id, row.recipient, attempts, error)
                    else:
                        values["next_attempt_at"] = now + retry_delay(
                            attempts,
                            initial=self.settings.retry_initial_ms,
                            cap=self.settings.retry_max_ms,
                            rng=self.rng,
                        )
                        report.retrying += 1
                        logger.warning("%s message %s to %s failed (attempt %d): %s",
                                       row.channel, row.id, row.recipient, attempts, error)
                await conn.execute(
                    update(m).where(m.c.id == row.id, m.c.status == "pending").values(**values)
                )


def _shown_url(url: str) -> str:
    """The webhook's address for the log, without credentials or query (tokens hide there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


async def _recorded_keys(conn: AsyncConnection, items: set[str]) -> set[Key]:
    r = t.reminders
    out: set[Key] = set()
    ordered = sorted(items)
    for i in range(0, len(ordered), _CHUNK):
        rows = await conn.execute(
            select(r.c.item_id, r.c.deadline, r.c.milestone, r.c.kind, r.c.due).where(
                r.c.item_id.in_(ordered[i : i + _CHUNK])
            )
        )
        out.update((a, b, int(c), d, int(e)) for a, b, c, d, e in rows)
    return out


async def _people(conn: AsyncConnection) -> tuple[list[Person], set[str], set[str]]:
    """(enabled people who may be reminded, unit codes, general-office unit codes)."""
    u = t.users
    rows = await conn.execute(
        select(u.c.name, u.c.display_name, u.c.role, u.c.unit, u.c.phone, u.c.email)
        .where(
            and_(
                u.c.disabled == false(),
                u.c.role.in_(("unit_head", "operator", "supervisor")),
            )
        )
        .order_by(u.c.name)
    )
    people = [
        Person(name=n, display_name=d, role=ro, unit=un, phone=p, email=e)
        for n, d, ro, un, p, e in rows
    ]
    units = (await conn.execute(select(t.units.c.code, t.units.c.office))).all()
    return people, {c for c, _ in units}, {c for c, office in units if office}

