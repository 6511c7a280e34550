"""Ed25519 keys, key ids and fingerprints.

A key id is the first 16 bytes of SHA-256 over the raw 32-byte public key; a
fingerprint (what a node pins for the root) is the whole digest in hex.

``cryptography`` is imported where a key signs or checks, not with this module:
a process that only parses envelopes (a node's decoding worker) never loads it,
and it is a good part of that worker's start (docs/performance.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocol import errors
from protocol.errors import ProtocolError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_ID_LEN = 16
PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64


def key_id_of(public_key: bytes) -> bytes:
    return hashlib.sha256(public_key).digest()[:KEY_ID_LEN]


def fingerprint_of(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A public key that checks signatures."""

    public_key: bytes

    def __post_init__(self) -> None:
        if type(self.public_key) is not bytes or len(self.public_key) != PUBLIC_KEY_LEN:
            raise ProtocolError(errors.BAD_FIELD, "public key must be 32 bytes")

    @property
    def key_id(self) -> bytes:
        return key_id_of(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.public_key)

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise ``bad_signature`` unless ``signature`` signs ``message``."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError, TypeError):
            raise ProtocolError(errors.BAD_SIGNATURE) from None


class SigningKey:
    """A private Ed25519 key. Not a dataclass: it must never be compared or printed."""

    __slots__ = ("_private", "verify_key")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        from cryptography.hazmat.primitives import serialization

        self._private = private
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.verify_key = VerifyKey(raw)

    @classmethod
    def generate(cls) -> SigningKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Deterministic key from a 32-byte seed (tests and known-answer vectors)."""
        if len(seed) != 32:
            raise ValueError("seed must be 32 bytes")
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        """The raw 32-byte private seed, for storing in a node's key file."""
        from cryptography.hazmat.primitives import serialization

        return self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> bytes:
        return self.verify_key.public_key

    @property
    def key_id(self) -> bytes:
        return self.verify_key.key_id

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id.hex()})"
