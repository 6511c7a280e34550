"""Background work that never dies: one supervisor for every loop of a node.

The node's long-lived tasks (the sync client, the materialiser, the reminders,
the tallies keeper) each run forever under a :class:`Watch`, which promises:

- **any exception is survived.** Only cancellation ends the loop (and the
  node's ``stopping``); a database error, a bug, a full disk are retried;
- **logged once, not every retry.** An unexpected error is logged with its
  traceback the first time (again only if it is still the error
  ``summary_seconds`` later); an expected one (a network failure of sync, a full
  disk) as one line. After ``WARN_AFTER`` failures in a row the task logs a
  WARNING, then a summary every ``background.summary_seconds`` while it still
  fails ("still failing: N attempts in S s, last error …"), and its recovery
  ("recovered after N failures, S s") at the level of what it logged before;
- **remembered.** The last error, when it happened and the failures in a row are
  kept in memory (:class:`Health`, shown by ``GET /api/v1/status`` and ``duban
  status``), so they are visible even when the database cannot record them;
- **backed off.** The delay before the next try is drawn with full jitter,
  ``uniform(0, min(cap, initial * 2**(n-1)))``;
- **resumed by itself** once the cause goes away: a try that succeeds resets the
  failures and the delay.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from node.clock import Clock
from node.storage.disk_full import storage_full

logger = logging.getLogger(__name__)

WARN_AFTER = 3
"""Failures in a row after which a task's failure is worth a WARNING."""
ERROR_TEXT_MAX = 500


@dataclass(slots=True)
class Health:
    """What a background task last went through, for the status pages."""

    name: str
    failures: int = 0
    """Failures in a row (0: the last try succeeded)."""
    last_error: str | None = None
    last_error_at: int | None = None
    failing_since: int | None = None
    last_ok_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "failing_since": self.failing_since,
            "last_ok_at": self.last_ok_at,
        }


def describe(exc: BaseException) -> str:
    """One line naming an error: its type and message, bounded."""
    text = str(exc).replace("\n", " ").strip()
    name = "storage_full" if storage_full(exc) else type(exc).__name__
    return f"{name}: {text}"[:ERROR_TEXT_MAX] if text else name


@dataclass(slots=True)
class Backoff:
    """Full jitter: ``uniform(0, min(cap, initial * 2**(failures-1)))`` seconds."""

    initial: float
    cap: float
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int) -> float:
        ceiling = min(self.cap, self.initial * 2 ** min(max(failures - 1, 0), 30))
        return self.rng.uniform(0, ceiling)


class Watch:
    """One background task's failures: logged once, remembered, backed off.

    ``expected`` are the exception types that are part of the task's normal life
    (a network failure for sync): logged as one line, never with a traceback."""

    def __init__(
        self,
        name: str,
        *,
        clock: Clock,
        log: logging.Logger,
        backoff: Backoff,
        summary_seconds: float = 300.0,
        expected: tuple[type[BaseException], ...] = (),
        label: str | None = None,
    ) -> None:
        self.health = Health(name)
        self.label = label or name
        """How the log names the task (with its node: many share a process)."""
        self.clock = clock
        self.log = log
        self.backoff = backoff
        self.summary_ms = int(summary_seconds * 1000)
        self.expected = expected
        self._warned = False
        self._last_warning = 0
        self._traced: dict[str, int] = {}
        """Error signature -> when its traceback was last logged (clock ms)."""

    @property
    def name(self) -> str:
        return self.health.name

    def failed(self, exc: BaseException) -> float:
        """Note a failed try; returns how long to wait before the next."""
        h = self.health
        now = self.clock.now_ms()
        h.failures += 1
        h.last_error = describe(exc)
        h.last_error_at = now
        if h.failing_since is None:
            h.failing_since = now
        elapsed = (now - h.failing_since) / 1000
        quiet = isinstance(exc, self.expected) or storage_full(exc)
        signature = f"{type(exc).__qualname__}: {exc}"[:ERROR_TEXT_MAX]
        traced = self._traced.get(signature)
        if not quiet and (traced is None or now - traced >= self.summary_ms):
            self._traced[signature] = now
            if len(self._traced) > 64:  # bounded: forget the oldest
                del self._traced[next(iter(self._traced))]
            self.log.error(
                "%s failed (%d in a row): %s; retrying with backoff",
                self.label, h.failures, h.last_error, exc_info=exc,
            )
            self._mark_warned(now)
        elif not self._warned and (h.failures >= WARN_AFTER or storage_full(exc)):
            self.log.warning(
                "%s failing: %d attempts in %.0f s, last error: %s",
                self.label, h.failures, elapsed, h.last_error,
            )
            self._mark_warned(now)
        elif self._warned and now - self._last_warning >= self.summary_ms:
            self.log.warning(
                "%s still failing: %d attempts in %.0f s, last error: %s",
                self.label, h.failures, elapsed, h.last_error,
            )
            self._mark_warned(now)
        else:
            self.log.info("%s failed (%d in a row): %s", self.label, h.failures, h.last_error)
        return self.backoff.delay(h.failures)

    def _mark_warned(self, now: int) -> None:
        self._warned = True
        self._last_warning = now

    def succeeded(self) -> None:
        """Note a try that worked: a task that was failing says it recovered."""
        h = self.health
        now = self.clock.now_ms()
        if h.failures:
            since = h.failing_since if h.failing_since is not None else now
            level = logging.WARNING if self._warned else logging.INFO
            self.log.log(
                level, "%s recovered after %d failures, %.0f s (last error: %s)",
                self.label, h.failures, (now - since) / 1000, h.last_error,
            )
        h.failures = 0
        h.failing_since = None
        h.last_ok_at = now
        self._warned = False


