"""The parent's side of sync: endpoints a child calls (the child opens every connection).

All requests carry a signed ``Duban-Auth`` header (see :mod:`node.sync.auth`);
only this node's own children get in. Bodies are strict msgpack; refusals are
JSON ``{"error": reason, "detail": ...}`` with a 4xx status, logged, and change
nothing.

- ``GET  /sync/v1/hello`` — cursors and epochs, so the child knows where to
  resume and whether it was restored from an old backup.
- ``POST /sync/v1/up`` — a batch of the child's subtree events (at most
  ``sync.receive_max_events``); stored in one transaction together with the
  child's cursor, which never moves back within the child's stream epoch;
  idempotent.
- ``GET  /sync/v1/down?after=POS&ack=POS&wait=S`` — events routed to the child
  after ``after``; ``ack`` (default ``after``) is what the child has durably
  applied. Long-polls up to ``wait`` seconds when there are none.
- ``GET  /sync/v1/recover?after=POS`` — everything this node received from the
  child, for a child restored from a backup.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

from aiohttp import web

from node.http.services import (
    ACTIVITY,
    CLOCK,
    CONFIG,
    EVENTS,
    INGESTOR,
    OUTBOX,
    PRESENCE,
    STOPPING,
    TREE,
)
from node.sync.auth import AuthClaim, AuthError, ReplayGuard, check_body, verify_request
from node.sync.outbox import Outbox
from protocol import codec, errors
from protocol.errors import ProtocolError, printable
from protocol.keys import VerifyKey

logger = logging.getLogger(__name__)

BODY_LIMITS = codec.Limits(
    max_size=64 * 1024 * 1024,
    max_str=64,
    max_bin=1024 * 1024 + 4096,
    max_array=100_000,
    max_map=8,
    max_depth=3,
)
MAX_POSITION = 2**62
"""The largest position, count or cursor a peer may send (a stream position is a
64-bit signed integer in the database; a larger one is refused, 400)."""
EPOCH_LEN = 16
SENDING_GRACE = 1.0
"""Seconds a child that was told ``more`` has to come back for its next page before
background work (folding, scoring) stops waiting for it (node/items/materialiser.py)."""

LINK_WRITE_SECONDS = 1.0
"""How often a child's back-to-back page requests write its link row."""

MAX_DOWN_PER_CHILD = 8
"""Page requests of one child answered at once. The sync client has one or two
under way (a long-poll, the next page of a catch-up), and a connection cut under a
long-poll may keep its request here until its wait ends; past this a request is
refused 429 ``too_many_requests``: a hostile child holding thousands of long-polls
would cost their sockets and wake each one at every change."""

GUARD = web.AppKey("replay_guard", ReplayGuard)
PEER_PENDING = web.AppKey("peer_pending_written", dict[str, int])
"""Per child, the ``peer_pending`` this process last wrote to its link row. Several
processes on one PostgreSQL each keep their own: a value another wrote since may stand
until the child's count changes again (it is shown, never acted on)."""

_STATUS_OF = {
    "auth_required": 401,
    "bad_auth": 401,
    "stale_request": 401,
    "replayed": 401,
    errors.BAD_SIGNATURE: 401,
    errors.UNKNOWN_KEY: 401,
    errors.KEY_REVOKED: 403,
    errors.KEY_RETIRED: 403,
    errors.CERT_EXPIRED: 403,
    "not_my_child": 403,
    "wrong_parent": 403,
    "too_many_requests": 429,
    errors.TOO_LARGE: 413,
    errors.TOO_MANY_EVENTS: 413,
}
"""HTTP status of each refusal of the sync endpoints; any other reason is a 400."""


def status_of(reason: str) -> int:
    return _STATUS_OF.get(reason, 400)


def body_limits(max_events: int) -> codec.Limits:
    """What an upload may hold: ``BODY_LIMITS`` with at most ``max_events`` events,
    refused by the decoder at the array's header, before it reads one."""
    return dataclasses.replace(BODY_LIMITS, max_array=max_events)


def refuse(status: int, reason: str, detail: str = "") -> web.Response:
    return web.json_response({"error": reason, "detail": detail}, status=status)


def msgpack_response(value: codec.Value) -> web.Response:
    return web.Response(body=codec.encode(value), content_type="application/msgpack")


def _setting(request: web.Request, name: str) -> int:
    return int(request.app[CONFIG][name])


