"""The child's side of sync: it opens every connection to its parent.

While online the child pushes its outbox up and holds a long-poll open for
events coming down, so a new assignment arrives in well under a second. When
the parent cannot be reached it retries with full jitter, doubling up to a cap;
a successful hello resets the delay and flushes at once.

On every (re)connection the hello compares cursors: if the parent has applied
more of our stream than we ever wrote, this database was restored from an old
backup, and we first recover our own newer events (and our subtree's) from the
parent, then start a new stream epoch so our children re-pull, before anything
new is written.

Files go up behind the events that name them (:mod:`node.sync.blobs`): a third
loop sends the link's file queue in chunks of ``sync.blob_chunk_bytes`` while the
event outbox is empty, resuming each file from what the parent already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import aiohttp
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType

from node.background import Watch, sleep_unless
from node.clock import Clock
from node.config import Config
from node.errors import Unavailable
from node.storage.events import PARENT, RECOVERY, EventLog
from node.sync import blobs
from node.sync.auth import make_header
from node.sync.catchup.decoder import MIN_EVENTS
from node.sync.catchup.tuning import Streaming
from node.sync.ingest import Ingestor
from node.sync.outbox import Outbox
from protocol import codec
from protocol.decoded import Decoded
from protocol.errors import ProtocolError, printable
from protocol.keys import SigningKey

logger = logging.getLogger(__name__)

REPLY_LIMITS = codec.Limits(
    max_size=64 * 1024 * 1024,
    max_str=2048,
    max_bin=1024 * 1024 + 4096,
    max_array=100_000,
    max_map=8,
    max_depth=4,
)


PAGES_AHEAD = 2
"""Pages of a catch-up fetched (and decoding) ahead of the one being stored: enough to
keep the decoding worker busy while a page is fetched, few enough to bound memory to
a few pages (``sync.batch_bytes`` each)."""


BLOB_IDLE_SECONDS = 60.0
"""How long the file loop sleeps with nothing to send before it looks again. It is
woken at once when events are queued or acknowledged, and when a file from a child
completes here (``node.http.blobs`` notifies the parent link), so this is only a
safety net: each look is three reads, and a process hosting many nodes paid them
for every node every few seconds (docs/performance.md, "Cascade")."""

LINK_TASK = "link to parent"
"""The sync client's name among the node's background tasks (``status``)."""


class SyncFailure(Unavailable):
    """A sync request that failed (network, HTTP status, bad reply; reason
    ``sync_failed``): part of a link's normal life, retried with backoff.
    ``retry_after``: the parent asked us to wait (a 503 with ``Retry-After``, e.g. its
    disk is full). ``str()`` is the message, which the link's status shows."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__("sync_failed", message, retry_after=retry_after)

    def __str__(self) -> str:
        return self.detail


_Ahead = (
    tuple[dict[str, Any], "asyncio.Future[list[Decoded]]", asyncio.Event] | Exception | None
)
"""A page fetched ahead, its decoding and the event saying it is needed now; a failure
fetching it; or None: no more."""


