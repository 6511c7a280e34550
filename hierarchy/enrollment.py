"""Enrollment: how a new child node gets its certificate from its parent.

Pure state transitions; the HTTP side carries the bytes. Message by message:

1. Parent, out of band: :meth:`Enrollment.issue_code` for a named child (node
   id, name, level). The one-time code is random (160 bits, read aloud or
   pasted as ``XXXX-XXXX-...``), expires, and only its SHA-256 is kept, so a
   leaked database does not leak usable codes.
2. Child: generates its key locally (it never leaves the machine) and sends
   :func:`make_join_request`: a ``duban.join`` envelope signed *with the new
   key* over parent id, node id, public key, code, nonce and time. The
   signature is the proof of possession, and binding the code inside the
   signed body means a stolen request cannot be replayed for another key.
3. Parent: :meth:`Enrollment.accept_join` checks the proof, the code (unknown,
   used, expired, issued for another child) and the clock, signs the child's
   certificate, adds it to its trust store, marks the code used and answers
   with a :class:`JoinResponse`: the certificate and the chain to the root.
4. Child: :func:`complete_join` verifies the chain up to the root fingerprint it
   pinned at install and that the certificate is for its own node and key.

A node already enrolled can be enrolled again (its key was lost): the code
then carries ``from_seq``, the first sequence number the new key signs; the
parent should also revoke the lost key (:func:`hierarchy.keys.revoke`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from hierarchy import errors
from hierarchy.errors import HierarchyError
from hierarchy.tree import Node
from protocol import codec, envelope
from protocol.certs import TrustStore, issue_certificate, parse_certificate
from protocol.errors import ProtocolError
from protocol.keys import SigningKey, VerifyKey, key_id_of

JOIN_TYPE = "duban.join"
CODE_BYTES = 20
NONCE_BYTES = 16
DEFAULT_CODE_TTL_MS = 72 * 3600 * 1000
DEFAULT_VALIDITY_MS = 3 * 365 * 24 * 3600 * 1000
MAX_CLOCK_SKEW_MS = 10 * 60 * 1000
_CODE_DOMAIN = b"duban/enroll-code/v1\x00"
_JOIN_FIELDS = frozenset({"parent", "node", "public_key", "code", "nonce", "time"})
_LIMITS = codec.Limits(max_size=4096, max_str=256, max_bin=64, max_array=1, max_map=8, max_depth=1)

RandomBytes = Callable[[int], bytes]


def normalize_code(code: str) -> str:
    """What people type: dashes, spaces and case do not matter."""
    return "".join(code.split()).replace("-", "").upper()


def code_hash(code: str) -> bytes:
    return hashlib.sha256(_CODE_DOMAIN + normalize_code(code).encode("utf-8")).digest()


def _new_code(random_bytes: RandomBytes) -> str:
    raw = random_bytes(CODE_BYTES)
    if type(raw) is not bytes or len(raw) != CODE_BYTES:
        raise ValueError(f"random source must give {CODE_BYTES} bytes")
    text = base64.b32encode(raw).decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def _protocol(exc: ProtocolError) -> HierarchyError:
    return HierarchyError(exc.reason, exc.detail)


@dataclass(frozen=True, slots=True, kw_only=True)
class Invitation:
    """What the parent keeps for one code: its hash and the child it is for."""

    code_hash: bytes
    node: str
    name: str
    level: str
    issued_at: int
    expires_at: int
    from_seq: int = 0
    used_at: int | None = None
    used_by: bytes | None = None  # key id of the key that joined

    def __post_init__(self) -> None:
        if type(self.code_hash) is not bytes or len(self.code_hash) != 32:
            raise HierarchyError(errors.BAD_STATE, "code hash must be 32 bytes")
        Node(id=self.node, name=self.name, level=self.level)
        for value in (self.issued_at, self.expires_at, self.from_seq):
            if type(value) is not int or value < 0:
                raise HierarchyError(errors.BAD_STATE, "times and from_seq are integers >= 0")
        if self.expires_at <= self.issued_at:
            raise HierarchyError(errors.BAD_STATE, "a code expires after it is issued")
        if self.used_by is not None and (
            type(self.used_by) is not bytes or len(self.used_by) != 16
        ):
            raise HierarchyError(errors.BAD_STATE, "used_by is a 16-byte key id")
        if (self.used_at is None) != (self.used_by is None):
            raise HierarchyError(errors.BAD_STATE, "used_at and used_by go together")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["code_hash"] = self.code_hash.hex()
        out["used_by"] = self.used_by.hex() if self.used_by is not None else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Invitation:
        try:
            fields = dict(data)
            fields["code_hash"] = bytes.fromhex(fields["code_hash"])
            used_by = fields.get("used_by")
            fields["used_by"] = bytes.fromhex(used_by) if used_by is not None else None
            return cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise HierarchyError(errors.BAD_STATE, f"invitation: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinRequest:
    """The child's signed request (the envelope signer's key is ``public_key``)."""

    parent: str
    node: str
    public_key: bytes
    code: str
    nonce: bytes
    time: int

    def to_value(self) -> dict[str, codec.Value]:
        return {
            "parent": self.parent,
            "node": self.node,
            "public_key": self.public_key,
            "code": self.code,
            "nonce": self.nonce,
            "time": self.time,
        }


def make_join_request(
    key: SigningKey,
    *,
    parent: str,
    node: str,
    code: str,
    now: int,
    random_bytes: RandomBytes = secrets.token_bytes,
) -> bytes:
    """Step 2, on the child: the join request, signed with the child's new key."""
    request = JoinRequest(
        parent=parent,
        node=node,
        public_key=key.public_key,
        code=normalize_code(code),
        nonce=random_bytes(NONCE_BYTES),
        time=now,
    )
    return envelope.sign(key, JOIN_TYPE, codec.encode(request.to_value())).raw


