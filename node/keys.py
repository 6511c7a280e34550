"""A node's key as the operator changes it: ``duban key rotate`` and ``duban revoke``.

Both change what a node signs with or trusts, which a running node keeps in
memory (its key, its trust store), so both run while the node is stopped: they
hold the data directory's lock exclusively (node/storage/keyfile.py), and the
node does not start meanwhile.

Rotation (planned: the key has aged, the machine changes). The child makes its
next key and writes it beside the old one (``node.key.new``) before anyone sees
it, then asks its parent, which must be running, over the sync link
(``POST /sync/v1/rotate``, node/http/keys.py) to certify it from ``from_seq`` =
its own next sequence number. It checks the answer up to the pinned root,
stores the new certificate (which goes on down to its own children; the parent
sent it up), and installs the new key file, keeping the old one as
``node.key.old-<day>-<key id>``. Its events signed before still verify
everywhere; it signs the next ones with the new key. The root certifies its
own next key. Cut short anywhere, the same command finishes it: the parent
answers a repeated request again, and a node with a ``node.key.new`` does not
start until then.

Revocation (unplanned: a key is lost or stolen). The parent signs the
revocation of its child's current key after ``last_seq`` — by default the last
event of that child it holds — and stores it; it travels the whole tree like
any trust record, and everywhere the key's later events are refused. The child
then joins again with a code whose ``from_seq`` follows what the parent holds:
in a new data directory (its history comes back from the parent on its first
sync), or in place with ``duban key replace`` when its data directory survives —
the only way for a node with children, whose certificates its revoked key signed
and which it then certifies again with its new key.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from hierarchy import keys
from hierarchy.enrollment import JoinResponse, make_join_request
from hierarchy.errors import HierarchyError
from node.clock import Clock
from node.config import Config
from node.context import NodeContext, open_node
from node.errors import NodeError
from node.storage import keyfile
from node.storage.events import PARENT, SELF
from node.sync.auth import make_header
from protocol import codec, errors
from protocol.certs import Certificate, TrustStore
from protocol.errors import ProtocolError
from protocol.keys import SigningKey

logger = logging.getLogger(__name__)

ROTATE_TARGET = "/sync/v1/rotate"
REQUEST_SECONDS = 30.0
_REPLY_LIMITS = codec.Limits(
    max_size=1024 * 1024, max_str=64, max_bin=8192, max_array=1024, max_map=4, max_depth=2
)


class KeyChangeError(NodeError):
    """A rotation, replacement or revocation that cannot go on (reason
    ``key_change_failed``); ``str()`` is the message, which says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__("key_change_failed", message)

    def __str__(self) -> str:
        return self.detail


class NotCertified(KeyChangeError):
    """The parent certainly did not certify the new key (it refused the request, or
    was never reached): the new key is dropped and the node goes on with its old one."""


@dataclass(frozen=True, slots=True)
class Rotated:
    """A finished rotation: the certificate of the new key and where the old key is."""

    certificate: Certificate
    old_key_id: bytes
    kept_as: Path


@dataclass(frozen=True, slots=True)
class Revoked:
    """A revocation made here, and what the child needs to join again."""

    child: Certificate
    last_seq: int
    from_seq: int
    """The first sequence number the child's next key signs (after what is held here)."""
    signed_below: tuple[str, ...]
    """The child's own children, whose certificates the revoked key signed."""


# ---------------------------------------------------------------- rotation