class Background:
    """The watches of one node's tasks, by name (what ``status`` shows)."""

    def __init__(self) -> None:
        self.watches: dict[str, Watch] = {}

    def add(self, watch: Watch) -> Watch:
        self.watches[watch.name] = watch
        return watch

    def get(self, name: str) -> Watch | None:
        return self.watches.get(name)

    def status(self) -> list[dict[str, Any]]:
        return [w.health.to_dict() for w in self.watches.values()]


class Broadcast:
    """Wakes every task waiting on it; no lock (all on the event loop's thread).

    In place of an ``asyncio.Condition`` waited on through ``asyncio.wait_for``: a
    timeout or a cancel that lands while the condition re-acquires its lock raises
    "Lock is not acquired" in the waiter (seen at shutdown under load, the long-poll
    of ``/sync/v1/down``). A waiter here holds only a future of its own."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify_all(self) -> None:
        """Wake every task waiting now."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, timeout: float | None = None) -> bool:
        """Until the next :meth:`notify_all` or ``timeout`` seconds; whether it came."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait((waiter,), timeout=timeout)
            return waiter.done() and not waiter.cancelled()
        finally:
            self._waiters.discard(waiter)
            if not waiter.done():
                waiter.cancel()


async def sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stopping`` is set meanwhile."""
    if stopping.is_set():
        return
    try:
        await asyncio.wait_for(stopping.wait(), timeout=max(seconds, 0.0))
    except TimeoutError:
        pass


async def run_forever(
    watch: Watch,
    step: Callable[[], Awaitable[None]],
    stopping: asyncio.Event,
    *,
    between: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run ``step`` until ``stopping`` is set, surviving any exception.

    After a step that worked, ``between()`` (the task's own wait for more work);
    after one that failed, the watch's backoff."""
    while not stopping.is_set():
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if stopping.is_set():  # the database may be closing with the node
                watch.log.debug("%s stopped on %s", watch.label, describe(exc))
                return
            await sleep_unless(stopping, watch.failed(exc))
            continue
        watch.succeeded()
        if between is not None and not stopping.is_set():
            await between()


async def stop_task(task: asyncio.Task[None] | None, *, grace: float = 10.0) -> None:
    """Let a background task finish its current step after ``stopping`` was set, and
    cancel it only if it does not within ``grace`` seconds.

    Cancelling in the middle of a database transaction can leave the driver's
    connection half closed (aiosqlite's worker waits forever), so the node's
    loops are asked to stop first and cancelled only as a last resort.
    """
    if task is None or task.done():
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=grace)
    except TimeoutError:
        logger.warning("%s did not stop within %.0fs: cancelling it", task.get_name(), grace)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    except Exception:  # the task's own failure was logged where it happened
        logger.debug("background task ended with an error", exc_info=True)

