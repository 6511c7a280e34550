"""Signed sync requests: a child proves who it is on every request it opens.

The child sends ``Duban-Auth: <base64url envelope>``; the envelope (type
``sync.auth``) is signed with the child's node key over a body naming the
sender, the receiving parent, the method, the path with its query, the SHA-256
of the request body, the time and a random nonce. The parent checks the
signature against the sender's certificate, that the sender is its own child,
that the time is within the allowed skew and that the nonce is fresh (a replay
inside the window is refused; outside it the time check refuses).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from node.errors import Unauthenticated
from protocol import codec, envelope
from protocol.errors import ProtocolError, printable
from protocol.keys import SigningKey, VerifyKey

KeyForNode = Callable[[str, bytes], VerifyKey]
"""(node id, key id) -> that node's verify key; raises ProtocolError when unknown or revoked."""

AUTH_TYPE = "sync.auth"
NONCE_LEN = 16
HEADER = "Duban-Auth"
AUTH_LIMITS = codec.Limits(max_size=2048, max_str=512, max_bin=64, max_map=12, max_depth=2)


class AuthError(Unauthenticated):
    """A refused sync request; the detail is made printable (it may quote the peer).
    The sync endpoints answer each reason with its own status (node/http/sync.py)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, printable(detail))


@dataclass(frozen=True, slots=True)
class AuthClaim:
    node: str
    parent: str
    method: str
    target: str
    body_sha256: bytes
    at: int
    nonce: bytes


def make_header(
    key: SigningKey, *, node: str, parent: str, method: str, target: str, body: bytes, now_ms: int
) -> str:
    claim: dict[str, codec.Value] = {
        "node": node,
        "parent": parent,
        "method": method.upper(),
        "target": target,
        "body": hashlib.sha256(body).digest(),
        "at": now_ms,
        "nonce": os.urandom(NONCE_LEN),
    }
    env = envelope.sign(key, AUTH_TYPE, codec.encode(claim))
    return base64.urlsafe_b64encode(env.raw).decode("ascii")


def read_header(value: str) -> tuple[envelope.Envelope, AuthClaim]:
    """Parse the header into its envelope and claim; does not verify."""
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise AuthError("bad_auth", "header is not base64url") from None
    try:
        env = envelope.parse(raw)
        if env.type != AUTH_TYPE:
            raise AuthError("bad_auth", "not a sync.auth envelope")
        body = codec.decode(env.body, AUTH_LIMITS)
    except ProtocolError as exc:
        raise AuthError("bad_auth", exc.reason) from None
    if not isinstance(body, dict) or set(body) != {
        "node",
        "parent",
        "method",
        "target",
        "body",
        "at",
        "nonce",
    }:
        raise AuthError("bad_auth", "wrong fields")
    node, parent, method, target = body["node"], body["parent"], body["method"], body["target"]
    digest, at, nonce = body["body"], body["at"], body["nonce"]
    if not (
        isinstance(node, str)
        and isinstance(parent, str)
        and isinstance(method, str)
        and isinstance(target, str)
        and isinstance(digest, bytes)
        and type(at) is int
        and isinstance(nonce, bytes)
        and len(nonce) == NONCE_LEN
    ):
        raise AuthError("bad_auth", "wrong field types")
    return env, AuthClaim(node, parent, method, target, digest, at, nonce)


class ReplayGuard:
    """Remembers nonces for the skew window, refusing a second use.

    Bounded per sender, ``capacity`` nonces each (the oldest forgotten first): a
    child that floods its parent with fresh requests forgets only its own nonces
    early, never another child's, whose captured requests so stay refused for the
    whole window. Only verified requests reach it (:func:`verify_request`), so only
    a node with a certificate of this node's child has a share."""

    def __init__(self, window_ms: int, capacity: int = 100_000) -> None:
        self._window = window_ms
        self._capacity = capacity
        self._seen: dict[str, OrderedDict[bytes, int]] = {}

    def check(self, nonce: bytes, at: int, now_ms: int, node: str = "") -> None:
        if abs(now_ms - at) > self._window:
            raise AuthError("stale_request", f"request time is {(now_ms - at) // 1000}s off")
        seen = self._seen.get(node)
        if seen is None:
            seen = self._seen[node] = OrderedDict()
        while seen and (
            next(iter(seen.values())) < now_ms - 2 * self._window
            or len(seen) >= self._capacity
        ):
            seen.popitem(last=False)
        if nonce in seen:
            raise AuthError("replayed", "this request was already received")
        seen[nonce] = now_ms


def verify_request(
    header: str | None,
    *,
    me: str,
    method: str,
    target: str,
    body: bytes | None,
    key_for: KeyForNode,
    guard: ReplayGuard,
    now_ms: int,
) -> AuthClaim:
    """Check a sync request; return its verified claim (``claim.node`` is the sender).

    With ``body=None`` the body hash is left to the caller (:func:`check_body`), so
    a large body is read only after the sender has been authenticated."""
    if not header:
        raise AuthError("auth_required", f"missing {HEADER} header")
    env, claim = read_header(header)
    if claim.parent != me:
        raise AuthError("wrong_parent", f"request is for {claim.parent!r}, this is {me!r}")
    if claim.method != method.upper() or claim.target != target:
        raise AuthError("bad_auth", "signed request does not match this request")
    if body is not None:
        check_body(claim, body)
    try:
        key = key_for(claim.node, env.key_id)
        env.verify(key)
    except ProtocolError as exc:
        raise AuthError(exc.reason, exc.detail) from None
    guard.check(claim.nonce, claim.at, now_ms, claim.node)
    return claim


def check_body(claim: AuthClaim, body: bytes) -> None:
    if claim.body_sha256 != hashlib.sha256(body).digest():
        raise AuthError("bad_auth", "body does not match its signed hash")
