"""Node certificates, revocations and the trust store that checks them.

The X.509 verifier in ``cryptography`` refuses Ed25519 chains, so a node's
certificate is our own small record: a strict msgpack map carried as the body of
an :class:`~protocol.envelope.Envelope` of type ``duban.cert``, signed by the
parent's key (the root's first certificate is self-signed, and its key's
fingerprint is what every node pins at install time).

Rules the :class:`TrustStore` enforces, so every node reaches the same verdict:

* Every node has one version counter shared by its certificates and the
  revocations of its keys. It only goes up: a record whose version is not above
  the highest one seen for that node is refused (``version_regression``).
* Rotation: a certificate for a new key carries ``from_seq``, the first of the
  node's own event sequence numbers the new key signs. The previous key stays
  verify-only for ``seq < from_seq`` (``key_retired`` beyond), so history still
  verifies and a retired key can never sign new events. A retired key's expiry
  no longer matters: its range of sequence numbers is closed.
* Revocation: a record signed by the parent, version N+1, naming a key and
  ``last_seq``. Once ``effective_at`` has passed, events by that key with
  ``seq > last_seq`` are refused (``key_revoked``); earlier ones still verify.
  Certificates cannot be ordered like events, so everything a revoked key
  certified stops verifying: its node re-issues them with its new key
  (same keys, next version; see ``hierarchy.keys``).
* Validity times are checked against an injected ``now`` (unix ms) when a key
  is *used*; adding a record checks its signature, its issuer and its version.
  So a node's full history can be replayed in the order it was accepted.

The root's keys cannot be revoked in band: the root is the trust anchor, and a
compromised root means re-pinning every node. The root rotates by having its
current key sign the certificate of its next key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NoReturn

from protocol import codec, envelope, errors
from protocol.envelope import Envelope
from protocol.errors import ProtocolError
from protocol.keys import (
    KEY_ID_LEN,
    PUBLIC_KEY_LEN,
    SigningKey,
    VerifyKey,
    fingerprint_of,
    key_id_of,
)

CERT_TYPE = "duban.cert"
REVOCATION_TYPE = "duban.revocation"
MAX_ID_LEN = 128
MAX_TEXT_LEN = 256
_MAX_INT = 2**63 - 1
_MAX_CHAIN = 64

BODY_LIMITS = codec.Limits(
    max_size=4096, max_str=1024, max_bin=64, max_array=1, max_map=16, max_depth=1
)

_CERT_FIELDS = frozenset(
    {"node", "name", "level", "parent", "public_key", "key_id", "version",
     "not_before", "not_after", "from_seq"}
)
_REVOCATION_FIELDS = frozenset(
    {"node", "key_id", "version", "effective_at", "last_seq", "reason"}
)


def _fail(reason: str, detail: str) -> NoReturn:
    raise ProtocolError(reason, detail)


def _text(value: object, what: str, reason: str, *, limit: int, empty: bool = False) -> None:
    if type(value) is not str:
        _fail(reason, f"{what} must be a string")
    if not value and not empty:
        _fail(reason, f"{what} is empty")
    if len(value) > limit or not value.isprintable() or value != value.strip():
        _fail(reason, f"{what} is too long, not printable or padded")


def _int(value: object, what: str, reason: str, *, minimum: int) -> None:
    if type(value) is not int or not minimum <= value <= _MAX_INT:
        _fail(reason, f"{what} must be an integer >= {minimum}")


def _bytes(value: object, what: str, reason: str, size: int) -> None:
    if type(value) is not bytes or len(value) != size:
        _fail(reason, f"{what} must be {size} bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    """What a parent vouches for: this node, with this key, from this sequence on."""

    node: str
    name: str
    level: str
    parent: str | None
    public_key: bytes
    key_id: bytes
    version: int
    not_before: int
    not_after: int
    from_seq: int = 0

    def __post_init__(self) -> None:
        bad = errors.BAD_CERTIFICATE
        _text(self.node, "node", bad, limit=MAX_ID_LEN)
        _text(self.name, "name", bad, limit=MAX_TEXT_LEN)
        _text(self.level, "level", bad, limit=MAX_ID_LEN)
        if self.parent is not None:
            _text(self.parent, "parent", bad, limit=MAX_ID_LEN)
            if self.parent == self.node:
                _fail(bad, "a node cannot be its own parent")
        _bytes(self.public_key, "public_key", bad, PUBLIC_KEY_LEN)
        _bytes(self.key_id, "key_id", bad, KEY_ID_LEN)
        if self.key_id != key_id_of(self.public_key):
            _fail(bad, "key_id is not the id of public_key")
        _int(self.version, "version", bad, minimum=1)
        _int(self.not_before, "not_before", bad, minimum=0)
        _int(self.not_after, "not_after", bad, minimum=0)
        if self.not_after <= self.not_before:
            _fail(bad, "not_after must be later than not_before")
        _int(self.from_seq, "from_seq", bad, minimum=0)

    @classmethod
    def for_key(
        cls,
        *,
        node: str,
        name: str,
        level: str,
        parent: str | None,
        public_key: bytes,
        version: int,
        not_before: int,
        not_after: int,
        from_seq: int = 0,
    ) -> Certificate:
        """Build a certificate, deriving ``key_id`` from ``public_key``."""
        if type(public_key) is not bytes:
            _fail(errors.BAD_CERTIFICATE, "public_key must be bytes")
        return cls(
            node=node, name=name, level=level, parent=parent, public_key=public_key,
            key_id=key_id_of(public_key), version=version, not_before=not_before,
            not_after=not_after, from_seq=from_seq,
        )

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.public_key)

    def check_time(self, now: int) -> None:
        """Raise ``cert_not_yet_valid`` or ``cert_expired`` unless valid at ``now``."""
        if now < self.not_before:
            _fail(errors.CERT_NOT_YET_VALID, f"{self.node} v{self.version} from {self.not_before}")
        if now >= self.not_after:
            _fail(errors.CERT_EXPIRED, f"{self.node} v{self.version} until {self.not_after}")

    def to_value(self) -> dict[str, codec.Value]:
        return {
            "node": self.node, "name": self.name, "level": self.level, "parent": self.parent,
            "public_key": self.public_key, "key_id": self.key_id, "version": self.version,
            "not_before": self.not_before, "not_after": self.not_after,
            "from_seq": self.from_seq,
        }

    @classmethod
    def from_body(cls, body: bytes) -> Certificate:
        """Strictly decode a certificate body; anything off is ``bad_certificate``."""
        # The field set is exact, and construction validates every type.
        return cls(**_decode_map(body, _CERT_FIELDS, errors.BAD_CERTIFICATE))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class Revocation:
    """The parent's word that ``key_id`` of ``node`` signs nothing after ``last_seq``.

    ``last_seq`` may be -1 (no event by the key is accepted). ``reason`` is free
    text for people ("key lost", "laptop stolen"); it is not a reason code.
    """

    node: str
    key_id: bytes
    version: int
    effective_at: int
    last_seq: int
    reason: str = ""

    def __post_init__(self) -> None:
        bad = errors.BAD_REVOCATION
        _text(self.node, "node", bad, limit=MAX_ID_LEN)
        _bytes(self.key_id, "key_id", bad, KEY_ID_LEN)
        _int(self.version, "version", bad, minimum=1)
        _int(self.effective_at, "effective_at", bad, minimum=0)
        _int(self.last_seq, "last_seq", bad, minimum=-1)
        _text(self.reason, "reason", bad, limit=MAX_TEXT_LEN, empty=True)

    def to_value(self) -> dict[str, codec.Value]:
        return {
            "node": self.node, "key_id": self.key_id, "version": self.version,
            "effective_at": self.effective_at, "last_seq": self.last_seq, "reason": self.reason,
        }

    @classmethod
    def from_body(cls, body: bytes) -> Revocation:
        return cls(**_decode_map(body, _REVOCATION_FIELDS, errors.BAD_REVOCATION))  # type: ignore[arg-type]


def _decode_map(body: bytes, fields: frozenset[str], reason: str) -> dict[str, codec.Value]:
    try:
        value = codec.decode(body, BODY_LIMITS)
    except ProtocolError as exc:
        _fail(reason, f"body: {exc.reason}")
    if type(value) is not dict:
        _fail(reason, "body is not a map")
    missing, extra = fields - value.keys(), value.keys() - fields
    if missing:
        _fail(reason, f"missing fields {sorted(missing)}")
    if extra:
        _fail(reason, f"unknown fields {sorted(extra)}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedCertificate:
    """A certificate with the envelope it came in (``raw`` is what is stored)."""

    certificate: Certificate
    envelope: Envelope

    @property
    def raw(self) -> bytes:
        return self.envelope.raw

    @property
    def signer(self) -> bytes:
        return self.envelope.key_id


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedRevocation:
    revocation: Revocation
    envelope: Envelope

    @property
    def raw(self) -> bytes:
        return self.envelope.raw

    @property
    def signer(self) -> bytes:
        return self.envelope.key_id


def sign_certificate(issuer: SigningKey, certificate: Certificate) -> Envelope:
    """Sign ``certificate`` with the parent's key (or the root's own)."""
    return envelope.sign(issuer, CERT_TYPE, codec.encode(certificate.to_value()))


def issue_certificate(
    issuer: SigningKey,
    *,
    node: str,
    name: str,
    level: str,
    parent: str | None,
    public_key: bytes,
    version: int,
    not_before: int,
    not_after: int,
    from_seq: int = 0,
) -> Envelope:
    """The parent's signing step: fields in, signed ``duban.cert`` envelope out."""
    cert = Certificate.for_key(
        node=node, name=name, level=level, parent=parent, public_key=public_key,
        version=version, not_before=not_before, not_after=not_after, from_seq=from_seq,
    )
    return sign_certificate(issuer, cert)