class SyncClient:
    """Keeps one child's link to its parent flowing until stopped.

    ``streaming``: what to hold while a catch-up's pages stream in; the process's
    tuning (``ProcessTuning.streaming``, node/sync/catchup/tuning.py) when its owner
    hands it down, else nothing."""

    def __init__(
        self,
        *,
        me: str,
        parent: str,
        parent_url: str,
        key: SigningKey,
        clock: Clock,
        config: Config,
        events: EventLog,
        outbox: Outbox,
        ingestor: Ingestor,
        stopping: asyncio.Event,
        watch: Watch,
        session: aiohttp.ClientSession,
        streaming: Streaming = contextlib.nullcontext,
    ) -> None:
        """``config``: the ``sync.*`` settings (timeouts, page sizes, the long-poll);
        ``watch``: the link's backoff and health (``LINK_TASK``), expecting
        :class:`SyncFailure` and ``ProtocolError``; ``stopping``: set when the node
        stops."""
        self.me = me
        self.parent = parent
        self.base = parent_url
        self.key = key
        self.clock = clock
        self.config = config
        self.events = events
        self.outbox = outbox
        self.ingestor = ingestor
        self.stopping = stopping
        self.watch = watch
        self.session = session
        self.streaming = streaming
        self.batch_events = int(config["sync.batch_events"])
        self.batch_bytes = int(config["sync.batch_bytes"])
        self.connected = asyncio.Event()
        self._cleared = False
        """Whether the link row's error (of an earlier run, perhaps) was cleared."""
        self._pull_from: tuple[int, Any] | None = None
        """Where the next pull starts (applied position, the parent's epoch), once a
        pull of this connection completed; None: read the link row."""
        self._applied = 0
        """How far the parent's stream is durable here, as the pages fetched ahead
        acknowledge it (set by :meth:`pull_once`)."""
        self.blob_chunk = max(1, int(config["sync.blob_chunk_bytes"]))
        self._acked = asyncio.Event()
        """Set when the parent acknowledged events: files behind them may go."""
        self.blob_bytes_sent = 0
        """Bytes of files this client sent (for tests and the status)."""

    # ------------------------------------------------------------- transport

    async def _call(
        self, method: str, target: str, body: bytes = b"", *, wait: float = 0.0
    ) -> Any:
        """One signed request; ``wait``: how long the parent may hold it (a long-poll).

        Timeouts follow progress, not only the whole request: connecting must take
        at most ``sync.connect_timeout_seconds``, and the parent may stay silent at
        most ``sync.read_timeout_seconds`` (plus ``wait``) — so a stalled connection
        fails in seconds, while a large batch that keeps coming is bounded only by
        ``sync.request_timeout_seconds`` (plus ``wait``)."""
        config = self.config
        timeout = aiohttp.ClientTimeout(
            total=float(config["sync.request_timeout_seconds"]) + wait,
            sock_connect=float(config["sync.connect_timeout_seconds"]),
            sock_read=float(config["sync.read_timeout_seconds"]) + wait,
        )
        try:
            async with self.session.request(
                method,
                self.base + target,
                data=body or None,
                headers={"Content-Type": "application/msgpack"},
                timeout=timeout,
                middlewares=(self._signer(target, body),),
            ) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    raise SyncFailure(
                        f"{method} {target}: HTTP {resp.status} {payload[:300]!r}",
                        retry_after=_retry_after(resp.headers.get("Retry-After")),
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SyncFailure(f"{method} {target}: {type(exc).__name__} {exc}") from None
        try:
            return codec.decode(payload, REPLY_LIMITS)
        except ProtocolError as exc:
            raise SyncFailure(f"{method} {target}: bad reply ({exc.reason})") from None

    async def _blob_call(
        self, method: str, target: str, body: bytes = b""
    ) -> tuple[int, dict[str, Any]]:
        """One signed request of the file queue: (status, answer). A 200's answer is
        msgpack, a refusal's JSON; a network failure or an unreadable answer is a
        :class:`SyncFailure`."""
        config = self.config
        timeout = aiohttp.ClientTimeout(
            total=float(config["sync.request_timeout_seconds"]),
            sock_connect=float(config["sync.connect_timeout_seconds"]),
            sock_read=float(config["sync.read_timeout_seconds"]),
        )
        try:
            async with self.session.request(
                method,
                self.base + target,
                data=body or None,
                headers={"Content-Type": "application/octet-stream"},
                timeout=timeout,
                middlewares=(self._signer(target, body),),
            ) as resp:
                status, payload = resp.status, await resp.read()
                retry = _retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SyncFailure(f"{method} {target}: {type(exc).__name__} {exc}") from None
        try:
            answer = (
                codec.decode(payload, REPLY_LIMITS) if status == 200 else json.loads(payload)
            )
            if not isinstance(answer, dict):
                raise ValueError("not a map")
        except (ProtocolError, ValueError) as exc:
            raise SyncFailure(
                f"{method} {target}: HTTP {status}, bad reply ({exc})", retry_after=retry
            ) from None
        if status != 200 and str(answer.get("error")) not in blobs.PERMANENT | {"wrong_offset"}:
            raise SyncFailure(
                f"{method} {target}: HTTP {status} {answer.get('error')!s:.40} "
                f"{printable(str(answer.get('detail')), 200)}",
                retry_after=retry,
            )
        return status, answer

    def _signer(self, target: str, body: bytes) -> ClientMiddlewareType:
        """A client middleware signing each attempt afresh. aiohttp sends an idempotent
        request (a GET) again on a new connection when a kept-alive one drops; with
        the same header (and nonce) the parent would refuse it as ``replayed``."""
        parent = self.parent
        assert parent is not None

        async def sign(
            request: aiohttp.ClientRequest, send: ClientHandlerType
        ) -> aiohttp.ClientResponse:
            request.headers["Duban-Auth"] = make_header(
                self.key,
                node=self.me,
                parent=parent,
                method=request.method,
                target=target,
                body=body,
                now_ms=self.clock.now_ms(),
            )
            return await send(request)

        return sign

    # ----------------------------------------------------------------- steps

    async def hello(self) -> None:
        outbox = self.outbox
        self._pull_from = None  # the link row may change here: read it again
        reply = await self._call("GET", "/sync/v1/hello")
        link = await outbox.link_row(PARENT)
        epoch = reply["epoch"]
        if link.get("peer_epoch") not in (None, epoch):
            logger.warning(
                "parent %s started a new stream: pulling again from the start", self.parent
            )
            await outbox.update_link(PARENT, applied_pos=0, peer_epoch=epoch)
        elif link.get("peer_epoch") is None:
            await outbox.update_link(PARENT, peer_epoch=epoch)
        own_seq = await self.events.own_seq()
        mine_max = await outbox.max_route_pos(PARENT)
        if reply["max_seq"] > own_seq or reply["applied_pos"] > mine_max:
            await self.recover(reply)
        elif reply["applied_pos"] < link["acked_pos"]:
            logger.warning(
                "parent %s holds less of our stream than it acknowledged; pushing again from %s",
                self.parent,
                reply["applied_pos"],
            )
            await outbox.update_link(PARENT, acked_pos=reply["applied_pos"])
        await outbox.update_link(PARENT, last_contact=self.clock.now_ms())
        if int(reply.get("pending", 0)) >= MIN_EVENTS:  # a catch-up: get the worker ready
            self.ingestor.decoder.start()

    async def recover(self, reply: dict[str, Any]) -> None:
        """Our database is older than what the parent holds: take our events back."""
        logger.warning(
            "restored from an old backup? parent holds our seq %s (we have %s): recovering",
            reply["max_seq"],
            await self.events.own_seq(),
        )
        after = 0
        total = 0
        while True:
            page = await self._call("GET", f"/sync/v1/recover?after={after}")
            if page["events"]:
                result = await self.ingestor.receive(RECOVERY, page["events"])
                total += result.accepted
            if not page["more"]:
                break
            after = page["through"]
        await self.events.finish_recovery(self.outbox.renumbered)
        await self.outbox.notify()
        logger.warning("recovered %d events from %s; new stream epoch started", total, self.parent)

    async def push_once(self) -> int:
        """Send one batch of our outbox; returns how many events went."""
        link = await self.outbox.link_row(PARENT)
        raws, through, _more = await self.outbox.page(
            PARENT, int(link["acked_pos"]), limit=self.batch_events, max_bytes=self.batch_bytes
        )
        if not raws:
            return 0
        pending = await self.outbox.pending_count(PARENT, through)
        # The epoch names our numbering: the parent's cursor for us only moves forward
        # within it (node/http/sync.py).
        epoch = await self.events.epoch()
        body = codec.encode(
            {"through": through, "events": list(raws), "pending": pending, "epoch": epoch}
        )
        reply = await self._call("POST", "/sync/v1/up", body)
        if reply["refused"]:
            _log_refused(reply["refused"], len(raws))
        await self.outbox.advance_link(
            # Never past what this upload carried: the parent's word is bounded too.
            PARENT, "acked_pos", min(int(reply["applied_pos"]), through),
            last_contact=self.clock.now_ms(),
        )
        self._acked.set()
        return len(raws)

    async def _fetch_down(self, after: int, ack: int, wait: int) -> dict[str, Any]:
        page: dict[str, Any] = await self._call(
            "GET",
            f"/sync/v1/down?after={after}&ack={ack}&wait={wait}&limit={self.batch_events}",
            wait=wait,
        )
        return page

    async def _fetch_ahead(self, page: dict[str, Any], out: asyncio.Queue[_Ahead]) -> None:
        """Fetch the pages after ``page``, one after another, while ``out`` has room; each
        is decoded as soon as it arrives (in the decoding worker, while this process
        stores the pages before). A failure is handed on through ``out`` too."""
        try:
            while page["more"]:
                page = await self._fetch_down(int(page["through"]), self._applied, 0)
                events = page.get("events")
                if not isinstance(events, list):
                    raise SyncFailure("bad reply: no events")
                needed = asyncio.Event()
                decoding = asyncio.ensure_future(self.ingestor.decode(events, needed=needed))
                try:
                    await out.put((page, decoding, needed))
                except asyncio.CancelledError:
                    # Stopped while the queue was full: this page's decoding is no
                    # one's to stop but ours.
                    decoding.cancel()
                    await asyncio.gather(decoding, return_exceptions=True)
                    raise
                if not events:
                    return
        except (SyncFailure, ProtocolError, KeyError, TypeError, ValueError) as exc:
            await out.put(exc)
            return
        await out.put(None)

    async def pull_once(self, wait: int) -> int:
        """Pull and store pages until the parent has nothing more; returns how many
        events came.

        A catch-up is a pipeline. Once the first page arrives, the pages after it are
        fetched one after another, up to ``PAGES_AHEAD`` ahead of the page being
        stored, each decoded as soon as it comes (in the decoding worker,
        node/sync/catchup/); page k is checked and verified while page k-1
        commits — mostly in the database's thread. So the parent, the network, this
        node's cores and its disk work at the same time. Commits stay in order, one
        at a time, and each page's ``ack`` is what is durable here when it is asked for."""
        # Where to pull from: the link row once per connection, then what the last pull
        # committed (only this loop moves it while connected): a long-poll's re-arm is
        # no read, which a process of many nodes pays for each.
        known, self._pull_from = self._pull_from, None
        if known is None:
            link = await self.outbox.link_row(PARENT)
            known = (int(link["applied_pos"]), link.get("peer_epoch"))
        applied, peer_epoch = known
        self._applied = applied
        # A timeline of the catch-up, page by page, for `duban -v run` (bench/catchup.py
        # --timeline): what each page waited for says which stage holds the rest up.
        loop = asyncio.get_running_loop()
        asked = loop.time()
        page = await self._fetch_down(applied, applied, wait)
        pages, waited = 0, loop.time() - asked  # the first: the request (a long-poll's wait)
        decoded: list[Decoded] | None = None
        ahead: asyncio.Queue[_Ahead] = asyncio.Queue(PAGES_AHEAD)
        fetching: asyncio.Future[None] | None = None
        committing: asyncio.Future[Any] | None = None
        committing_through = applied
        total = 0
        tuned = contextlib.ExitStack()
        try:
            while True:
                if peer_epoch is not None and page["epoch"] != peer_epoch:
                    # The parent recovered from a backup while we were connected: its
                    # positions were renumbered. Reconnect, so hello pulls from the start.
                    raise SyncFailure(f"parent {self.parent} started a new stream epoch")
                if not page["events"]:
                    break
                through = int(page["through"])
                if fetching is None and page["more"]:
                    fetching = asyncio.ensure_future(self._fetch_ahead(page, ahead))
                    tuned.enter_context(self.streaming())
                began = loop.time()
                prepared = await self.ingestor.prepare(PARENT, page["events"], decoded)
                ready = loop.time()
                if committing is not None:
                    await committing
                    self._applied = committing_through
                logger.info(
                    "catch-up page %d, %d events: waited %.1f ms for it, prepared in %.1f ms,"
                    " waited %.1f ms for the commit before",
                    pages, len(page["events"]), waited * 1e3, (ready - began) * 1e3,
                    (loop.time() - ready) * 1e3,
                )
                pages += 1
                committing = asyncio.ensure_future(
                    self.ingestor.commit(prepared, applied_pos=through)
                )
                committing_through = through
                total += len(page["events"])
                if fetching is None:
                    break
                asked = loop.time()
                next_page = await ahead.get()
                if next_page is None:
                    break
                if isinstance(next_page, Exception):
                    raise next_page
                page, decoding, needed = next_page
                needed.set()
                decoded = await decoding
                waited = loop.time() - asked
            if committing is not None:
                await committing
            self._pull_from = (committing_through, peer_epoch)
        finally:
            await _stop_fetching(fetching, ahead)
            # Never cancel a commit half-way through its transaction: let it finish.
            if committing is not None and not committing.done():
                await asyncio.gather(committing, return_exceptions=True)
            tuned.close()
        return total

    # ----------------------------------------------------------------- files

    async def send_file_once(self) -> bool:
        """Send the next file of the queue that may go now (its naming event
        acknowledged, no event waiting to go up); returns whether there was one.
        A permanent refusal marks the file refused; a transient one raises
        :class:`SyncFailure`."""
        link = await self.outbox.link_row(PARENT)
        acked = int(link["acked_pos"])
        if await self.outbox.pending_count(PARENT, acked):
            return False  # events first
        queued = await blobs.next_ready(self.events.db, PARENT, acked)
        if queued is None:
            return False
        digest, target = queued.digest, f"/sync/v1/blobs/{queued.digest.hex()}"
        status, answer = await self._blob_call("GET", target)
        if status == 200 and not answer.get("complete"):
            data = await blobs.file_data(self.events.db, digest)
            if data is None:  # cannot happen: a file is queued once it is held
                await self._file_refused(queued, "file_missing", "the file is not held here")
                return True
            held = _bounded(answer.get("held"), len(data))
            while held < len(data) and not self.stopping.is_set():
                chunk = data[held : held + self.blob_chunk]
                status, answer = await self._blob_call(
                    "PUT", f"{target}?offset={held}&size={len(data)}", chunk
                )
                if status == 409:  # wrong_offset: continue from what the parent holds
                    held = _bounded(answer.get("held"), len(data))
                    continue
                if status != 200:
                    break
                self.blob_bytes_sent += len(chunk)
                held = _bounded(answer.get("held"), len(data))
                if answer.get("complete"):
                    break
            if status == 200 and not answer.get("complete"):
                return True  # stopping: the rest another time
        if status != 200:
            reason = str(answer.get("error"))
            await self._file_refused(queued, reason, str(answer.get("detail", "")))
            return True
        await blobs.sent(self.events.db, PARENT, digest)
        logger.info("file %s (%d bytes) is at %s", digest.hex()[:12], queued.size, self.parent)
        return True

    async def _file_refused(self, queued: blobs.Queued, reason: str, detail: str) -> None:
        logger.warning(
            "parent %s refused file %s for good: %s %s", self.parent, queued.digest.hex()[:12],
            printable(reason, 40), printable(detail, 200),
        )
        await blobs.mark_refused(
            self.events.db, PARENT, queued.digest, reason, detail, self.clock.now_ms()
        )

    async def _blob_loop(self) -> None:
        """Send the file queue while the link is up; a transient failure of a file is
        retried with the link's backoff, without stopping the events' loops."""
        outbox, failures = self.outbox, 0
        while not self.stopping.is_set():
            generation = outbox.generation(PARENT)
            self._acked.clear()
            try:
                if await self.send_file_once():
                    failures = 0
                    continue
            except SyncFailure as exc:
                failures += 1
                delay = self.watch.backoff.delay(failures)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.watch.backoff.cap))
                logger.info("sending a file to %s failed (%s); again in %.1f s",
                            self.parent, exc, delay)
                await sleep_unless(self.stopping, delay)
                continue
            # Nothing may go now: wait for events queued or acknowledged, or a while.
            acked = asyncio.ensure_future(self._acked.wait())
            changed = asyncio.ensure_future(
                outbox.wait(PARENT, generation, self.stopping, BLOB_IDLE_SECONDS)
            )
            try:
                await asyncio.wait({acked, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (acked, changed):
                    task.cancel()
                await asyncio.gather(acked, changed, return_exceptions=True)

    # ----------------------------------------------------------------- loops

    async def _push_loop(self) -> None:
        outbox = self.outbox
        while True:
            generation = outbox.generation(PARENT)
            if await self.push_once():
                await self._working()
                continue
            await outbox.wait(PARENT, generation, self.stopping)
            if self.stopping.is_set():
                return

    async def _pull_loop(self) -> None:
        wait = int(self.config["sync.long_poll_seconds"])
        while not self.stopping.is_set():
            await self.pull_once(wait)
            await self._working()

    async def _working(self) -> None:
        """A batch went up or a pull completed (stored what came): the link works. Not
        at ``hello``, which a node whose disk is full still passes."""
        if self.watch.health.failures or not self._cleared:
            await self.outbox.update_link(PARENT, failures=0, last_error=None)
            self._cleared = True
            self.watch.succeeded()

    async def run(self) -> None:
        """Sync until stopped; survives any failure (``node.background``).

        A network failure is one INFO line; a link failing ``WARN_AFTER`` times in a
        row logs a WARNING, then a summary every ``background.summary_seconds``, and
        its recovery. Any other error (a database error, a full disk) is retried the
        same way, its traceback logged once. The link row keeps the last error and
        the failures; when the database cannot record them (a full disk) they are
        still shown from memory (``GET /api/v1/status``, ``duban status``)."""
        watch = self.watch
        while not self.stopping.is_set():
            try:
                await self.hello()
                self.connected.set()
                await _first_failure(self._push_loop(), self._pull_loop(), self._blob_loop())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                if self.stopping.is_set():  # the database may be closing with the node
                    logger.debug("sync with %s stopped: %s", self.parent, exc)
                    return
                delay = watch.failed(exc)
                health = watch.health
                try:
                    await self.outbox.update_link(
                        PARENT,
                        last_error=health.last_error,
                        last_error_at=health.last_error_at,
                        failures=health.failures,
                    )
                except Exception as record:  # kept in memory: the status shows it
                    logger.debug("could not record the sync error: %s", record)
                if isinstance(exc, SyncFailure) and exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, watch.backoff.cap))
                await sleep_unless(self.stopping, delay)