def read_join_request(raw: bytes) -> JoinRequest:
    """Parse a join request and check its proof of possession (``bad_proof``)."""
    try:
        env = envelope.parse(raw)
        value = codec.decode(env.body, _LIMITS)
    except ProtocolError as exc:
        raise HierarchyError(errors.BAD_REQUEST, exc.reason) from None
    if env.type != JOIN_TYPE or env.proof is not None or type(value) is not dict:
        raise HierarchyError(errors.BAD_REQUEST, "not a join request")
    if set(value) != _JOIN_FIELDS:
        raise HierarchyError(errors.BAD_REQUEST, f"fields {sorted(value)}")
    parent, node, public_key = value["parent"], value["node"], value["public_key"]
    code, nonce, time = value["code"], value["nonce"], value["time"]
    if not (
        type(parent) is str
        and type(node) is str
        and type(code) is str
        and type(public_key) is bytes
        and len(public_key) == 32
        and type(nonce) is bytes
        and len(nonce) == NONCE_BYTES
        and type(time) is int
    ):
        raise HierarchyError(errors.BAD_REQUEST, "field types")
    if env.key_id != key_id_of(public_key):
        raise HierarchyError(errors.BAD_PROOF, "not signed by the key it presents")
    try:
        env.verify(VerifyKey(public_key))
    except ProtocolError:
        raise HierarchyError(errors.BAD_PROOF, "signature does not verify") from None
    return JoinRequest(
        parent=parent, node=node, public_key=public_key, code=code, nonce=nonce, time=time
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinResponse:
    """Step 3's answer: the child's certificate and every record up to the root."""

    certificate: bytes
    chain: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        return codec.encode({"certificate": self.certificate, "chain": list(self.chain)})

    @classmethod
    def from_bytes(cls, raw: bytes) -> JoinResponse:
        try:
            value = codec.decode(raw)
        except ProtocolError as exc:
            raise HierarchyError(errors.BAD_RESPONSE, exc.reason) from None
        if type(value) is not dict or set(value) != {"certificate", "chain"}:
            raise HierarchyError(errors.BAD_RESPONSE, "not a join response")
        cert, chain = value["certificate"], value["chain"]
        if type(cert) is not bytes or type(chain) is not list:
            raise HierarchyError(errors.BAD_RESPONSE, "field types")
        if not all(type(r) is bytes for r in chain):
            raise HierarchyError(errors.BAD_RESPONSE, "chain entries must be bytes")
        return cls(certificate=cert, chain=tuple(r for r in chain if type(r) is bytes))


class Enrollment:
    """The parent's book of enrollment codes. Export it to persist it."""

    __slots__ = ("_by_hash", "parent")

    def __init__(self, parent: str, invitations: Iterable[Invitation] = ()) -> None:
        self.parent = parent
        self._by_hash: dict[bytes, Invitation] = {i.code_hash: i for i in invitations}

    def issue_code(
        self,
        *,
        node: str,
        name: str,
        level: str,
        now: int,
        ttl_ms: int = DEFAULT_CODE_TTL_MS,
        from_seq: int = 0,
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> str:
        """Step 1: a new one-time code for child ``node``. Returns the code itself,
        which is shown once and never stored; an unused earlier code for the same
        child stops working."""
        if node == self.parent:
            raise HierarchyError(errors.WRONG_CHILD, "a node does not enroll itself")
        code = _new_code(random_bytes)
        invitation = Invitation(
            code_hash=code_hash(code),
            node=node,
            name=name,
            level=level,
            issued_at=now,
            expires_at=now + ttl_ms,
            from_seq=from_seq,
        )
        self._by_hash = {
            h: i for h, i in self._by_hash.items() if i.node != node or i.used_at is not None
        }
        self._by_hash[invitation.code_hash] = invitation
        return code

    def invitations(self) -> list[Invitation]:
        return list(self._by_hash.values())

    def pending(self, now: int) -> list[Invitation]:
        return [i for i in self._by_hash.values() if i.used_at is None and now < i.expires_at]

    def forget_expired(self, now: int) -> int:
        """Drop unused expired codes (used ones stay, for the audit trail)."""
        before = len(self._by_hash)
        self._by_hash = {
            h: i for h, i in self._by_hash.items() if i.used_at is not None or now < i.expires_at
        }
        return before - len(self._by_hash)

    def check_join(self, raw_request: bytes, *, now: int) -> tuple[JoinRequest, Invitation]:
        """Step 3's checks of the request and its code, changing nothing: the node runs
        them before it takes its write lock, so a request that cannot enroll anything
        (anyone may send one) never waits for or holds it; :meth:`accept_join` runs
        them again under the lock."""
        request = read_join_request(raw_request)
        if request.parent != self.parent:
            raise HierarchyError(errors.WRONG_PARENT, f"for {request.parent}, not {self.parent}")
        invitation = self._by_hash.get(code_hash(request.code))
        if invitation is None:
            raise HierarchyError(errors.CODE_UNKNOWN, "no such code")
        if invitation.used_at is not None:
            raise HierarchyError(errors.CODE_USED, f"used at {invitation.used_at}")
        if now >= invitation.expires_at:
            raise HierarchyError(errors.CODE_EXPIRED, f"expired at {invitation.expires_at}")
        if request.node != invitation.node:
            raise HierarchyError(errors.WRONG_CHILD, f"code is for {invitation.node}")
        if abs(now - request.time) > MAX_CLOCK_SKEW_MS:
            raise HierarchyError(errors.REQUEST_STALE, f"request time {request.time}, now {now}")
        return request, invitation

    def accept_join(
        self,
        raw_request: bytes,
        *,
        now: int,
        parent_key: SigningKey,
        trust: TrustStore,
        validity_ms: int = DEFAULT_VALIDITY_MS,
    ) -> JoinResponse:
        """Step 3: check the request and the code, certify the child, consume the code.

        Nothing changes when it refuses. ``trust`` gains the child's certificate.
        """
        request, invitation = self.check_join(raw_request, now=now)
        try:
            trust.check_key(parent_key.key_id, now)
            raw_cert = issue_certificate(
                parent_key,
                node=invitation.node,
                name=invitation.name,
                level=invitation.level,
                parent=self.parent,
                public_key=request.public_key,
                version=trust.version_of(invitation.node) + 1,
                not_before=now,
                not_after=now + validity_ms,
                from_seq=invitation.from_seq,
            ).raw
            trust.add_certificate(raw_cert, now)
            chain = tuple(trust.chain(invitation.node))
        except ProtocolError as exc:
            raise _protocol(exc) from None
        self._by_hash[invitation.code_hash] = replace(
            invitation, used_at=now, used_by=key_id_of(request.public_key)
        )
        return JoinResponse(certificate=raw_cert, chain=chain)

    def export(self) -> dict[str, Any]:
        """JSON-able state (hashes only; codes are never stored)."""
        return {"parent": self.parent, "invitations": [i.to_dict() for i in self._by_hash.values()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Enrollment:
        try:
            parent, items = data["parent"], data["invitations"]
        except (KeyError, TypeError):
            raise HierarchyError(errors.BAD_STATE, "needs parent and invitations") from None
        if type(parent) is not str or not isinstance(items, list):
            raise HierarchyError(errors.BAD_STATE, "parent is a string, invitations a list")
        return cls(parent, (Invitation.from_dict(i) for i in items))


def complete_join(
    response: JoinResponse | bytes,
    *,
    key: SigningKey,
    node: str,
    root_fingerprint: str,
    now: int,
) -> TrustStore:
    """Step 4, on the child: verify the answer up to the pinned root.

    Returns the child's first trust store, holding its chain.
    """
    if isinstance(response, bytes):
        response = JoinResponse.from_bytes(response)
    store = TrustStore(root_fingerprint)
    try:
        for raw in response.chain:
            store.add(raw, now)
        if response.certificate not in response.chain:
            store.add(response.certificate, now)
        cert = store.current(node)
        if parse_certificate(response.certificate).certificate != cert:
            raise HierarchyError(errors.BAD_RESPONSE, "not the node's newest certificate")
        if cert.key_id != key.key_id:
            raise HierarchyError(errors.BAD_RESPONSE, "the certificate is not for our key")
        store.check_key(key.key_id, now)
    except ProtocolError as exc:
        raise _protocol(exc) from None
    return store
