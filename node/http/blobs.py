"""The parent's side of attachments: a child sends up the files its reports name.

Authenticated like the other sync endpoints (a signed ``Duban-Auth`` header of one
of this node's children, :mod:`node.http.sync`); answers are msgpack, refusals JSON
``{"error": reason, "detail": ...}`` (docs/sync.md, "Attachments"; docs/api.md).

- ``GET /sync/v1/blobs/{digest}`` — ``{held, size, complete}``: how many bytes of the
  file are here, contiguous from 0 (where to resume), and its signed size.
- ``PUT /sync/v1/blobs/{digest}?offset=N&size=S`` — one chunk, kept at once; the last
  one is checked against the digest and the file kept. 409 ``wrong_offset`` (with
  ``held``) when the chunk does not start where the data here ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from node.errors import Invalid, NodeError
from node.http.api.bodies import DIGEST_RE
from node.http.errors import response
from node.http.services import CLOCK, CONFIG, DB, EVENTS, OUTBOX, TREE
from node.http.sync import (
    MAX_POSITION,
    auth_refusal,
    authenticate,
    guarded,
    int_param,
    msgpack_response,
    refuse,
)
from node.storage.events import PARENT
from node.sync.auth import AuthError, check_body
from node.sync.blobs import BlobQueue, Limits, Receiver, WrongOffset

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class BlobStats:
    """What this node received from its children's file uploads since it started."""

    chunks_received: int = 0
    bytes_received: int = 0
    """Bytes of every chunk read from an authenticated child, kept or not."""


STATS = web.AppKey("blob_stats", BlobStats)


def _receiver(app: web.Application) -> Receiver:
    config, clock = app[CONFIG], app[CLOCK]
    return Receiver(
        app[DB],
        app[EVENTS],
        app[TREE].path_of,
        Limits(
            max_file=int(config["api.max_attachment_bytes"]),
            node_quota=int(config["api.attachment_quota_node_bytes"]),
        ),
        clock,
        BlobQueue(clock) if app[OUTBOX].has_parent else None,
    )


def _digest(request: web.Request) -> bytes:
    digest = request.match_info["digest"]
    if not DIGEST_RE.match(digest):
        raise Invalid("bad_param", "digest: not a SHA-256 digest (64 hex digits)", "digest")
    return bytes.fromhex(digest)


def _refused(child: str, digest: bytes, exc: NodeError) -> web.Response:
    logger.warning(
        "file %s from %s refused: %s %s", digest.hex()[:12], child, exc.reason, exc.detail
    )
    if isinstance(exc, WrongOffset):
        return web.json_response(
            {"error": exc.reason, "detail": exc.detail, "held": exc.held}, status=409
        )
    return response(exc)


async def blob_status(request: web.Request) -> web.Response:
    child = await guarded(request, b"")
    if isinstance(child, web.Response):
        return child
    digest = _digest(request)
    try:
        answer = await _receiver(request.app).status(child, digest)
    except NodeError as exc:
        return _refused(child, digest, exc)
    return msgpack_response(answer)


async def blob_put(request: web.Request) -> web.Response:
    # The header first, before reading the chunk; its body hash after.
    try:
        claim = await authenticate(request, None)
    except AuthError as exc:
        return auth_refusal(request, exc)
    digest = _digest(request)
    offset = int_param(request, "offset", 0, 0, MAX_POSITION)
    size = int_param(request, "size", 0, 0, MAX_POSITION)
    try:
        chunk = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return refuse(413, "too_large", f"a chunk is at most {request.client_max_size} B")
    try:
        check_body(claim, chunk)
    except AuthError as exc:
        return refuse(401, exc.reason, exc.detail)
    child = claim.node
    stats = request.app[STATS]
    stats.chunks_received += 1
    stats.bytes_received += len(chunk)
    try:
        answer = await _receiver(request.app).put(child, digest, offset, size, chunk)
    except NodeError as exc:
        return _refused(child, digest, exc)
    if answer["complete"] and request.app[OUTBOX].has_parent:
        await request.app[OUTBOX].notify([PARENT])  # the file may go on up now
    return msgpack_response(answer)


def add_routes(app: web.Application) -> None:
    app[STATS] = BlobStats()
    app.router.add_get("/sync/v1/blobs/{digest}", blob_status)
    app.router.add_put("/sync/v1/blobs/{digest}", blob_put)
