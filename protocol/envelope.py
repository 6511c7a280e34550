"""Signed envelopes: the exact bytes every event travels and is stored as.

Wire form (a strict msgpack map)::

    {"v": 1, "t": type, "b": body bytes, "k": signer key id (16 bytes),
     "s": Ed25519 signature (64 bytes), ["m": {"i": index, "n": size, "p": [hash, ...]}]}

The signature covers a pre-authentication encoding (PAE) of the type and the
body bytes, so no two (type, body) pairs share a signed message::

    PAE(pieces) = LE64(len(pieces)) || for each piece: LE64(len(piece)) || piece
    single:  message = PAE([b"duban/event/v1", type, body])

A node may sign many of its own events at once: each event's leaf hash is
``SHA-256(0x00 || PAE(event))``, the leaves form an RFC 9162 Merkle tree, one
signature covers ``PAE([b"duban/batch/v1", root, LE64(size)])`` and each
envelope carries its inclusion path ("m"). Each envelope still verifies alone,
so it can be forwarded to another subtree without its batch.

The body is verified before it is decoded, and verification never re-encodes:
it works on the bytes received. The event id is SHA-256 over the whole
envelope bytes: the same event has the same id everywhere, forever.

Because the signature covers only (type, body) or a batch root, any other msgpack
encoding of the same outer map (keys in another order, a wider integer, string,
bin, array or map header) would verify as well and hash to another id. So
:func:`parse` accepts only the canonical encoding — what :func:`sign` and
:func:`sign_batch` write: keys sorted, every header in its shortest form — and
refuses every other with ``non_canonical``. An event's id then depends on its
signer's content alone, never on a relay's encoding (docs/sync.md, "Event
identity"). The compiled fast path takes canonical bytes only; the strict path
re-encodes what it decoded and compares.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Any, Final, Literal

from msgspec import Meta

from protocol import codec, errors, fastpath
from protocol.errors import ProtocolError
from protocol.keys import KEY_ID_LEN, SIGNATURE_LEN, SigningKey, VerifyKey

VERSION = 1
EVENT_DOMAIN = b"duban/event/v1"
BATCH_DOMAIN = b"duban/batch/v1"
MAX_TYPE_LEN = 64
MAX_BATCH = 1 << 16
_TYPE_RE = re.compile(r"[a-z][a-z0-9_.-]*\Z")

ENVELOPE_LIMITS = codec.Limits(
    max_size=1024 * 1024 + 4096,
    max_str=MAX_TYPE_LEN,
    max_bin=1024 * 1024,
    max_array=32,
    max_map=8,
    max_depth=3,
)


_LE64 = struct.Struct("<Q").pack
_sha256 = hashlib.sha256


def pae(pieces: Sequence[bytes]) -> bytes:
    """Pre-authentication encoding: length-prefixed, so concatenation is unambiguous."""
    out = [_LE64(len(pieces))]
    for piece in pieces:
        out.append(_LE64(len(piece)))
        out.append(piece)
    return b"".join(out)


# The constant start of the PAE of three pieces beginning with a domain: event_message,
# leaf_hash and batch_message run for every event received, so they are written out.
_EVENT_HEAD = _LE64(3) + _LE64(len(EVENT_DOMAIN)) + EVENT_DOMAIN
_LEAF_HEAD = b"\x00" + _EVENT_HEAD
_BATCH_HEAD = _LE64(3) + _LE64(len(BATCH_DOMAIN)) + BATCH_DOMAIN
_SIZE_LEN = _LE64(8)


def event_message(type_: str, body: bytes) -> bytes:
    """``pae([EVENT_DOMAIN, type, body])``: what a single event's signature covers."""
    t = type_.encode("ascii")
    return b"".join((_EVENT_HEAD, _LE64(len(t)), t, _LE64(len(body)), body))


def leaf_hash(type_: str, body: bytes) -> bytes:
    """``SHA-256(0x00 || event_message(type, body))``: the event's leaf in its batch."""
    t = type_.encode("ascii")
    return _sha256(b"".join((_LEAF_HEAD, _LE64(len(t)), t, _LE64(len(body)), body))).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


NodeMemo = dict[bytes, bytes]
"""Inner node hashes of Merkle trees, by their two children's hashes joined."""


def node_memo() -> NodeMemo:
    """A memo for :meth:`MerkleProof.root`, to share between the proofs of a batch.

    Every proof of a signed batch climbs the same tree: without it, an inner node
    is hashed once per event below it (ten times per event for a batch of 1000),
    with it once. Memory is a few times the paths' own size, for as long as the
    caller keeps it.
    """
    return {}


