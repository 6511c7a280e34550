"""Key rotation and revocation as state transitions on a :class:`TrustStore`.

Rotation (planned: a key ages out, an operator changes machines):

1. The child generates a new key and sends :func:`make_rotation_request`:
   the same body (node, new public key, ``from_seq``, time, nonce) signed once
   by its *current* key (authority) and once by the *new* key (possession).
2. The parent runs :func:`accept_rotation` (or :func:`certify_rotation`), which
   signs certificate version N+1 for the new key. The old key stays verify-only
   for ``seq < from_seq``. The same request sent again (the child lost the
   answer) is answered with the chain again, not refused: the child cannot
   sign with its old key any more, nor use the new one until it has the answer.

Revocation (unplanned: a key is lost or stolen): the parent runs
:func:`revoke`, a signed record of version N+1 naming the key and
``last_seq``, the last of the node's events it vouches for. The record travels
the whole tree; everywhere, events by that key with ``seq > last_seq`` are
refused and earlier ones still verify. The node then re-enrolls with a code
carrying ``from_seq = last_seq + 1`` (:mod:`hierarchy.enrollment`), since a
revoked key cannot authorise its own rotation.

Certificates cannot be ordered by sequence like events, so when a node's key
is revoked, every certificate that key signed stops verifying. The node, with
its new key, runs :func:`reissue_signed_by` to give its children the same keys
in new versions. :func:`reissue` is also how a certificate is renewed before
it expires, and :func:`rename` how a node's name changes (a name is what the
certificate says).

Every function checks first, signs, adds the record to the store (which
enforces versions) and returns the raw record to send on; on refusal nothing
changes and a :class:`HierarchyError` says why.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from hierarchy import errors
from hierarchy.enrollment import DEFAULT_VALIDITY_MS, MAX_CLOCK_SKEW_MS, NONCE_BYTES, RandomBytes
from hierarchy.errors import HierarchyError
from protocol import codec, envelope
from protocol.certs import Certificate, TrustStore, issue_revocation, sign_certificate
from protocol.errors import ProtocolError
from protocol.keys import SigningKey, VerifyKey, key_id_of

ROTATE_TYPE = "duban.rotate"
_FIELDS = frozenset({"node", "public_key", "from_seq", "time", "nonce"})
_LIMITS = codec.Limits(
    max_size=4096, max_str=256, max_bin=2048, max_array=1, max_map=8, max_depth=1
)


def _protocol(exc: ProtocolError) -> HierarchyError:
    return HierarchyError(exc.reason, exc.detail)


@dataclass(frozen=True, slots=True, kw_only=True)
class RotationRequest:
    node: str
    public_key: bytes
    from_seq: int
    time: int
    nonce: bytes
    old_key_id: bytes


def make_rotation_request(
    old_key: SigningKey,
    new_key: SigningKey,
    *,
    node: str,
    from_seq: int,
    now: int,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> bytes:
    """Step 1, on the child: ``from_seq`` is the first sequence number the new key signs."""
    body = codec.encode(
        {
            "node": node,
            "public_key": new_key.public_key,
            "from_seq": from_seq,
            "time": now,
            "nonce": random_bytes(NONCE_BYTES),
        }
    )
    old = envelope.sign(old_key, ROTATE_TYPE, body)
    new = envelope.sign(new_key, ROTATE_TYPE, body)
    return codec.encode({"old": old.raw, "new": new.raw})


def _read_request(raw: bytes, now: int) -> tuple[RotationRequest, envelope.Envelope]:
    """What the request says, with the new key's signature checked; the old key's
    envelope is returned for the caller to check against the trust store."""
    try:
        outer = codec.decode(raw, _LIMITS)
        if type(outer) is not dict or set(outer) != {"old", "new"}:
            raise HierarchyError(errors.BAD_ROTATION, "needs old and new envelopes")
        old_raw, new_raw = outer["old"], outer["new"]
        if type(old_raw) is not bytes or type(new_raw) is not bytes:
            raise HierarchyError(errors.BAD_ROTATION, "envelopes are bytes")
        old, new = envelope.parse(old_raw), envelope.parse(new_raw)
        if old.type != ROTATE_TYPE or new.type != ROTATE_TYPE or old.body != new.body:
            raise HierarchyError(errors.BAD_ROTATION, "envelopes must sign one rotation body")
        value = codec.decode(old.body, _LIMITS)
    except ProtocolError as exc:
        raise HierarchyError(errors.BAD_ROTATION, exc.reason) from None
    if type(value) is not dict or set(value) != _FIELDS:
        raise HierarchyError(errors.BAD_ROTATION, "rotation body fields")
    node, public_key, from_seq = value["node"], value["public_key"], value["from_seq"]
    time, nonce = value["time"], value["nonce"]
    if not (
        type(node) is str
        and type(public_key) is bytes
        and len(public_key) == 32
        and type(from_seq) is int
        and from_seq >= 0
        and type(time) is int
        and type(nonce) is bytes
    ):
        raise HierarchyError(errors.BAD_ROTATION, "rotation body types")
    if abs(now - time) > MAX_CLOCK_SKEW_MS:
        raise HierarchyError(errors.REQUEST_STALE, f"request time {time}, now {now}")
    if new.key_id != key_id_of(public_key):
        raise HierarchyError(errors.BAD_PROOF, "the new key did not sign")
    try:
        new.verify(VerifyKey(public_key))
    except ProtocolError:
        raise HierarchyError(errors.BAD_PROOF, "new key signature") from None
    request = RotationRequest(
        node=node,
        public_key=public_key,
        from_seq=from_seq,
        time=time,
        nonce=nonce,
        old_key_id=old.key_id,
    )
    return request, old


def parse_rotation_request(raw: bytes, now: int) -> RotationRequest:
    """What a request asks for, with the new key's proof of possession and the time
    checked; the old key is not checked yet (:func:`read_rotation_request` does)."""
    return _read_request(raw, now)[0]


def read_rotation_request(raw: bytes, trust: TrustStore, now: int) -> RotationRequest:
    """Check both signatures: the old key is the node's usable current key, and
    the new key signed the very same body."""
    request, old = _read_request(raw, now)
    try:
        current = trust.current(request.node)
        if old.key_id != current.key_id:
            raise HierarchyError(errors.NOT_CURRENT_KEY, f"not {request.node}'s current key")
        trust.check_key(old.key_id, now)
        old.verify(trust.key_for(old.key_id))
    except ProtocolError as exc:
        raise _protocol(exc) from None
    return request


def _accepted_before(trust: TrustStore, raw: bytes, now: int) -> RotationRequest | None:
    """The request, if it asks for what is certified already: the node's current key
    is its new key from its ``from_seq``, and the old key, one of the node's, signed
    it too. Such a request is answered again, not refused: the child lost the first
    answer (a crash, a cut connection) and retries with the same keys."""
    request, old = _read_request(raw, now)
    try:
        current = trust.current(request.node)
        if current.key_id != key_id_of(request.public_key):
            return None
        if current.from_seq != request.from_seq:
            raise HierarchyError(
                errors.NOT_CURRENT_KEY,
                f"{request.node}'s new key is certified from seq {current.from_seq}, "
                f"not {request.from_seq}",
            )
        former = trust.certificate_for_key(old.key_id)
        if former.node != request.node or old.key_id == current.key_id:
            raise HierarchyError(errors.NOT_CURRENT_KEY, f"not a former key of {request.node}")
        old.verify(trust.key_for(old.key_id))
    except ProtocolError as exc:
        raise _protocol(exc) from None
    return request


def _issuer_for(trust: TrustStore, issuer: SigningKey, node: str, now: int) -> Certificate:
    """The node's newest certificate, once ``issuer`` is shown to be its parent's usable key."""
    current = trust.current(node)
    issuing = trust.check_key(issuer.key_id, now)
    if current.parent is None:
        if issuing.node != node:
            raise HierarchyError(errors.WRONG_PARENT, "only the root signs the root")
    elif issuing.node != current.parent:
        raise HierarchyError(errors.WRONG_PARENT, f"{issuing.node} is not {node}'s parent")
    return current


def _certify(
    trust: TrustStore,
    issuer: SigningKey,
    node: str,
    now: int,
    *,
    public_key: bytes | None,
    from_seq: int | None,
    not_after: int | None,
    name: str | None = None,
) -> bytes:
    try:
        current = _issuer_for(trust, issuer, node, now)
        cert = Certificate.for_key(
            node=node,
            name=current.name if name is None else name,
            level=current.level,
            parent=current.parent,
            public_key=current.public_key if public_key is None else public_key,
            version=trust.version_of(node) + 1,
            not_before=now,
            not_after=now + DEFAULT_VALIDITY_MS if not_after is None else not_after,
            from_seq=current.from_seq if from_seq is None else from_seq,
        )
        raw = sign_certificate(issuer, cert).raw
        trust.add_certificate(raw, now)
    except ProtocolError as exc:
        raise _protocol(exc) from None
    return raw


def rotate(
    trust: TrustStore,
    issuer: SigningKey,
    *,
    node: str,
    public_key: bytes,
    from_seq: int,
    now: int,
    not_after: int | None = None,
) -> bytes:
    """Certify ``public_key`` as ``node``'s key from ``from_seq`` on (version N+1)."""
    return _certify(
        trust, issuer, node, now, public_key=public_key, from_seq=from_seq, not_after=not_after
    )


