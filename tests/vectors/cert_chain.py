"""Certificate vectors: a province → city → county → township chain and a revocation.

Every key comes from a fixed seed, every time is fixed, so the records are
byte-for-byte reproducible. Regenerate with ``python -m tests.vectors.cert_chain``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protocol import certs
from protocol.certs import TrustStore
from protocol.keys import SigningKey, fingerprint_of

PATH = Path(__file__).with_name("cert_chain.json")

#: (node, name, level, parent) root first.
NODES: tuple[tuple[str, str, str, str | None], ...] = (
    ("14", "山西省", "province", None),
    ("1401", "太原市", "city", "14"),
    ("140105", "小店区", "county", "1401"),
    ("140105001", "坞城街道", "township", "140105"),
)
SEEDS: dict[str, bytes] = {node: bytes([0x20 + i]) * 32 for i, (node, *_) in enumerate(NODES)}
NOT_BEFORE = 1_704_067_200_000  # 2024-01-01T00:00:00Z
NOT_AFTER = 2_019_686_400_000  # 2034-01-01T00:00:00Z
NOW = 1_717_200_000_000  # 2024-06-01, inside the validity window
REVOKED_AT = 1_719_792_000_000  # 2024-07-01
LAST_SEQ = 41


def keys() -> dict[str, SigningKey]:
    return {node: SigningKey.from_seed(seed) for node, seed in SEEDS.items()}


def certificate_records() -> list[bytes]:
    """The four certificates, root first, each signed by its parent (root: itself)."""
    k = keys()
    out = []
    for node, name, level, parent in NODES:
        issuer = k[parent] if parent is not None else k[node]
        env = certs.issue_certificate(
            issuer,
            node=node,
            name=name,
            level=level,
            parent=parent,
            public_key=k[node].public_key,
            version=1,
            not_before=NOT_BEFORE,
            not_after=NOT_AFTER,
            from_seq=0,
        )
        out.append(env.raw)
    return out


def revocation_record() -> bytes:
    """The county revokes the township's key after its event 41 (version 2)."""
    k = keys()
    return certs.issue_revocation(
        k["140105"],
        node="140105001",
        key_id=k["140105001"].key_id,
        version=2,
        effective_at=REVOKED_AT,
        last_seq=LAST_SEQ,
        reason="key lost",
    ).raw


def _fields(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v.hex() if isinstance(v, bytes) else v for k, v in value.items()}


def build() -> dict[str, Any]:
    root_fp = fingerprint_of(keys()["14"].public_key)
    records = certificate_records()
    revocation = revocation_record()
    store = TrustStore(root_fp)
    for raw in records:
        store.add(raw, NOW)
    store.add(revocation, NOW)
    described = []
    for raw in records:
        signed = certs.parse_certificate(raw)
        described.append(
            {
                "seed": SEEDS[signed.certificate.node].hex(),
                "raw": raw.hex(),
                "record_id": signed.envelope.event_id,
                "signer_key_id": signed.signer.hex(),
                "fingerprint": signed.certificate.fingerprint,
                "fields": _fields(signed.certificate.to_value()),
            }
        )
    rev = certs.parse_revocation(revocation)
    return {
        "description": "duban.cert / duban.revocation envelopes (single-signed, "
        "PAE([b'duban/event/v1', type, body])); bodies are strict msgpack maps; "
        "key id = SHA-256(public key)[:16]; fingerprint = SHA-256(public key) hex.",
        "root_fingerprint": root_fp,
        "now": NOW,
        "certificates": described,
        "revocation": {
            "raw": revocation.hex(),
            "record_id": rev.envelope.event_id,
            "signer_key_id": rev.signer.hex(),
            "fields": _fields(rev.revocation.to_value()),
        },
        "chain": [raw.hex() for raw in store.chain("140105001")],
    }


if __name__ == "__main__":
    PATH.write_text(json.dumps(build(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {PATH}")