def sign_revocation(issuer: SigningKey, revocation: Revocation) -> Envelope:
    return envelope.sign(issuer, REVOCATION_TYPE, codec.encode(revocation.to_value()))


def issue_revocation(
    issuer: SigningKey,
    *,
    node: str,
    key_id: bytes,
    version: int,
    effective_at: int,
    last_seq: int,
    reason: str = "",
) -> Envelope:
    rev = Revocation(
        node=node, key_id=key_id, version=version, effective_at=effective_at,
        last_seq=last_seq, reason=reason,
    )
    return sign_revocation(issuer, rev)


def _parse_envelope(raw: bytes, type_: str, reason: str) -> Envelope:
    try:
        env = envelope.parse(raw)
    except ProtocolError as exc:
        _fail(reason, f"envelope: {exc.reason}")
    if env.type != type_:
        _fail(reason, f"type {env.type!r}, expected {type_!r}")
    if env.proof is not None:
        _fail(reason, "trust records are signed alone, never in a batch")
    return env


def parse_certificate(raw: bytes) -> SignedCertificate:
    """Parse a ``duban.cert`` envelope strictly. Does not check the signature."""
    env = _parse_envelope(raw, CERT_TYPE, errors.BAD_CERTIFICATE)
    return SignedCertificate(certificate=Certificate.from_body(env.body), envelope=env)