def certify_rotation(
    raw_request: bytes,
    *,
    trust: TrustStore,
    issuer: SigningKey,
    now: int,
    not_after: int | None = None,
) -> tuple[bytes | None, list[bytes]]:
    """Step 2, on the parent: check the request and certify the new key.

    Returns the new certificate (None when this very rotation was certified
    before: a retry is answered, not refused) and the node's chain."""
    again = _accepted_before(trust, raw_request, now)
    if again is not None:
        return None, trust.chain(again.node)
    request = read_rotation_request(raw_request, trust, now)
    raw = rotate(
        trust,
        issuer,
        node=request.node,
        public_key=request.public_key,
        from_seq=request.from_seq,
        now=now,
        not_after=not_after,
    )
    return raw, trust.chain(request.node)


def accept_rotation(
    raw_request: bytes,
    *,
    trust: TrustStore,
    issuer: SigningKey,
    now: int,
    not_after: int | None = None,
) -> list[bytes]:
    """Step 2, on the parent: check the request, certify the new key, return the chain."""
    return certify_rotation(
        raw_request, trust=trust, issuer=issuer, now=now, not_after=not_after
    )[1]


def reissue(
    trust: TrustStore, issuer: SigningKey, *, node: str, now: int, not_after: int | None = None
) -> bytes:
    """Same key, same ``from_seq``, next version, signed by ``issuer`` now: renewal,
    or re-certifying a child after the parent's own key changed."""
    return _certify(trust, issuer, node, now, public_key=None, from_seq=None, not_after=not_after)


