"""Decoding received batches on another core.

Parsing and decoding a catch-up's events is most of what a node's main thread
would do while it catches up (docs/performance.md), and Python runs it on one
core at a time, however many threads there are. So a batch of at least
``MIN_EVENTS`` events is decoded in a worker process (``sync.decode_processes``
1, the default; 0 decodes everything in place), while the main thread stores
the batch before it. The worker (:mod:`node.sync.catchup.worker`) runs
:func:`protocol.decoded.decode_all`, the same code as decoding in place, and
sends back the compact form that :func:`node.sync.catchup.transfer.unpack`
rebuilds.

The worker is a plain ``python -S -m`` child that imports only the protocol
package and the transfer format, started when the parent's hello says a
catch-up is coming, or else with the first large batch. Until it says it is
ready, batches are decoded in place, so starting it never delays one that is
waited for; a batch fetched ahead waits for the worker instead, until it is
waited for. Should it die or answer nonsense, that batch is decoded in place and
a later one starts another worker. A worker left without work for ``IDLE_SECONDS``
stops; the next catch-up starts one again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import sys
from collections import deque
from collections.abc import Sequence

import protocol
from node.sync.catchup import transfer
from node.sync.catchup.worker import PIPE_BYTES, READY
from protocol.decoded import Decoded, decode_all

logger = logging.getLogger(__name__)

MIN_EVENTS = 200
"""Smaller batches are decoded in place: the round trip would cost about what it saves."""

IDLE_SECONDS = 60.0
"""A worker given nothing to decode for this long stops (a later catch-up starts
another): kept for a node's life, a province of 1,485 nodes that had each caught up
once held that many idle processes (issue 22, ~31 GB)."""


def _worker_path() -> str:
    """The worker's import path: this process's, where ``protocol`` was found first.
    The worker starts without ``site`` (``-S``: its start is on a catch-up's
    critical path, and ``site`` with the editable install's finder is a good part
    of it, docs/performance.md), so it is handed the directories ``site`` found here."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(protocol.__file__)))
    paths = [here, *(p for p in sys.path if p and os.path.exists(p) and p != here)]
    return os.pathsep.join(paths)