def parse_revocation(raw: bytes) -> SignedRevocation:
    """Parse a ``duban.revocation`` envelope strictly. Does not check the signature."""
    env = _parse_envelope(raw, REVOCATION_TYPE, errors.BAD_REVOCATION)
    return SignedRevocation(revocation=Revocation.from_body(env.body), envelope=env)


def verify_certificate(raw: bytes, issuer: VerifyKey) -> Certificate:
    """Parse ``raw`` and check it was signed by ``issuer`` (no chain, no time)."""
    signed = parse_certificate(raw)
    signed.envelope.verify(issuer)
    return signed.certificate


def verify_chain(records: Iterable[bytes], root_fingerprint: str, now: int) -> Certificate:
    """Verify trust records (root first, as :meth:`TrustStore.chain` gives them).

    Returns the last certificate among them once its key is shown usable at
    ``now``: every record verifies up to the pinned root, the key is its node's
    current one, not revoked, and every certificate on its path is in date.
    """
    store = TrustStore(root_fingerprint)
    last: Certificate | None = None
    for raw in records:
        added = store.add(raw, now)
        if isinstance(added, Certificate):
            last = added
    if last is None:
        _fail(errors.CHAIN_BROKEN, "no certificate in the chain")
    store.check_key(last.key_id, now)
    return last


@dataclass(slots=True)
class _KeyEntry:
    """One key of one node: its certificates and the sequence range it signs."""

    node: str
    public_key: bytes
    start_seq: int
    latest: SignedCertificate
    end_seq: int | None = None  # from_seq of the node's next key; None while current
    revocations: list[Revocation] = field(default_factory=list)