def reissue_signed_by(
    trust: TrustStore, issuer: SigningKey, *, old_key_id: bytes, now: int
) -> list[bytes]:
    """Re-certify, with ``issuer``, every child whose newest certificate ``old_key_id``
    signed (keeping each one's expiry). Run after revoking or rotating a key."""
    try:
        children = [(c, trust.current(c).not_after) for c in trust.subjects_signed_by(old_key_id)]
    except ProtocolError as exc:
        raise _protocol(exc) from None
    return [reissue(trust, issuer, node=c, now=now, not_after=end) for c, end in children]


def rename(trust: TrustStore, issuer: SigningKey, *, node: str, name: str, now: int) -> bytes:
    """Certify ``node`` again under ``name``: same key, same ``from_seq``, same expiry,
    next version. A node's name is what its certificate says, signed by its parent
    (the root names itself), so a new name is a new certificate that travels the
    tree like any other."""
    try:
        not_after = trust.current(node).not_after
    except ProtocolError as exc:
        raise _protocol(exc) from None
    return _certify(
        trust, issuer, node, now, public_key=None, from_seq=None, not_after=not_after, name=name
    )


def check_revocable(trust: TrustStore, *, parent: str, node: str) -> Certificate:
    """``node``'s newest certificate, once shown to be a direct child of ``parent``
    whose current key is not revoked yet; refused with ``unknown_node``,
    ``wrong_child`` or ``already_revoked``, so an operator learns which."""
    if not trust.has_node(node):
        raise HierarchyError(errors.UNKNOWN_NODE, f"no certificate of {node} is known here")
    current = trust.current(node)
    if node == parent:
        raise HierarchyError(
            errors.WRONG_CHILD, f"{node} is this node: its parent revokes its key, not itself"
        )
    if current.parent is None:
        raise HierarchyError(
            errors.WRONG_CHILD, f"{node} is the root: its key is not revoked in band"
        )
    if current.parent != parent:
        raise HierarchyError(
            errors.WRONG_CHILD,
            f"{node} is a child of {current.parent}, not of {parent}: "
            "only its parent revokes its key",
        )
    if any(r.key_id == current.key_id for r in trust.revocations(node)):
        raise HierarchyError(
            errors.ALREADY_REVOKED, f"{node}'s key {current.key_id.hex()[:16]} is revoked already"
        )
    return current


def revoke(
    trust: TrustStore,
    issuer: SigningKey,
    *,
    node: str,
    key_id: bytes,
    last_seq: int,
    now: int,
    effective_at: int | None = None,
    reason: str = "",
) -> bytes:
    """Revoke ``node``'s key ``key_id`` after ``last_seq`` (version N+1, signed by the parent)."""
    try:
        _issuer_for(trust, issuer, node, now)
        raw = issue_revocation(
            issuer,
            node=node,
            key_id=key_id,
            version=trust.version_of(node) + 1,
            effective_at=now if effective_at is None else effective_at,
            last_seq=last_seq,
            reason=reason,
        ).raw
        trust.add_revocation(raw, now)
    except ProtocolError as exc:
        raise _protocol(exc) from None
    return raw
