"""The interpreter settings that make a catch-up fast, applied by whoever owns the process.

They change the whole process, not one node, so no node applies them itself:
``duban run`` (one node, its own process) and ``duban demo`` (a whole tree in
one process) make one :class:`ProcessTuning` each and apply it once; a test or
an embedder that runs nodes in its own process leaves them out (the defaults
are no-ops) or passes its own. Two kinds:

- Once, when the process's nodes are open (:meth:`ProcessTuning.apply`, undone by
  :meth:`~ProcessTuning.restore`): what start-up built (modules, tables, the trust
  store) lives as long as the process, so it is frozen out of the cycle
  collector's full passes, each of which would otherwise walk it all again.
- While a catch-up's pages stream in (:meth:`ProcessTuning.streaming`, a context
  manager that the sync client holds; it is handed to it as a constructor
  argument, ``node.sync.client.SyncClient(streaming=...)``):

  - no cycle collection: a catch-up makes objects by the hundred thousand and
    frees them by reference counting (none holds a cycle); the collector would
    walk them again and again;
  - a short thread switch interval (:data:`CATCH_UP_SWITCH_SECONDS`, against
    Python's 5 ms): the database's thread gives up the GIL at each statement of
    a commit and then waits for it while the event loop prepares the next page,
    up to the switch interval each time.

  Several catch-ups may overlap (the demo's nodes share a process): the settings
  found before the first are restored when the last ends, however it ends.

What each of these gave: docs/performance.md ("Figures behind the code").
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Final

CATCH_UP_SWITCH_SECONDS: Final = 0.0005
"""Python's thread switch interval while a catch-up's pages stream in."""

Streaming = Callable[[], AbstractContextManager[object]]
"""What a sync client holds while a catch-up's pages stream in: a
:meth:`ProcessTuning.streaming`, or ``contextlib.nullcontext`` (changes nothing)."""


class ProcessTuning:
    """The catch-up's settings of one process: :meth:`apply` once its nodes are open,
    :meth:`streaming` around each catch-up, :meth:`restore` when they are closed."""

    def __init__(self, switch_seconds: float = CATCH_UP_SWITCH_SECONDS) -> None:
        self.switch_seconds = switch_seconds
        self._depth = 0
        """Catch-ups streaming now."""
        self._collecting = False
        self._switch = 0.0
        """The collector's state and the switch interval before the first of them."""

    def apply(self) -> None:
        """Freeze what exists now out of the cycle collector's passes: call it once the
        process's nodes are open, before they serve."""
        gc.collect()
        gc.freeze()

    def restore(self) -> None:
        """Undo :meth:`apply`: what was frozen is collected as usual again."""
        gc.unfreeze()

    @contextlib.contextmanager
    def streaming(self) -> Iterator[None]:
        """No cycle collection and a short switch interval while the block runs, and
        while any other catch-up of this process runs."""
        if not self._depth:
            self._collecting, self._switch = gc.isenabled(), sys.getswitchinterval()
            gc.disable()
            sys.setswitchinterval(min(self._switch, self.switch_seconds))
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth:
                if self._collecting:
                    gc.enable()
                sys.setswitchinterval(self._switch)