async def authenticate(request: web.Request, body: bytes | None) -> AuthClaim:
    tree = request.app[TREE]
    trust, me = tree.trust, tree.me
    now = request.app[CLOCK].now_ms()

    def key_for(node: str, key_id: bytes) -> VerifyKey:
        cert = trust.check_key(key_id, now)
        if cert.node != node:
            raise ProtocolError(errors.SIGNER_MISMATCH, f"key of {cert.node}, claimed {node}")
        if cert.parent != me:
            raise ProtocolError("not_my_child", f"{node} is not a child of {me}")
        return trust.key_for(key_id)

    return verify_request(
        request.headers.get("Duban-Auth"),
        me=me,
        method=request.method,
        target=request.path_qs,
        body=body,
        key_for=key_for,
        guard=request.app[GUARD],
        now_ms=now,
    )


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    """A query parameter: ASCII digits for an integer in 0..MAX_POSITION (else 400
    ``bad_param``), then kept within ``lo..hi`` (``wait`` up to the long-poll's
    length, ``limit`` up to a page...)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_POSITION):
        logger.warning(
            "sync request refused from %s: bad_param %s=%s", request.remote, name,
            printable(repr(raw), 80),
        )
        raise web.HTTPBadRequest(
            text=json.dumps(
                {"error": "bad_param", "detail": f"{name} must be an integer in 0..{MAX_POSITION}"}
            ),
            content_type="application/json",
        )
    return min(max(int(raw), lo), hi)


def auth_refusal(request: web.Request, exc: AuthError) -> web.Response:
    """The answer to a sync request whose signed header is refused (logged)."""
    logger.warning("sync request refused from %s: %s %s", request.remote, exc.reason, exc.detail)
    return refuse(_STATUS_OF.get(exc.reason, 403), exc.reason, exc.detail)


async def guarded(request: web.Request, body: bytes) -> str | web.Response:
    """The child a signed request comes from, or the refusal to answer it with."""
    try:
        return (await authenticate(request, body)).node
    except AuthError as exc:
        return auth_refusal(request, exc)


async def hello(request: web.Request) -> web.Response:
    child = await guarded(request, b"")
    if isinstance(child, web.Response):
        return child
    outbox, events = request.app[OUTBOX], request.app[EVENTS]
    link = await outbox.link_row(child)
    await outbox.update_link(child, last_contact=request.app[CLOCK].now_ms())
    return msgpack_response(
        {
            "node": request.app[TREE].me,
            "epoch": await events.epoch(),
            "applied_pos": int(link["applied_pos"]),
            "max_seq": await events.max_seq_of(child),
            # How much waits for the child (it may get ready for a catch-up).
            "pending": await outbox.pending_count(child, int(link["acked_pos"])),
        }
    )


async def up(request: web.Request) -> web.Response:
    # Authenticate the header before reading a large body; the body hash after.
    try:
        claim = await authenticate(request, None)
    except AuthError as exc:
        return auth_refusal(request, exc)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        logger.warning("sync batch refused from %s: too_large", request.remote)
        return refuse(
            413, errors.TOO_LARGE, f"a sync request body is at most {request.client_max_size} B"
        )
    try:
        check_body(claim, body)
    except AuthError as exc:
        logger.warning("sync batch refused from %s: %s %s", claim.node, exc.reason, exc.detail)
        return refuse(401, exc.reason, exc.detail)
    child = claim.node
    max_events = _setting(request, "sync.receive_max_events")
    try:
        try:
            value = codec.decode(body, body_limits(max_events))
        except ProtocolError as exc:
            if exc.reason != errors.ARRAY_TOO_LONG:
                raise
            raise ProtocolError(
                errors.TOO_MANY_EVENTS, f"a batch holds at most {max_events} events"
            ) from None
        if not isinstance(value, dict) or not (
            {"through", "events"} <= set(value) <= {"through", "events", "pending", "epoch"}
        ):
            raise ProtocolError(errors.MALFORMED, "expected {through, events[, pending, epoch]}")
        pending = value.get("pending", None)
        if pending is not None and not _position(pending):
            raise ProtocolError(errors.MALFORMED, f"pending must be a count <= {MAX_POSITION}")
        epoch = value.get("epoch", None)
        if epoch is not None and (type(epoch) is not bytes or len(epoch) != EPOCH_LEN):
            raise ProtocolError(errors.MALFORMED, f"epoch must be {EPOCH_LEN} bytes")
        through, raws = value["through"], value["events"]
        if not _position(through) or not isinstance(raws, list):
            raise ProtocolError(
                errors.MALFORMED, f"through must be an int in 0..{MAX_POSITION}, events a list"
            )
        if not all(isinstance(r, bytes) for r in raws):
            raise ProtocolError(errors.MALFORMED, "events must be bytes")
    except ProtocolError as exc:
        logger.warning("bad sync batch from %s: %s", child, exc)
        return refuse(status_of(exc.reason), exc.reason, exc.detail)
    result = await request.app[INGESTOR].receive(
        child, raws, applied_pos=through, peer_epoch=epoch  # type: ignore[arg-type]
    )
    written = request.app[PEER_PENDING]
    if isinstance(pending, int) and written.get(child) != pending:
        # What waits at the child, for the status pages: written when it changes, not
        # a second transaction for every upload (most say 0, again and again).
        await request.app[OUTBOX].update_link(child, peer_pending=pending)
        written[child] = pending
    return msgpack_response(
        {
            # Where the child's cursor is now: never behind an earlier answer.
            "applied_pos": result.applied_pos,
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "refused": [[i, reason, detail] for i, reason, detail in result.refused],
        }
    )


async def down(request: web.Request) -> web.Response:
    child = await guarded(request, b"")
    if isinstance(child, web.Response):
        return child
    after = int_param(request, "after", 0, 0, MAX_POSITION)
    # What the child has durably applied; behind ``after`` while it fetches the next
    # page before storing the last one.
    ack = int_param(request, "ack", after, 0, after)
    wait = int_param(request, "wait", 0, 0, _setting(request, "sync.long_poll_seconds"))
    page = _setting(request, "sync.batch_events")
    limit = int_param(request, "limit", page, 1, page)
    presence, outbox = request.app[PRESENCE], request.app[OUTBOX]
    if presence.open_requests(child) >= MAX_DOWN_PER_CHILD:
        logger.warning("sync request refused from %s: too_many_requests (down)", child)
        return refuse(
            429, "too_many_requests", f"at most {MAX_DOWN_PER_CHILD} page requests at once"
        )
    # The link row (what the child holds, when we last heard it) is for the status
    # pages: a catch-up's page requests (wait=0, one after another) write it once a
    # LINK_WRITE_SECONDS, not each a transaction; a long-poll always writes it first.
    loop = asyncio.get_running_loop()
    asked = loop.time()
    if presence.link_write_due(child, asked, 0.0 if wait else LINK_WRITE_SECONDS):
        now_ms = request.app[CLOCK].now_ms()
        await outbox.advance_link(child, "acked_pos", ack, last_contact=now_ms)
    with presence.holding(child):
        raws, through, more = await _wait_for_outbox(
            outbox, request.app[STOPPING], child, after, limit, wait,
            max_bytes=_setting(request, "sync.batch_bytes"),
        )
    # A child catching up asks for the next page at once: background work waits.
    now = loop.time()
    request.app[ACTIVITY].sending(now + SENDING_GRACE if more else now)
    epoch = await request.app[EVENTS].epoch()
    return msgpack_response(
        {"epoch": epoch, "events": list(raws), "through": through, "more": more}
    )


async def _wait_for_outbox(
    outbox: Outbox, stopping: asyncio.Event, child: str, after: int, limit: int, wait: int,
    *, max_bytes: int,
) -> tuple[list[bytes], int, bool]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        generation = outbox.generation(child)
        raws, through, more = await outbox.page(
            child, after, limit=limit, max_bytes=max_bytes
        )
        remaining = deadline - loop.time()
        if raws or remaining <= 0 or stopping.is_set():
            return raws, through, more
        await outbox.wait(child, generation, stopping, remaining)


async def recover(request: web.Request) -> web.Response:
    child = await guarded(request, b"")
    if isinstance(child, web.Response):
        return child
    after = int_param(request, "after", 0, 0, MAX_POSITION)
    subtree = request.app[TREE].subtree(child)
    raws, through = await request.app[EVENTS].events_of(
        subtree, after, _setting(request, "sync.batch_events")
    )
    return msgpack_response({"events": list(raws), "through": through, "more": bool(raws)})


def _position(value: object) -> bool:
    """A position or count a peer sent: an int in 0..MAX_POSITION (not a bool)."""
    return type(value) is int and 0 <= value <= MAX_POSITION


def add_routes(app: web.Application) -> None:
    app[PEER_PENDING] = {}
    app.router.add_get("/sync/v1/hello", hello)
    app.router.add_post("/sync/v1/up", up)
    app.router.add_get("/sync/v1/down", down)
    app.router.add_get("/sync/v1/recover", recover)