def batch_message(root: bytes, size: int) -> bytes:
    """``pae([BATCH_DOMAIN, root, LE64(size)])``: what a batch's signature covers."""
    return b"".join((_BATCH_HEAD, _LE64(len(root)), root, _SIZE_LEN, _LE64(size)))


@dataclass(frozen=True, slots=True, kw_only=True)
class MerkleProof:
    """Where one event sits in a signed batch: index, batch size and audit path."""

    index: int
    size: int
    path: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not (type(self.size) is int and 2 <= self.size <= MAX_BATCH):
            raise ProtocolError(errors.BAD_MERKLE_PROOF, "batch size out of range")
        if not (type(self.index) is int and 0 <= self.index < self.size):
            raise ProtocolError(errors.BAD_MERKLE_PROOF, "index out of range")
        if len(self.path) > 17:
            raise ProtocolError(errors.BAD_MERKLE_PROOF, "bad audit path")
        for h in self.path:
            if type(h) is not bytes or len(h) != 32:
                raise ProtocolError(errors.BAD_MERKLE_PROOF, "bad audit path")

    def root(self, leaf: bytes, known: NodeMemo | None = None) -> bytes:
        """The root this path proves for ``leaf`` (RFC 9162, section 2.1.3.2).

        ``known`` may be a memo shared by the proofs of a batch (:func:`node_memo`).
        """
        fn, sn, r = self.index, self.size - 1, leaf
        for p in self.path:
            if sn == 0:
                raise ProtocolError(errors.BAD_MERKLE_PROOF, "path too long")
            if fn & 1 or fn == sn:
                children = p + r
                if not fn & 1:
                    while fn and not fn & 1:
                        fn >>= 1
                        sn >>= 1
            else:
                children = r + p
            digest = None if known is None else known.get(children)
            if digest is None:
                digest = _sha256(b"\x01" + children).digest()
                if known is not None:
                    known[children] = digest
            r = digest
            fn >>= 1
            sn >>= 1
        if sn != 0:
            raise ProtocolError(errors.BAD_MERKLE_PROOF, "path too short")
        return r


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """One signed event. ``raw`` is the exact wire bytes; build with sign/parse."""

    type: str
    body: bytes
    key_id: bytes
    signature: bytes
    proof: MerkleProof | None
    raw: bytes

    def __post_init__(self) -> None:
        _check_type(self.type)
        if type(self.body) is not bytes:
            raise ProtocolError(errors.BAD_ENVELOPE, "body must be bytes")
        if type(self.key_id) is not bytes or len(self.key_id) != KEY_ID_LEN:
            raise ProtocolError(errors.BAD_ENVELOPE, "key id must be 16 bytes")
        if type(self.signature) is not bytes or len(self.signature) != SIGNATURE_LEN:
            raise ProtocolError(errors.BAD_ENVELOPE, "signature must be 64 bytes")

    @property
    def event_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    def signed_message(self, known: NodeMemo | None = None) -> bytes:
        """The bytes the signature covers (the batch root message when batched);
        ``known``: see :meth:`MerkleProof.root`."""
        if self.proof is None:
            return event_message(self.type, self.body)
        root = self.proof.root(leaf_hash(self.type, self.body), known)
        return batch_message(root, self.proof.size)

    def verify(self, key: VerifyKey, message: bytes | None = None) -> None:
        """Raise unless ``key`` signed this envelope. ``message`` is
        :meth:`signed_message` when the caller has worked it out already."""
        if key.key_id != self.key_id:
            raise ProtocolError(errors.UNKNOWN_KEY, "key id does not match the envelope")
        key.verify(self.signature, self.signed_message() if message is None else message)


def _check_type(type_: object) -> None:
    if type(type_) is not str or not 0 < len(type_) <= MAX_TYPE_LEN or not _TYPE_RE.match(type_):
        raise ProtocolError(errors.BAD_TYPE, errors.shown(type_))


def _wire(
    type_: str, body: bytes, key_id: bytes, signature: bytes, proof: MerkleProof | None
) -> bytes:
    value: dict[str, codec.Value] = {
        "v": VERSION,
        "t": type_,
        "b": body,
        "k": key_id,
        "s": signature,
    }
    if proof is not None:
        value["m"] = {"i": proof.index, "n": proof.size, "p": list(proof.path)}
    return codec.encode(value)