async def rotate_key(config: Config, clock: Clock) -> Rotated:
    """Give the node in ``config`` a new key certified by its parent (or, for the
    root, by itself); see the module's docstring. The node must be stopped."""
    path = config.key_path
    pending = keyfile.pending_path(path)
    with keyfile.hold(config.data_dir, exclusive=True):
        ctx = await open_node(config, clock)
        try:
            old = ctx.key
            new = keyfile.load(pending) if pending.exists() else None
            current = ctx.certificate
            if new is not None and current.key_id == new.key_id:
                logger.info("the new key is certified and stored already: installing it")
            elif current.key_id != old.key_id:
                raise KeyChangeError(
                    f"{path} holds key {old.key_id.hex()[:16]}, but {ctx.me}'s current key is "
                    f"{current.key_id.hex()[:16]}: this is not the node's key file"
                )
            else:
                new = new or keyfile.create(pending)
                try:
                    await _certify(ctx, old, new)
                except NotCertified:
                    pending.unlink()
                    raise
            cert = ctx.certificate
        finally:
            await ctx.close()
        day = time.strftime("%Y%m%d", time.gmtime(clock.now_ms() / 1000))
        kept_as = keyfile.retired_path(path, old, day)
        keyfile.install(path, pending, kept_as)
    logger.info(
        "node %s signs with key %s from seq %d", cert.node, cert.key_id.hex(), cert.from_seq
    )
    return Rotated(certificate=cert, old_key_id=old.key_id, kept_as=kept_as)


async def _certify(ctx: NodeContext, old: SigningKey, new: SigningKey) -> None:
    """Certify ``new`` from the node's next sequence number and store the records."""
    from_seq = await ctx.store.own_seq() + 1
    now = ctx.clock.now_ms()
    current = ctx.certificate
    if current.parent is None:
        span = current.not_after - current.not_before
        try:
            record = keys.rotate(
                ctx.trust, old, node=ctx.me, public_key=new.public_key, from_seq=from_seq,
                now=now, not_after=now + span,
            )
        except HierarchyError as exc:
            raise NotCertified(f"cannot certify the new root key: {exc}") from None
        await ctx.store.store_trust_records([record], SELF)
        return
    request = keys.make_rotation_request(old, new, node=ctx.me, from_seq=from_seq, now=now)
    chain = await _ask_parent(ctx, request, old, new)
    fresh = _checked_records(ctx, chain, new, from_seq)
    await ctx.store.store_trust_records(fresh, PARENT)


