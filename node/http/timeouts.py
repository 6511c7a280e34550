"""How long a connection may take to send its request: against slowloris.

aiohttp's server has no request-head timeout: a client that sends half a head,
or a body one byte a minute, holds its connection (and a file descriptor, and
the memory of what it sent) for ever. The node's runner (:class:`TimedRunner`)
watches each connection through a thin protocol in front of aiohttp's:

- **head**: once the first byte of a request head arrives, the whole head must
  arrive within ``server.head_timeout_seconds`` (20 s); otherwise the connection
  is closed (answered ``408`` first when it carried no request before, so no
  answer of an earlier request can be under way);
- **body**: while a request body is still coming, some of it must arrive every
  ``server.body_idle_timeout_seconds`` (30 s), and on average at least
  ``server.body_min_bytes_per_second`` (500) after a grace of that idle timeout:
  a body may take ``body_idle + size / min_rate`` seconds (Apache's
  ``mod_reqtimeout`` rule), so a byte every few seconds (R.U.D.Y.) cannot hold a
  connection for ever. Time when this server stopped reading (its buffer full,
  a handler busy) does not count: the rate is measured afresh after it;
- **idle**: a connection with no request under way, before its first request or
  between two, is closed after ``server.keepalive_timeout_seconds`` (75 s, aiohttp's
  own ``keepalive_timeout``).

A request that aiohttp's parser refuses (too many headers, a line too long, a
bad header) is answered 400 by aiohttp and logged here as one INFO line
(:class:`RequestLog`), not as an ERROR with a traceback: it is the client's
fault, and anyone can send thousands.

A handler that takes long to answer (a long-poll) is not affected: nothing is
expected from the client then. Pipelined requests (sent before the answer to the
one before) count their head time from their first byte, so a client pipelining
behind a long-poll would be cut; browsers and aiohttp's client do not pipeline.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from node.config import Config
from protocol.errors import printable

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


@dataclass(frozen=True, slots=True)
class ConnectionTimeouts:
    head: float
    body_idle: float
    keepalive: float
    body_min_rate: float = 0.0

    @classmethod
    def from_config(cls, config: Config) -> ConnectionTimeouts:
        return cls(
            head=float(config["server.head_timeout_seconds"]),
            body_idle=float(config["server.body_idle_timeout_seconds"]),
            keepalive=float(config["server.keepalive_timeout_seconds"]),
            body_min_rate=float(config["server.body_min_bytes_per_second"]),
        )


class RequestLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log (``aiohttp.server``), with a request its parser refused
    (a 4xx ``HttpProcessingError``) as one INFO line instead of an ERROR with a
    traceback; every other error keeps its traceback."""

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            self.logger.info(
                "bad request refused: %s %s (%s)",
                exc.code, printable(exc.message, 200), printable(str(args[0] if args else ""), 80),
            )
            return
        self.logger.exception(msg, *args, **kwargs)


class TimedRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are timed (see the module's docstring)."""

    def __init__(self, app: web.Application, timeouts: ConnectionTimeouts, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", timeouts.keepalive)
        kwargs.setdefault("logger", RequestLog(logging.getLogger("aiohttp.server")))
        super().__init__(app, **kwargs)
        self.timeouts = timeouts

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        # The same server, built again with its own arguments (aiohttp keeps them in
        # ``_kwargs``), whose protocols are timed.
        return TimedServer(
            plain.request_handler,
            timeouts=self.timeouts,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **plain._kwargs,
        )


class TimedServer(web.Server):
    def __init__(self, handler: Any, *, timeouts: ConnectionTimeouts, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.timeouts = timeouts
        self.timed: dict[RequestHandler, _TimedProtocol] = {}
        make_request = self.request_factory

        def request_factory(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: Any,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            timed = self.timed.get(protocol)
            if timed is not None:
                timed.head_done(payload)
            return make_request(message, payload, protocol, writer, task)

        self.request_factory = request_factory

    def __call__(self) -> RequestHandler:
        return _TimedProtocol(super().__call__(), self)  # type: ignore[return-value]


class _TimedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the head and body timers."""

    def __init__(self, inner: RequestHandler, server: TimedServer) -> None:
        self.inner = inner
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.payload: StreamReader | None = None
        """The body of the request under way (None before the first)."""
        self.head_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.last_data = 0.0
        self.body_from = 0.0
        """Since when the body's rate is measured (its start, or the end of a pause)."""
        self.body_bytes = 0

    # asyncio.Protocol, passed on
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.timed[self.inner] = self
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.payload is None or self.payload.is_eof():
            if self.head_timer is None:  # the first byte of a head
                self.head_timer = self.loop.call_later(self.server.timeouts.head, self._head_late)
        else:
            self.last_data = self.loop.time()
            self.body_bytes += len(data)
        self.inner.data_received(data)

    def eof_received(self) -> None:
        self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.head_timer, self.body_timer):
            if timer is not None:
                timer.cancel()
        self.server.timed.pop(self.inner, None)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # the timers
    def head_done(self, payload: StreamReader) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        self.payload = payload
        if not payload.is_eof():
            self.last_data = self.body_from = self.loop.time()
            self.body_bytes = 0
            self._watch_body(self.server.timeouts.body_idle)

    def _head_late(self) -> None:
        self.head_timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        logger.info(
            "closing a connection from %s: its request head was not complete after %.0f s",
            _peer(transport), self.server.timeouts.head,
        )
        if self.payload is None:  # its first request: no answer can be under way
            transport.write(REQUEST_TIMEOUT)
        transport.close()

    def _watch_body(self, delay: float) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
        self.body_timer = self.loop.call_later(max(delay, 0.01), self._body_check)

    def _body_check(self) -> None:
        self.body_timer = None
        transport, payload = self.transport, self.payload
        if transport is None or transport.is_closing() or payload is None or payload.is_eof():
            return
        idle = self.server.timeouts.body_idle
        now = self.loop.time()
        if not transport.is_reading():  # we stopped reading: not the client's delay
            self.last_data = self.body_from = now
            self.body_bytes = 0
        quiet = now - self.last_data
        rate = self.server.timeouts.body_min_rate
        # The body may take the idle timeout plus a second per ``rate`` bytes it sent.
        slow_in = (
            self.body_from + idle + self.body_bytes / rate - now if rate > 0 else float("inf")
        )
        if quiet < idle and slow_in > 0:
            self._watch_body(min(idle - quiet, slow_in))
            return
        if quiet >= idle:
            logger.info(
                "closing a connection from %s: its request body sent nothing for %.0f s",
                _peer(transport), quiet,
            )
        else:
            logger.info(
                "closing a connection from %s: its request body came at %.0f bytes/s "
                "in %.0f s, under server.body_min_bytes_per_second (%.0f)",
                _peer(transport), self.body_bytes / max(now - self.body_from, 1e-9),
                now - self.body_from, rate,
            )
        transport.abort()


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"