class Decoder:
    """Decodes received batches, the large ones in a worker process once it is ready."""

    def __init__(self, processes: int, *, idle_seconds: float = IDLE_SECONDS) -> None:
        self.enabled = processes > 0
        self.idle_seconds = idle_seconds
        self._idle: asyncio.TimerHandle | None = None
        self._stopping_idle: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._starting: asyncio.Task[None] | None = None
        self._ready = False
        # Requests sent, oldest first: the worker answers them in order.
        self._replies: deque[asyncio.Future[list[transfer.Packed]]] = deque()
        self._reading: asyncio.Task[None] | None = None
        self.in_worker = 0
        """Batches decoded in the worker so far."""

    def ready(self) -> bool:
        """Whether the next large batch goes to the worker."""
        return self._ready

    async def decode(
        self, raws: Sequence[bytes], skip: frozenset[str], *, needed: asyncio.Event | None = None
    ) -> list[Decoded]:
        """:func:`protocol.decoded.decode_all` of ``raws``, in the worker if it is ready.

        ``needed``: a batch fetched ahead, which nobody waits for until ``needed`` is
        set. While the worker starts, such a batch waits for it rather than take the
        main thread, which has the batches before it to store; once needed, and the
        worker still starting, it is decoded in place."""
        if len(raws) < MIN_EVENTS or not self.enabled:
            return decode_all(raws, skip)
        if not self._ready:
            self.start()
            starting = self._starting
            if needed is None or starting is None:
                return decode_all(raws, skip)
            asked = asyncio.ensure_future(needed.wait())
            try:  # asyncio.wait never raises for what it waits on
                await asyncio.wait({starting, asked}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                asked.cancel()
            if not self._ready:
                return decode_all(raws, skip)
        try:
            packed = await self._ask(raws, skip)
        except (OSError, EOFError, ValueError, TypeError, asyncio.IncompleteReadError) as exc:
            logger.warning("decoding worker failed (%s): decoding in place", exc)
            await self.close()
            return decode_all(raws, skip)
        self.in_worker += 1
        return transfer.unpack(raws, packed)

    def start(self) -> None:
        """Start the worker if it is not running (a catch-up is coming); returns at once."""
        if self.enabled and self._starting is None and not self._ready:
            self._starting = asyncio.ensure_future(self._start())

    async def _ask(self, raws: Sequence[bytes], skip: frozenset[str]) -> list[transfer.Packed]:
        """Send a request at once, behind those still being answered. The worker reads
        the next request as soon as it has written a reply, whatever this process is
        doing: waiting for one request's reply before sending the next left it idle
        whenever the event loop was busy preparing a batch."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        self._rest_later(cancel=True)
        request = marshal.dumps((list(raws), skip), transfer.MARSHAL_VERSION)
        reply: asyncio.Future[list[transfer.Packed]] = asyncio.get_running_loop().create_future()
        self._replies.append(reply)
        proc.stdin.write(len(request).to_bytes(8, "little") + request)  # whole, in order
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read_replies(proc.stdout))
        try:
            await proc.stdin.drain()
            packed = await reply
        finally:
            reply.cancel()  # if the caller gave up, its reply is read and dropped
            self._rest_later()
        if not isinstance(packed, list) or len(packed) != len(raws):
            raise ValueError("the worker's reply does not match the request")
        return packed

    def _rest_later(self, *, cancel: bool = False) -> None:
        """Stop the worker ``idle_seconds`` from now unless it is asked again (or
        ``cancel``: it is being asked now)."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if cancel or self._proc is None:
            return
        self._idle = asyncio.get_running_loop().call_later(self.idle_seconds, self._rest)

    def _rest(self) -> None:
        self._idle = None
        if self._replies or self._proc is None:
            return  # asked meanwhile
        logger.info("decoding worker idle for %.0f s: stopped", self.idle_seconds)
        self._ready = False  # a batch from now on is decoded in place or starts another
        self._stopping_idle = asyncio.ensure_future(self.close())

    async def _read_replies(self, stdout: asyncio.StreamReader) -> None:
        """Hand each reply to its request, in order, while requests wait for one."""
        try:
            while self._replies:
                size = int.from_bytes(await stdout.readexactly(8), "little")
                packed = marshal.loads(await stdout.readexactly(size))
                reply = self._replies.popleft()
                if not reply.done():
                    reply.set_result(packed)
        except (OSError, EOFError, ValueError, TypeError, asyncio.IncompleteReadError) as exc:
            self._fail_replies(exc)

    def _fail_replies(self, exc: BaseException) -> None:
        while self._replies:
            reply = self._replies.popleft()
            if not reply.done():
                reply.set_exception(exc)

    async def _start(self) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-S", "-m", "node.sync.catchup.worker",
                env={**os.environ, "PYTHONPATH": _worker_path()},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=PIPE_BYTES,  # the stream reader's buffer, as large as the pipe's
            )
            self._proc = proc
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
            if line != READY:
                raise OSError(f"unexpected greeting {line[:60]!r}")
        except (OSError, TimeoutError) as exc:
            logger.warning("decoding worker did not start (%s): decoding in place", exc)
            self.enabled = False
            await self.close()
            return
        self._ready = True
        self._rest_later()  # started for a catch-up that may not come

    async def close(self) -> None:
        """Stop the worker (a later large batch starts another, unless it never started)."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        proc, self._proc, self._ready = self._proc, None, False
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done() and starting is not asyncio.current_task():
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), timeout=5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        reading, self._reading = self._reading, None
        if reading is not None and not reading.done() and reading is not asyncio.current_task():
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading
        self._fail_replies(EOFError("the decoding worker was stopped"))
