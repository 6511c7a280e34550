"""Which children are connected right now, as the parent's side of sync sees them.

A child holding a page request open (a long-poll, or the next page of a catch-up)
is connected and current; the ledger shows its items as fresh. Kept in memory: it
is about this process's open requests, and a restart forgets it rightly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class Presence:
    """Open page requests per child, and when each child's link row was last written
    by one (loop time)."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}
        self._written: dict[str, float] = {}

    def connected(self, child: str) -> bool:
        return child in self._open

    def open_requests(self, child: str) -> int:
        return self._open.get(child, 0)

    @contextmanager
    def holding(self, child: str) -> Iterator[None]:
        """While a page request of ``child`` is open."""
        self._open[child] = self._open.get(child, 0) + 1
        try:
            yield
        finally:
            self._open[child] -= 1
            if not self._open[child]:
                del self._open[child]

    def link_write_due(self, child: str, now: float, every: float) -> bool:
        """Whether the link row of ``child`` was last written ``every`` seconds ago or
        more (or never); if so, counts it as written at ``now``."""
        if now - self._written.get(child, now - every) < every:
            return False
        self._written[child] = now
        return True
