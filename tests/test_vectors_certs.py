"""Certificate vectors: the checked-in JSON matches its builder, and its chain verifies."""

from __future__ import annotations

import json

import pytest

from protocol import certs, errors
from protocol.certs import TrustStore
from protocol.errors import ProtocolError
from protocol.keys import key_id_of
from tests.vectors import cert_chain as vectors


def load() -> dict[str, object]:
    data = json.loads(vectors.PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_checked_in_vectors_match_the_builder() -> None:
    assert load() == vectors.build()


def test_the_chain_verifies_to_the_pinned_root_from_raw_bytes() -> None:
    data = vectors.build()
    raws = [bytes.fromhex(c["raw"]) for c in data["certificates"]]
    township = certs.verify_chain(raws, data["root_fingerprint"], data["now"])
    assert township.node == "140105001"
    assert township.parent == "140105"
    for described in data["certificates"]:
        signed = certs.parse_certificate(bytes.fromhex(described["raw"]))
        fields = described["fields"]
        assert signed.certificate.key_id.hex() == fields["key_id"]
        assert key_id_of(bytes.fromhex(fields["public_key"])).hex() == fields["key_id"]
        assert signed.envelope.event_id == described["record_id"]
        assert signed.signer.hex() == described["signer_key_id"]
    # Each certificate is signed by its parent's key; the root signs itself.
    signers = [c["signer_key_id"] for c in data["certificates"]]
    key_ids = [c["fields"]["key_id"] for c in data["certificates"]]
    assert signers == [key_ids[0], *key_ids[:-1]]


def test_the_revocation_applies_to_later_events_only() -> None:
    data = vectors.build()
    store = TrustStore.from_records(
        data["root_fingerprint"], [bytes.fromhex(r) for r in data["chain"]]
    )
    rev = data["revocation"]["fields"]
    key_id = bytes.fromhex(rev["key_id"])
    after = rev["effective_at"]
    store.check_event_signer(key_id, "140105001", rev["last_seq"], after)
    with pytest.raises(ProtocolError) as info:
        store.check_event_signer(key_id, "140105001", rev["last_seq"] + 1, after)
    assert info.value.reason == errors.KEY_REVOKED
    # Before it takes effect, the key still signs.
    store.check_event_signer(key_id, "140105001", rev["last_seq"] + 1, after - 1)
    assert rev["version"] == 2