async def _ask_parent(
    ctx: NodeContext, request: bytes, old: SigningKey, new: SigningKey
) -> list[bytes]:
    """The parent's answer to the rotation request: the chain of the new certificate.

    Signed by the old key; if the parent answers that the old key is retired, it
    certified the new key already (its first answer was lost), so the same request
    goes again signed by the new key."""
    url = ctx.parent_url
    if not url:
        raise NotCertified("node.parent_url is not set: the parent cannot be asked")
    timeout = aiohttp.ClientTimeout(total=REQUEST_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        status, reply = await _post(session, ctx, request, old)
        if status >= 500:  # it may have certified the key before it failed
            raise KeyChangeError(_lost(ctx, f"HTTP {status} {reply.get('error')}"))
        if status != 200 and reply.get("error") != errors.KEY_RETIRED:
            raise NotCertified(
                f"the parent {ctx.parent} refused the rotation: {reply.get('error')} "
                f"({reply.get('detail')}); nothing changed, the node keeps its key"
            )
        if status != 200:
            status, reply = await _post(session, ctx, request, new)
    if status != 200:
        raise KeyChangeError(
            f"the parent {ctx.parent} refused the rotation: {reply.get('error')} "
            f"({reply.get('detail')}), and no longer takes the old key either; "
            f"{keyfile.pending_path(ctx.config.key_path)} is kept"
        )
    chain = reply.get("chain")
    if not isinstance(chain, list) or not all(type(r) is bytes for r in chain):
        raise KeyChangeError(f"the parent {ctx.parent} answered no chain")
    return [r for r in chain if type(r) is bytes]


async def _post(
    session: aiohttp.ClientSession, ctx: NodeContext, body: bytes, key: SigningKey
) -> tuple[int, dict[str, Any]]:
    parent = ctx.parent
    assert parent is not None
    header = make_header(
        key, node=ctx.me, parent=parent, method="POST", target=ROTATE_TARGET, body=body,
        now_ms=ctx.clock.now_ms(),
    )
    try:
        async with session.post(
            ctx.parent_url + ROTATE_TARGET,
            data=body,
            headers={"Content-Type": "application/msgpack", "Duban-Auth": header},
        ) as resp:
            raw = await resp.read()
            status = resp.status
    except aiohttp.ClientConnectorError as exc:
        raise NotCertified(f"the parent is not reachable at {ctx.parent_url}: {exc}") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise KeyChangeError(_lost(ctx, f"{type(exc).__name__} {exc}")) from None
    if status != 200:
        try:
            refused = json.loads(raw)
        except ValueError:
            refused = None
        if not isinstance(refused, dict):
            refused = {"error": f"HTTP {status}", "detail": raw[:200].decode("utf-8", "replace")}
        return status, refused
    try:
        value = codec.decode(raw, _REPLY_LIMITS)
    except ProtocolError as exc:
        raise KeyChangeError(f"the parent's answer is not msgpack ({exc.reason})") from None
    if not isinstance(value, dict):
        raise KeyChangeError("the parent's answer is not a map")
    return status, value


def _lost(ctx: NodeContext, what: str) -> str:
    return (
        f"the exchange with the parent at {ctx.parent_url} broke off ({what}): it may have "
        f"certified the new key. Run the same command again to finish; the node does not "
        f"start until then ({keyfile.pending_path(ctx.config.key_path).name} exists)"
    )


def _checked_records(
    ctx: NodeContext, chain: list[bytes], new: SigningKey, from_seq: int | None
) -> list[bytes]:
    """Check the chain up to the pinned root (the new key is the node's current one,
    from ``from_seq`` if given), add what is new in it to the trust store and return
    that."""
    now = ctx.clock.now_ms()
    try:
        alone = TrustStore(ctx.trust.root_fingerprint)
        for raw in chain:
            alone.add(raw, now)
        cert = alone.current(ctx.me)
        alone.check_key(new.key_id, now)
    except ProtocolError as exc:
        raise KeyChangeError(f"the parent's chain does not verify: {exc}") from None
    if cert.key_id != new.key_id or from_seq not in (None, cert.from_seq):
        raise KeyChangeError(
            f"the parent certified key {cert.key_id.hex()[:16]} from seq {cert.from_seq}, "
            f"not ours from seq {from_seq}"
        )
    held = set(ctx.trust.export())
    fresh = [raw for raw in chain if raw not in held]
    try:
        for raw in fresh:
            ctx.trust.add(raw, now)
    except ProtocolError as exc:
        raise KeyChangeError(
            f"the parent's chain disagrees with what this node holds: {exc}"
        ) from None
    return fresh


async def replace_key(config: Config, clock: Clock, code: str) -> Rotated:
    """Enroll the node in ``config`` again in place, with a one-time ``code`` from its
    parent, after its key was revoked: a new key, certified from the code's
    ``from_seq``; then its children's certificates that the old key signed are
    certified again with the new one (same keys, next versions), which a node
    enrolled in a new data directory cannot do (it holds no certificate its
    revoked key signed). The node must be stopped; the parent running.

    Cut short, it is run again with a new code if the parent used the first."""
    path = config.key_path
    pending = keyfile.pending_path(path)
    with keyfile.hold(config.data_dir, exclusive=True):
        ctx = await open_node(config, clock)
        try:
            old = ctx.key
            if ctx.parent is None:
                raise KeyChangeError(
                    "the root has no parent to enroll with: use `duban key rotate`"
                )
            new = keyfile.load(pending) if pending.exists() else keyfile.create(pending)
            if ctx.certificate.key_id != new.key_id:
                request = make_join_request(
                    new, parent=ctx.parent, node=ctx.me, code=code, now=ctx.clock.now_ms()
                )
                try:
                    chain = await _join_again(ctx, request)
                except NotCertified:
                    pending.unlink()
                    raise
                fresh = _checked_records(ctx, chain, new, None)
                await ctx.store.store_trust_records(fresh, PARENT)
            try:
                again = keys.reissue_signed_by(
                    ctx.trust, new, old_key_id=old.key_id, now=ctx.clock.now_ms()
                )
            except HierarchyError as exc:
                raise KeyChangeError(f"cannot certify the children again: {exc}") from None
            if again:
                await ctx.store.store_trust_records(again, SELF)
                logger.info("certified %d children again with the new key", len(again))
            cert = ctx.certificate
        finally:
            await ctx.close()
        day = time.strftime("%Y%m%d", time.gmtime(clock.now_ms() / 1000))
        kept_as = keyfile.retired_path(path, old, day)
        keyfile.install(path, pending, kept_as)
    return Rotated(certificate=cert, old_key_id=old.key_id, kept_as=kept_as)


async def _join_again(ctx: NodeContext, request: bytes) -> list[bytes]:
    url = ctx.parent_url
    if not url:
        raise NotCertified("node.parent_url is not set: the parent cannot be asked")
    timeout = aiohttp.ClientTimeout(total=REQUEST_SECONDS)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
            url + "/enroll/v1/join", data=request
        ) as resp:
            body, status = await resp.read(), resp.status
    except aiohttp.ClientConnectorError as exc:
        raise NotCertified(f"the parent is not reachable at {url}: {exc}") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise KeyChangeError(_lost(ctx, f"{type(exc).__name__} {exc}")) from None
    if status != 200:
        text = body[:300].decode("utf-8", "replace")
        if status >= 500:
            raise KeyChangeError(_lost(ctx, f"HTTP {status} {text}"))
        if b"code_used" in body:  # perhaps by this very key, in a run cut short
            raise KeyChangeError(
                f"the parent {ctx.parent} refused: {text}. If an earlier run of this command "
                "used the code, ask for a new one and run it again"
            )
        raise NotCertified(f"the parent {ctx.parent} refused: {text}; nothing changed")
    return list(JoinResponse.from_bytes(body).chain)


