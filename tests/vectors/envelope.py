"""Envelope vectors: one single-signed event and a Merkle-batched three, from fixed seeds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protocol import codec, envelope
from protocol.keys import SigningKey

SEED = bytes(range(32))
PATH = Path(__file__).with_name("envelope.json")


def _describe(env: envelope.Envelope) -> dict[str, Any]:
    out: dict[str, Any] = {
        "raw": env.raw.hex(),
        "event_id": env.event_id,
        "type": env.type,
        "body": env.body.hex(),
        "key_id": env.key_id.hex(),
        "signature": env.signature.hex(),
        "signed_message": env.signed_message().hex(),
    }
    if env.proof is not None:
        out["proof"] = {
            "index": env.proof.index,
            "size": env.proof.size,
            "path": [h.hex() for h in env.proof.path],
        }
    return out


def build() -> dict[str, Any]:
    key = SigningKey.from_seed(SEED)
    single = envelope.sign(key, "test.hello", codec.encode({"text": "你好", "n": 1}))
    batch = envelope.sign_batch(
        key, [("test.batch", codec.encode({"n": n})) for n in range(3)]
    )
    return {
        "description": "Ed25519 over PAE([b'duban/event/v1', type, body]); batches sign "
        "PAE([b'duban/batch/v1', RFC 9162 root, LE64(size)]); event id = SHA-256(raw).",
        "seed": SEED.hex(),
        "public_key": key.public_key.hex(),
        "single": _describe(single),
        "batch": [_describe(e) for e in batch],
    }


if __name__ == "__main__":
    PATH.write_text(json.dumps(build(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {PATH}")
