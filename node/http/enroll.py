"""Enrollment over HTTP, and the node-side book of enrollment codes.

The parent keeps its :class:`hierarchy.enrollment.Enrollment` (code hashes
only) as JSON in the ``meta`` table, read and written inside one write
transaction, so ``duban invite`` (another process) and a running node agree.

- ``POST /enroll/v1/lookup`` — body: the code; answers who the code is for and
  the root fingerprint (so ``duban join`` needs only the URL and the code).
- ``POST /enroll/v1/join`` — body: the signed join request; answers the
  certificate and the chain to the root. The new certificate is stored as a
  trust record and travels up the tree like any event; the child's outbox is
  queued the records it needs and may not have (its ancestors' chain, its known
  subtree's when enrolled again), in the same transaction
  (``Outbox.route_trust_records``; docs/sync.md, "Routing").
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from hierarchy import errors as herrors
from hierarchy.enrollment import Enrollment, code_hash
from hierarchy.errors import HierarchyError
from node.clock import Clock
from node.config import Config
from node.http import sync as sync_server
from node.http.services import CLOCK, CONFIG, DB, EVENTS, KEY, OUTBOX, TREE
from node.storage.db import Database
from node.storage.events import SELF, Accepted, EventLog
from protocol import envelope
from protocol.certs import parse_certificate

logger = logging.getLogger(__name__)

_STATUS = {
    herrors.CODE_UNKNOWN: 404,
    herrors.CODE_USED: 409,
    herrors.CODE_EXPIRED: 410,
    herrors.WRONG_CHILD: 403,
    herrors.WRONG_PARENT: 403,
    herrors.BAD_PROOF: 403,
    herrors.REQUEST_STALE: 400,
    herrors.BAD_REQUEST: 400,
}
MAX_REQUEST = 8192


async def load_enrollment(conn: AsyncConnection, me: str) -> Enrollment:
    raw = await EventLog.get_meta(conn, "enrollment")
    if raw is None:
        return Enrollment(me)
    return Enrollment.from_dict(json.loads(raw))


async def save_enrollment(conn: AsyncConnection, book: Enrollment) -> None:
    await EventLog.set_meta(conn, "enrollment", json.dumps(book.export()).encode())


async def issue_code(
    db: Database, me: str, clock: Clock, config: Config,
    *, child: str, name: str, level: str, from_seq: int = 0,
) -> str:
    """A one-time code for ``child`` to enroll under ``me`` (``duban invite``)."""
    now = clock.now_ms()
    ttl = int(config["enroll.code_ttl_hours"]) * 3600 * 1000
    async with db.write() as conn:
        book = await load_enrollment(conn, me)
        code = book.issue_code(
            node=child, name=name, level=level, now=now, ttl_ms=ttl, from_seq=from_seq
        )
        await save_enrollment(conn, book)
    return code


def _refuse(exc: HierarchyError) -> web.Response:
    return sync_server.refuse(_STATUS.get(exc.reason, 400), exc.reason, exc.detail)


async def lookup(request: web.Request) -> web.Response:
    tree = request.app[TREE]
    code = (await request.content.read(256)).decode("utf-8", "replace")
    async with request.app[DB].read() as conn:
        book = await load_enrollment(conn, tree.me)
    now = request.app[CLOCK].now_ms()
    wanted = code_hash(code)
    for invitation in book.invitations():
        if invitation.code_hash == wanted:
            if invitation.used_at is not None:
                return sync_server.refuse(409, herrors.CODE_USED, "this code was already used")
            if now >= invitation.expires_at:
                return sync_server.refuse(410, herrors.CODE_EXPIRED, "ask for a new code")
            return web.json_response(
                {
                    "parent": tree.me,
                    "node": invitation.node,
                    "name": invitation.name,
                    "level": invitation.level,
                    "root_fingerprint": tree.trust.root_fingerprint,
                }
            )
    return sync_server.refuse(404, herrors.CODE_UNKNOWN, "no such enrollment code")


async def join(request: web.Request) -> web.Response:
    tree, db, events = request.app[TREE], request.app[DB], request.app[EVENTS]
    me, outbox = tree.me, request.app[OUTBOX]
    body = await request.content.read(MAX_REQUEST + 1)
    if len(body) > MAX_REQUEST:
        return sync_server.refuse(413, "too_large", f"a join request is at most {MAX_REQUEST} B")
    now = request.app[CLOCK].now_ms()
    validity = int(request.app[CONFIG]["enroll.cert_days"]) * 86400 * 1000
    try:
        # Anyone may send a join: one that cannot enroll anything (no proof, another
        # parent, a code never issued, used or expired) is refused from a read, never
        # waiting for or holding the write lock that sync batches and API writes need.
        async with db.read() as conn:
            book = await load_enrollment(conn, me)
        book.check_join(body, now=now)
        async with db.write() as conn:
            book = await load_enrollment(conn, me)
            response = book.accept_join(
                body, now=now, parent_key=request.app[KEY], trust=tree.trust,
                validity_ms=validity,
            )
            await save_enrollment(conn, book)
            cert_env = envelope.parse(response.certificate)
            stored = await events.insert_accepted(
                conn,
                [Accepted(env=cert_env, event=None, origin=None, origin_seq=None)],
                SELF,
                now,
            )
            child = parse_certificate(response.certificate).certificate.node
            await outbox.route_trust_records(conn, child)
    except HierarchyError as exc:
        logger.warning("join refused from %s: %s %s", request.remote, exc.reason, exc.detail)
        return _refuse(exc)
    events.fold_later(stored)
    await outbox.notify()
    logger.info("enrolled a child: %s", cert_env.event_id[:16])
    return web.Response(body=response.to_bytes(), content_type="application/msgpack")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/enroll/v1/lookup", lookup)
    app.router.add_post("/enroll/v1/join", join)