def sign(key: SigningKey, type_: str, body: bytes) -> Envelope:
    """Sign one event on its own."""
    _check_type(type_)
    signature = key.sign(event_message(type_, body))
    raw = _wire(type_, body, key.key_id, signature, None)
    return Envelope(
        type=type_, body=body, key_id=key.key_id, signature=signature, proof=None, raw=raw
    )


def merkle_root_and_paths(leaves: Sequence[bytes]) -> tuple[bytes, list[tuple[bytes, ...]]]:
    """RFC 9162 tree hash of ``leaves`` and every leaf's audit path."""
    n = len(leaves)
    if n == 0:
        raise ValueError("no leaves")
    if n == 1:
        return leaves[0], [()]
    k = 1 << ((n - 1).bit_length() - 1)
    left_root, left_paths = merkle_root_and_paths(leaves[:k])
    right_root, right_paths = merkle_root_and_paths(leaves[k:])
    paths = [(*p, right_root) for p in left_paths] + [(*p, left_root) for p in right_paths]
    return _node_hash(left_root, right_root), paths


def sign_batch(key: SigningKey, events: Sequence[tuple[str, bytes]]) -> list[Envelope]:
    """Sign many events with one signature; each envelope verifies on its own."""
    if len(events) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} events per signed batch")
    if len(events) <= 1:
        return [sign(key, t, b) for t, b in events]
    for type_, _ in events:
        _check_type(type_)
    leaves = [leaf_hash(t, b) for t, b in events]
    root, paths = merkle_root_and_paths(leaves)
    size = len(events)
    signature = key.sign(batch_message(root, size))
    out = []
    for index, ((type_, body), path) in enumerate(zip(events, paths, strict=True)):
        proof = MerkleProof(index=index, size=size, path=path)
        raw = _wire(type_, body, key.key_id, signature, proof)
        out.append(
            Envelope(
                type=type_, body=body, key_id=key.key_id, signature=signature, proof=proof, raw=raw
            )
        )
    return out


_FIELDS = frozenset({"v", "t", "b", "k", "s", "m"})
_REQUIRED = ("t", "b", "k", "s")
_PROOF_FIELDS = frozenset({"i", "n", "p"})


_HASH: Final[Any] = fastpath.sized_bytes(32)
_WIRE_PROOF: Final = fastpath.struct(
    "MerkleProof",
    [
        ("i", int, False),
        ("n", Annotated[int, Meta(ge=2, le=MAX_BATCH)], False),
        ("p", Annotated[tuple[_HASH, ...], Meta(max_length=17)], False),
    ],
)
_MIRROR: Final = fastpath.Mirror(
    fastpath.struct(
        "Envelope",
        [
            ("v", Literal[1], False),
            ("t", Annotated[str, Meta(max_length=MAX_TYPE_LEN, pattern=f"^(?:{_TYPE_RE.pattern})")],
             False),
            ("b", Annotated[bytes, Meta(max_length=ENVELOPE_LIMITS.max_bin)], False),
            ("k", fastpath.sized_bytes(KEY_ID_LEN), False),
            ("s", fastpath.sized_bytes(SIGNATURE_LEN), False),
            ("m", _WIRE_PROOF, True),
        ],
    )
)
unchecked_envelope: Final = fastpath.builder(
    Envelope, ("type", "body", "key_id", "signature", "proof", "raw")
)
"""An Envelope from (type, body, key id, signature, proof, raw) without its checks: only
for values that passed them (the fast path, or this node's decoding worker)."""
unchecked_proof: Final = fastpath.builder(MerkleProof, ("index", "size", "path"))
"""A MerkleProof from (index, size, path) without its checks (see unchecked_envelope)."""
_ENVELOPE_VALUES: Final = attrgetter("t", "b", "k", "s", "m")
_PROOF_VALUES: Final = attrgetter("i", "n", "p")


def _parse_fast(raw: bytes) -> Envelope | None:
    """``parse(raw)`` when the compiled fast path (:mod:`protocol.fastpath`) accepts
    it, else None. What the types above do not check: the proof's index is within
    its batch."""
    if len(raw) > ENVELOPE_LIMITS.max_size:
        return None
    wire = _MIRROR.decode(raw)
    if wire is None:
        return None
    type_, body, key_id, signature, m = _ENVELOPE_VALUES(wire)
    proof = None
    if m is not None:
        index, size, path = _PROOF_VALUES(m)
        if not 0 <= index < size:
            return None
        proof = unchecked_proof((index, size, path))
    return unchecked_envelope((type_, body, key_id, signature, proof, bytes(raw)))  # type: ignore[no-any-return]