class TrustStore:
    """Verified certificates and revocations, checked up to one pinned root.

    Pure and in memory; a node persists :meth:`export` (the raw records in the
    order they were accepted) and rebuilds with :meth:`from_records`.
    """

    def __init__(self, root_fingerprint: str) -> None:
        if (
            type(root_fingerprint) is not str
            or len(root_fingerprint) != 64
            or not set(root_fingerprint.lower()) <= set("0123456789abcdef")
        ):
            raise ValueError("root fingerprint must be 64 hex characters")
        self._root_fingerprint = root_fingerprint.lower()
        self._root_node: str | None = None
        self._records: list[bytes] = []
        self._seen: set[bytes] = set()
        self._keys: dict[bytes, _KeyEntry] = {}
        self._certs: dict[str, list[SignedCertificate]] = {}
        self._revocations: dict[str, list[SignedRevocation]] = {}
        self._version: dict[str, int] = {}
        self._record_index: dict[str, list[int]] = {}

    @classmethod
    def from_records(cls, root_fingerprint: str, records: Iterable[bytes]) -> TrustStore:
        """Rebuild from :meth:`export`. Signatures, issuers and versions are
        checked again; times are not, since each record was in date when accepted."""
        store = cls(root_fingerprint)
        for raw in records:
            store._add(raw, None)
        return store

    def export(self) -> list[bytes]:
        return list(self._records)

    @property
    def root_fingerprint(self) -> str:
        return self._root_fingerprint

    @property
    def root_node(self) -> str | None:
        return self._root_node

    def __len__(self) -> int:
        return len(self._records)

    # ----------------------------------------------------------------- adding

    def add(self, raw: bytes, now: int) -> Certificate | Revocation:
        """Add a certificate or a revocation, whichever ``raw`` is."""
        return self._add(raw, now)

    def add_all(self, records: Iterable[bytes], now: int) -> list[ProtocolError | None]:
        """Add many records, each refused alone (like ``envelope.verify_all``)."""
        out: list[ProtocolError | None] = []
        for raw in records:
            try:
                self._add(raw, now)
                out.append(None)
            except ProtocolError as exc:
                out.append(exc)
        return out

    def add_certificate(self, raw: bytes, now: int) -> Certificate:
        return self._add_certificate(parse_certificate(raw), now)

    def add_revocation(self, raw: bytes, now: int) -> Revocation:
        return self._add_revocation(parse_revocation(raw), now)

    def _add(self, raw: bytes, now: int | None) -> Certificate | Revocation:
        try:
            type_ = envelope.parse(raw).type
        except ProtocolError as exc:
            _fail(errors.BAD_CERTIFICATE, f"envelope: {exc.reason}")
        if type_ == CERT_TYPE:
            return self._add_certificate(parse_certificate(raw), now)
        if type_ == REVOCATION_TYPE:
            return self._add_revocation(parse_revocation(raw), now)
        _fail(errors.BAD_TYPE, f"{type_!r} is not a trust record")

    def _add_certificate(self, signed: SignedCertificate, now: int | None) -> Certificate:
        cert = signed.certificate
        if signed.raw in self._seen:
            return cert
        signer = signed.signer
        if cert.is_root:
            issuer_key = self._root_issuer(cert, signer)
        else:
            if cert.node == self._root_node:
                _fail(errors.BAD_CERTIFICATE, "the root cannot be given a parent")
            issuer = self._keys.get(signer)
            if issuer is None:
                _fail(errors.CHAIN_BROKEN, f"issuer key {signer.hex()} of {cert.node} is unknown")
            if issuer.node != cert.parent:
                _fail(errors.CHAIN_BROKEN, f"{cert.node} signed by {issuer.node} not {cert.parent}")
            issuer_key = VerifyKey(issuer.public_key)
        signed.envelope.verify(issuer_key)
        if now is not None and signer != cert.key_id:
            self._check_path(signer, now, revoked_too=True)
        self._check_version(cert.node, cert.version)
        history = self._certs.get(cert.node)
        previous = history[-1].certificate if history else None
        if previous is not None:
            self._check_successor(previous, cert)
        elif cert.key_id in self._keys:
            _fail(errors.KEY_REUSED, f"key {cert.key_id.hex()} is already certified")
        self._accept(cert.node, cert.version, signed.raw)
        self._certs.setdefault(cert.node, []).append(signed)
        entry = self._keys.get(cert.key_id)
        if entry is None:
            if previous is not None:
                self._keys[previous.key_id].end_seq = cert.from_seq
            self._keys[cert.key_id] = _KeyEntry(
                node=cert.node, public_key=cert.public_key, start_seq=cert.from_seq, latest=signed
            )
        else:
            entry.latest = signed
        if cert.is_root:
            self._root_node = cert.node
        return cert

    def _root_issuer(self, cert: Certificate, signer: bytes) -> VerifyKey:
        if self._root_node is not None and cert.node != self._root_node:
            _fail(errors.UNTRUSTED_ROOT, f"{cert.node} would be a second root")
        if signer == cert.key_id:
            if cert.fingerprint != self._root_fingerprint:
                _fail(errors.UNTRUSTED_ROOT, "self-signed key is not the pinned root")
            return VerifyKey(cert.public_key)
        issuer = self._keys.get(signer)
        if issuer is None or issuer.node != cert.node:
            _fail(errors.UNTRUSTED_ROOT, "a root certificate must be signed by a root key")
        return VerifyKey(issuer.public_key)

    def _check_successor(self, previous: Certificate, cert: Certificate) -> None:
        """A node's next certificate keeps its parent and never reuses an old key."""
        if cert.parent != previous.parent:
            _fail(errors.BAD_CERTIFICATE, f"{cert.node} cannot change parent")
        if cert.key_id == previous.key_id:
            if cert.from_seq != previous.from_seq:
                _fail(errors.BAD_CERTIFICATE, "a renewal must keep the key's from_seq")
            return
        if cert.key_id in self._keys:
            _fail(errors.KEY_REUSED, f"key {cert.key_id.hex()} was certified before")
        if cert.from_seq < self._keys[previous.key_id].start_seq:
            _fail(errors.BAD_CERTIFICATE, "from_seq goes backwards")

    def _add_revocation(self, signed: SignedRevocation, now: int | None) -> Revocation:
        rev = signed.revocation
        if signed.raw in self._seen:
            return rev
        history = self._certs.get(rev.node)
        if not history:
            _fail(errors.UNKNOWN_NODE, f"no certificate for {rev.node}")
        parent = history[-1].certificate.parent
        if parent is None:
            _fail(errors.BAD_REVOCATION, "root keys are not revoked in band; re-pin instead")
        target = self._keys.get(rev.key_id)
        if target is None or target.node != rev.node:
            _fail(errors.UNKNOWN_KEY, f"{rev.key_id.hex()} is not a key of {rev.node}")
        issuer = self._keys.get(signed.signer)
        if issuer is None:
            _fail(errors.UNKNOWN_SIGNER, f"signer {signed.signer.hex()} is unknown")
        if issuer.node != parent:
            _fail(errors.SIGNER_NOT_PARENT, f"signed by {issuer.node}, not {parent}")
        signed.envelope.verify(VerifyKey(issuer.public_key))
        if now is not None:
            self._check_path(signed.signer, now, revoked_too=True)
        self._check_version(rev.node, rev.version)
        self._accept(rev.node, rev.version, signed.raw)
        self._revocations.setdefault(rev.node, []).append(signed)
        target.revocations.append(rev)
        return rev

    def _check_version(self, node: str, version: int) -> None:
        seen = self._version.get(node, 0)
        if version <= seen:
            _fail(errors.VERSION_REGRESSION, f"{node} version {version} <= {seen}")

    def _accept(self, node: str, version: int, raw: bytes) -> None:
        self._version[node] = version
        self._record_index.setdefault(node, []).append(len(self._records))
        self._records.append(raw)
        self._seen.add(raw)

    # --------------------------------------------------------------- checking

    def _revoked_at(self, key_id: bytes, now: int) -> Revocation | None:
        """The effective revocation with the lowest ``last_seq``, if any."""
        active = [r for r in self._keys[key_id].revocations if r.effective_at <= now]
        return min(active, key=lambda r: r.last_seq) if active else None

    def _check_path(self, key_id: bytes, now: int, *, revoked_too: bool) -> None:
        """Check ``key_id``'s certificate and every issuer above it at ``now``.

        Issuers must not be revoked; current keys must be in date (retired keys
        are exempt: their range of sequence numbers is already closed).
        """
        current = key_id
        for _ in range(_MAX_CHAIN):
            entry = self._keys[current]
            if revoked_too and self._revoked_at(current, now) is not None:
                _fail(errors.KEY_REVOKED, f"key {current.hex()} of {entry.node} is revoked")
            if entry.end_seq is None:
                entry.latest.certificate.check_time(now)
            issuer = entry.latest.signer
            if issuer == current:
                return
            current, revoked_too = issuer, True
        _fail(errors.CHAIN_BROKEN, "chain too long")

    def check_key(self, key_id: bytes, now: int) -> Certificate:
        """Check that ``key_id`` may sign new things at ``now`` and return its certificate:
        its node's current key, not revoked, and its whole path in date."""
        entry = self._entry(key_id)
        if entry.end_seq is not None:
            _fail(errors.KEY_RETIRED, f"key {key_id.hex()} of {entry.node} was rotated out")
        self._check_path(key_id, now, revoked_too=True)
        return entry.latest.certificate

    def check_event_signer(self, key_id: bytes, origin: str, seq: int, now: int) -> None:
        """Refuse unless ``key_id`` may have signed event ``seq`` of node ``origin``."""
        self.event_signer_check(now)(key_id, origin, seq)

    def event_signer_check(self, now: int) -> Callable[[bytes, str, int], None]:
        """:meth:`check_event_signer` at ``now`` for the events of one batch: what does
        not depend on the event (the key's revocation, its certificate path) is worked
        out once per key. Use it while the store does not change."""
        per_key: dict[bytes, tuple[_KeyEntry, Revocation | None, ProtocolError | None]] = {}

        def check(key_id: bytes, origin: str, seq: int) -> None:
            known = per_key.get(key_id)
            if known is None:
                entry = self._entry(key_id)
                path_error: ProtocolError | None = None
                try:
                    self._check_path(key_id, now, revoked_too=False)
                except ProtocolError as exc:
                    path_error = exc
                known = per_key[key_id] = (entry, self._revoked_at(key_id, now), path_error)
            entry, revoked, path_error = known
            if entry.node != origin:
                _fail(errors.SIGNER_MISMATCH, f"key of {entry.node} signed an event of {origin}")
            if type(seq) is not int or seq < 0:
                _fail(errors.BAD_FIELD, "seq must be a non-negative integer")
            if seq < entry.start_seq:
                _fail(errors.KEY_NOT_ACTIVE, f"key signs {origin} from seq {entry.start_seq}")
            if entry.end_seq is not None and seq >= entry.end_seq:
                _fail(errors.KEY_RETIRED, f"key signs {origin} only below seq {entry.end_seq}")
            if revoked is not None and seq > revoked.last_seq:
                _fail(errors.KEY_REVOKED, f"key of {origin} revoked after seq {revoked.last_seq}")
            if path_error is not None:
                raise ProtocolError(path_error.reason, path_error.detail)

        return check

    # ---------------------------------------------------------------- looking

    def _entry(self, key_id: bytes) -> _KeyEntry:
        entry = self._keys.get(key_id)
        if entry is None:
            _fail(errors.UNKNOWN_KEY, key_id.hex() if type(key_id) is bytes else "not bytes")
        return entry

    def key_for(self, key_id: bytes) -> VerifyKey:
        """The public key for ``key_id`` (fits :data:`protocol.envelope.KeyLookup`)."""
        return VerifyKey(self._entry(key_id).public_key)

    def certificate_for_key(self, key_id: bytes) -> Certificate:
        return self._entry(key_id).latest.certificate

    def has_node(self, node: str) -> bool:
        return node in self._certs

    def nodes(self) -> list[str]:
        return list(self._certs)

    def current(self, node: str) -> Certificate:
        """The node's newest certificate; ``unknown_node`` if there is none."""
        history = self._certs.get(node)
        if not history:
            _fail(errors.UNKNOWN_NODE, node)
        return history[-1].certificate

    def certificates(self, node: str) -> list[Certificate]:
        return [s.certificate for s in self._certs.get(node, [])]

    def revocations(self, node: str) -> list[Revocation]:
        return [s.revocation for s in self._revocations.get(node, [])]

    def version_of(self, node: str) -> int:
        """The highest version seen for ``node`` (0 if none); the next record needs more."""
        return self._version.get(node, 0)

    def is_retired(self, key_id: bytes) -> bool:
        return self._entry(key_id).end_seq is not None

    def chain(self, node: str) -> list[bytes]:
        """Every record of ``node`` and its ancestors, root first, in accepted order.

        Self-contained: feeding it to an empty store (or :func:`verify_chain`)
        rebuilds the node's whole history, old keys and revocations included.
        """
        path: list[str] = []
        current: str | None = node
        while current is not None:
            if current in path or len(path) > _MAX_CHAIN:
                _fail(errors.CHAIN_BROKEN, "parent cycle")
            path.append(current)
            current = self.current(current).parent
        indexes = sorted(i for n in path for i in self._record_index[n])
        return [self._records[i] for i in indexes]

    def subjects_signed_by(self, key_id: bytes) -> list[str]:
        """Nodes whose newest certificate was signed by ``key_id`` (to re-issue them)."""
        owner = self._entry(key_id).node
        return [n for n, h in self._certs.items() if n != owner and h[-1].signer == key_id]

