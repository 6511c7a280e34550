"""A chaos TCP proxy of our own, for fault tests: loopback only, seeded.

One :class:`ChaosProxy` sits between a child and its parent (the child's
``node.parent_url`` points at it). Every accepted connection draws its fate from
a generator seeded with ``(seed, connection number)``, so a failing run is
replayed by giving the same seed (printed by the tests that use it):

- **cut** the request (child → parent) or the response (parent → child) after a
  random number of bytes, closing both sides (FIN) or resetting them (RST, with
  ``SO_LINGER`` 0) — the peer sees a half-sent request or a half-read answer;
- **stall**: stop forwarding at a random byte offset for ``stall_seconds``
  (``inf``: a black hole that holds the connection open and never answers);
- **delay** chunks by up to ``max_delay`` seconds each;
- **refuse**: reset a connection as soon as it is accepted.

:meth:`heal` turns every fault off for new connections (connections already
stalled stay stalled: a dead TCP connection does not come back by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import socket
import struct
from dataclasses import dataclass

logger = logging.getLogger(__name__)

CHUNK = 16 * 1024
LOOPBACK = "127.0.0.1"


@dataclass
class Faults:
    """Probabilities per chunk read (cut, stall, delay) or per connection (refuse;
    reset: the share of cut connections closed with an RST rather than a FIN)."""

    cut_request: float = 0.0
    cut_response: float = 0.0
    reset: float = 0.0  # share of cuts that are an RST rather than a FIN
    stall: float = 0.0
    stall_seconds: float = 1.0
    delay: float = 0.0
    max_delay: float = 0.02
    refuse: float = 0.0

    @classmethod
    def none(cls) -> Faults:
        return cls()

    @classmethod
    def chaos(cls) -> Faults:
        """Everything at once, at rates that still let some requests through."""
        return cls(cut_request=0.1, cut_response=0.1, reset=0.5, stall=0.03,
                   stall_seconds=1.5, delay=0.2, max_delay=0.03, refuse=0.05)


@dataclass
class Stats:
    connections: int = 0
    cuts_request: int = 0
    cuts_response: int = 0
    resets: int = 0
    refused: int = 0
    stalls: int = 0
    delays: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class _Cut(Exception):
    pass


class ChaosProxy:
    """``127.0.0.1:port`` → ``127.0.0.1:target_port`` with :class:`Faults`."""

    def __init__(self, target_port: int, *, seed: int, name: str = "proxy") -> None:
        self.target_port = target_port
        self.seed = seed
        self.name = name
        self.faults = Faults.none()
        self.stats = Stats()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._open = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def set_faults(self, faults: Faults) -> None:
        """Faults for new connections; open ones are closed now (a client's kept-alive
        connection would otherwise never meet them)."""
        self.faults = faults
        for writer in list(self._writers):
            writer.close()

    def heal(self) -> None:
        self.faults = Faults.none()

    async def close(self) -> None:
        """Stop listening and drop every connection (stalled ones too)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        number = self.stats.connections
        self.stats.connections += 1
        rng = random.Random(f"{self.seed}:{number}")
        faults = self.faults
        upstream: asyncio.StreamWriter | None = None
        try:
            if rng.random() < faults.refuse:
                self.stats.refused += 1
                _reset(writer)
                return
            reset = rng.random() < faults.reset
            try:
                up_reader, upstream = await asyncio.open_connection(LOOPBACK, self.target_port)
            except OSError:
                _reset(writer)
                return
            self._writers.add(upstream)
            self._open += 1
            pipes = [
                asyncio.create_task(self._pipe(reader, upstream, rng, faults, up=True)),
                asyncio.create_task(self._pipe(up_reader, writer, rng, faults, up=False)),
            ]
            try:
                for next_done in asyncio.as_completed(pipes):
                    await next_done  # a cut raises; a clean EOF waits for the other side
            except (_Cut, ConnectionError, OSError):
                if reset:
                    self.stats.resets += 1
                    _reset(writer)
                    _reset(upstream)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
                self._open -= 1
        except asyncio.CancelledError:
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self._writers.discard(w)
                    w.close()
            self._tasks.discard(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        rng: random.Random, faults: Faults, *, up: bool,
    ) -> None:
        """Forward one direction; each chunk read may be cut or stalled at a random
        byte inside it (a request head, a body, an answer: wherever it falls)."""
        cut = faults.cut_request if up else faults.cut_response
        while True:
            data = await reader.read(rng.randint(1, CHUNK))
            if not data:
                if writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                return
            if faults.stall and rng.random() < faults.stall:
                at = rng.randint(0, len(data))
                await self._forward(writer, data[:at], up)
                data = data[at:]
                self.stats.stalls += 1
                if math.isinf(faults.stall_seconds):
                    await asyncio.Event().wait()  # a black hole, until the proxy closes
                await asyncio.sleep(faults.stall_seconds)
            if cut and rng.random() < cut:
                await self._forward(writer, data[: rng.randint(0, len(data) - 1)], up)
                if up:
                    self.stats.cuts_request += 1
                else:
                    self.stats.cuts_response += 1
                raise _Cut
            if faults.delay and rng.random() < faults.delay:
                self.stats.delays += 1
                await asyncio.sleep(rng.uniform(0, faults.max_delay))
            await self._forward(writer, data, up)

    async def _forward(self, writer: asyncio.StreamWriter, data: bytes, up: bool) -> None:
        if not data:
            return
        if up:
            self.stats.bytes_up += len(data)
        else:
            self.stats.bytes_down += len(data)
        writer.write(data)
        await writer.drain()

    def summary(self) -> str:
        fields = dataclasses.asdict(self.stats)
        return f"{self.name} seed={self.seed} " + " ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
        )


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST: SO_LINGER on with a zero timeout, then abort."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