def parse(raw: bytes) -> Envelope:
    """Parse envelope bytes strictly. Does not verify (see :func:`verify_all`)."""
    env = _parse_fast(raw) if isinstance(raw, bytes | bytearray | memoryview) else None
    return _parse_strict(raw) if env is None else env


def _parse_strict(raw: bytes) -> Envelope:
    """:func:`parse` with the strict codec: the only path that refuses, and says why."""
    try:
        # _envelope_of checks the type of every value it accepts, so the codec's
        # walk over the decoded tree (depth, no floats) would find nothing more.
        env = _envelope_of(codec.decode(raw, ENVELOPE_LIMITS, check_tree=False), raw)
    except ProtocolError:
        # Refused: decode again with every check, so the reason is the one a full
        # decode gives first (a float or a deep value before a bad field).
        env = _envelope_of(codec.decode(raw, ENVELOPE_LIMITS), raw)
    if _wire(env.type, env.body, env.key_id, env.signature, env.proof) != env.raw:
        raise ProtocolError(
            errors.NON_CANONICAL, "not the canonical encoding of the envelope (another id)"
        )
    return env


ENVELOPE_PATHS: Final = fastpath.Paths(fast=_parse_fast, strict=_parse_strict)
""":func:`parse`'s two paths, named for the tests that hold the fast one to the strict
one (protocol/fastpath.py)."""


def _envelope_of(value: codec.Value, raw: bytes) -> Envelope:
    if type(value) is not dict:
        raise ProtocolError(errors.BAD_ENVELOPE, "not a map")
    version = value.get("v")
    if version != VERSION or type(version) is not int:
        raise ProtocolError(errors.UNKNOWN_VERSION, errors.shown(version, 20))
    if not value.keys() <= _FIELDS:
        extra = set(value) - _FIELDS
        raise ProtocolError(errors.BAD_ENVELOPE, f"unknown fields {sorted(extra)}")
    for name in _REQUIRED:
        if name not in value:
            raise ProtocolError(errors.BAD_ENVELOPE, f"missing {name!r}")
    proof = None
    if "m" in value:
        m = value["m"]
        if type(m) is not dict or m.keys() != _PROOF_FIELDS or type(m["p"]) is not list:
            raise ProtocolError(errors.BAD_MERKLE_PROOF, "bad proof map")
        path = m["p"]
        proof = MerkleProof(index=m["i"], size=m["n"], path=tuple(path))  # type: ignore[arg-type]
    type_, body, key_id, sig = value["t"], value["b"], value["k"], value["s"]
    if type(type_) is not str:
        raise ProtocolError(errors.BAD_TYPE, "type must be a string")
    return Envelope(
        type=type_,
        body=body,  # type: ignore[arg-type]
        key_id=key_id,  # type: ignore[arg-type]
        signature=sig,  # type: ignore[arg-type]
        proof=proof,
        raw=bytes(raw),
    )


KeyLookup = Callable[[bytes], VerifyKey]


def verify_all(
    envelopes: Iterable[Envelope], lookup: KeyLookup
) -> list[ProtocolError | None]:
    """Verify many envelopes, checking each batch signature once.

    ``lookup(key_id)`` returns the key or raises :class:`ProtocolError`
    (``unknown_key``, ``key_revoked``...). The answer lists, per envelope, None
    when it verified or the error that refused it; one bad envelope never
    affects the others.
    """
    known = node_memo()
    return verify_signed(((env, _message(env, known)) for env in envelopes), lookup)


def _message(env: Envelope, known: NodeMemo) -> bytes | ProtocolError:
    try:
        return env.signed_message(known)
    except ProtocolError as exc:
        return exc


def verify_signed(
    signed: Iterable[tuple[Envelope, bytes | ProtocolError]], lookup: KeyLookup
) -> list[ProtocolError | None]:
    """:func:`verify_all` of envelopes whose signed messages were worked out already
    (``Envelope.signed_message``, or the error it raised): by
    ``protocol.decoded.decode_all``, maybe in another process."""
    good: set[tuple[bytes, bytes]] = set()
    out: list[ProtocolError | None] = []
    for env, message in signed:
        if isinstance(message, ProtocolError):
            out.append(message)
            continue
        try:
            memo = (env.key_id + env.signature, message)
            if memo not in good:
                env.verify(lookup(env.key_id), message)
                good.add(memo)
            out.append(None)
        except ProtocolError as exc:
            out.append(exc)
    return out