# -------------------------------------------------------------- revocation


async def revoke_child(
    config: Config, clock: Clock, child: str, *, last_seq: int | None = None, reason: str = ""
) -> Revoked:
    """Revoke ``child``'s current key after ``last_seq`` (default: its last event held
    here) and store the record, which travels the tree. The node must be stopped.

    Refused (``HierarchyError``): an unknown node, not a direct child, a key revoked
    already; (``KeyChangeError``) a ``last_seq`` below events of the child held here,
    which a revocation cannot take back."""
    with keyfile.hold(config.data_dir, exclusive=True):
        ctx = await open_node(config, clock)
        try:
            cert = keys.check_revocable(ctx.trust, parent=ctx.me, node=child)
            held = await ctx.store.max_seq_of(child)
            last = held if last_seq is None else last_seq
            if held and last < held:
                raise KeyChangeError(
                    f"{child}'s events up to seq {held} are held here already (and sent up the "
                    f"tree): a revocation cannot take them back. Revoke after seq {held} or later"
                )
            record = keys.revoke(
                ctx.trust, ctx.key, node=child, key_id=cert.key_id, last_seq=last,
                now=ctx.clock.now_ms(), reason=reason,
            )
            await ctx.store.store_trust_records([record], SELF)
            below = tuple(sorted(ctx.trust.subjects_signed_by(cert.key_id)))
        finally:
            await ctx.close()
    logger.info("revoked key %s of %s after seq %d", cert.key_id.hex(), child, last)
    return Revoked(child=cert, last_seq=last, from_seq=held + 1, signed_below=below)


async def next_from_seq(ctx: NodeContext, child: str) -> int:
    """The ``from_seq`` of an enrollment code for ``child``: 0 for a new node; for one
    that holds a certificate already (its key was lost or revoked), the sequence
    number after its last event held here, so its next key continues its history."""
    if not ctx.trust.has_node(child):
        return 0
    return await ctx.store.max_seq_of(child) + 1