def _bounded(value: object, size: int) -> int:
    """A byte count the parent sent, as an offset into a file of ``size`` bytes."""
    if type(value) is not int or not 0 <= value <= size:
        raise SyncFailure(f"bad reply: held {printable(repr(value), 40)} of {size} bytes")
    return value


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (its delay form), else None."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _log_refused(refused: list[Any], sent: int) -> None:
    """One line per upload the parent refused events of: how many, for which
    reasons, and the first one's detail (escaped: the parent's words)."""
    reasons: dict[str, int] = {}
    for _, reason, _ in refused:
        key = printable(str(reason), 40)
        reasons[key] = reasons.get(key, 0) + 1
    index, reason, detail = refused[0]
    logger.warning(
        "parent refused %d of %d events we sent (%s); first: #%s %s %s",
        len(refused), sent, ", ".join(f"{r} x{n}" for r, n in reasons.items()),
        index, printable(str(reason), 40), printable(str(detail), 200),
    )


async def _stop_fetching(
    fetching: asyncio.Future[None] | None, ahead: asyncio.Queue[_Ahead]
) -> None:
    """Stop fetching pages ahead, and decoding those fetched (on a failure: after a
    complete catch-up nothing is left)."""
    if fetching is not None and not fetching.done():
        fetching.cancel()
        await asyncio.gather(fetching, return_exceptions=True)
    while not ahead.empty():
        left = ahead.get_nowait()
        if isinstance(left, tuple):
            left[1].cancel()
            await asyncio.gather(left[1], return_exceptions=True)


async def _first_failure(*coros: Any) -> None:
    """Run the loops together; the first to fail (or finish) cancels the rest."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
