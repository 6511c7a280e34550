"""Key rotation over the sync link: the parent's side, ``POST /sync/v1/rotate``.

The child (``duban key rotate``, node/keys.py) sends its rotation request
(hierarchy/keys.py: one body signed by its current key and by its new key),
authenticated like every sync request (``Duban-Auth``, node/sync/auth.py) by the
key this node knows as the child's current one. This node certifies the new key
(version N+1, valid ``enroll.cert_days``), stores the certificate as a trust
record in the same transaction — it travels up and down the tree like any — and
answers ``{"chain": [raw, ...]}``, the child's records and its ancestors'.

The same rotation asked again (the child lost the answer; it now signs with its
new key, the old one being retired here) is answered again, not refused.

Refusals are the sync endpoints' JSON ``{"error", "detail"}`` and change nothing:
the header's (401/403, node/http/sync.py), ``too_large`` (413), ``wrong_child``
(403: a request for another node), ``from_seq_behind`` (409: this node holds the
child's events from ``from_seq`` on already — a child restored from an old
backup must sync first), and the checks of hierarchy/keys.py (``bad_rotation``,
``request_stale`` 400; ``bad_proof`` 403; ``not_current_key``, ``key_reused``,
``bad_certificate`` 409).
"""

from __future__ import annotations

import logging

from aiohttp import web

from hierarchy import errors as herrors
from hierarchy import keys
from hierarchy.errors import HierarchyError
from node.http import sync as sync_server
from node.http.services import CLOCK, CONFIG, DB, EVENTS, KEY, OUTBOX, TREE
from node.storage.events import SELF, Accepted
from protocol import envelope, errors
from protocol.keys import key_id_of

logger = logging.getLogger(__name__)

MAX_REQUEST = 8192
FROM_SEQ_BEHIND = "from_seq_behind"

_STATUS = {
    herrors.BAD_PROOF: 403,
    herrors.WRONG_CHILD: 403,
    herrors.WRONG_PARENT: 403,
    herrors.NOT_CURRENT_KEY: 409,
    errors.KEY_REUSED: 409,
    errors.BAD_CERTIFICATE: 409,
    errors.KEY_REVOKED: 403,
    FROM_SEQ_BEHIND: 409,
}


def _refuse(child: str, reason: str, detail: str) -> web.Response:
    logger.warning("key rotation of %s refused: %s %s", child, reason, detail)
    return sync_server.refuse(_STATUS.get(reason, 400), reason, detail)


async def rotate(request: web.Request) -> web.Response:
    tree, events = request.app[TREE], request.app[EVENTS]
    body = await request.content.read(MAX_REQUEST + 1)
    if len(body) > MAX_REQUEST:
        return sync_server.refuse(
            413, errors.TOO_LARGE, f"a rotation request is at most {MAX_REQUEST} B"
        )
    child = await sync_server.guarded(request, body)
    if isinstance(child, web.Response):
        return child
    now = request.app[CLOCK].now_ms()
    validity = int(request.app[CONFIG]["enroll.cert_days"]) * 86400 * 1000
    try:
        asked = keys.parse_rotation_request(body, now)
        if asked.node != child:
            raise HierarchyError(herrors.WRONG_CHILD, f"a rotation of {asked.node} sent by {child}")
        retry = tree.trust.current(child).key_id == key_id_of(asked.public_key)
        held = await events.max_seq_of(child)
        if not retry and asked.from_seq <= held:
            raise HierarchyError(
                FROM_SEQ_BEHIND,
                f"the new key would sign from seq {asked.from_seq}, and {child}'s events up "
                f"to {held} are held here: let it sync first",
            )
        async with request.app[DB].write() as conn:
            record, chain = keys.certify_rotation(
                body, trust=tree.trust, issuer=request.app[KEY], now=now, not_after=now + validity
            )
            stored = None
            if record is not None:
                stored = await events.insert_accepted(
                    conn,
                    [Accepted(env=envelope.parse(record), event=None, origin=None,
                              origin_seq=None)],
                    SELF,
                    now,
                )
    except HierarchyError as exc:
        return _refuse(child, exc.reason, exc.detail)
    if stored is not None:
        events.fold_later(stored)
        await request.app[OUTBOX].queued(stored.links)
        logger.info(
            "certified a new key of %s (version %d, from seq %d)",
            child, tree.trust.version_of(child), asked.from_seq,
        )
    else:
        logger.info("answered a repeated key rotation of %s", child)
    return sync_server.msgpack_response({"chain": list(chain)})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/sync/v1/rotate", rotate)
