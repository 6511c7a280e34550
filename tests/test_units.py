"""protocol/units.py: the signed unit list decodes strictly and verifies by its signer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import codec, envelope, errors
from protocol.certs import TrustStore, issue_certificate
from protocol.errors import ProtocolError
from protocol.keys import SigningKey
from protocol.units import (
    BAD_UNIT_LIST,
    UNITS_TYPE,
    Unit,
    UnitList,
    decode_units,
    encode_units,
    sign_units,
    verify_units,
)

NOW = 1_790_000_000_000
LISTED = UnitList(
    node="140105",
    version=3,
    at=NOW,
    units=(Unit(code="office", name="区政府办公室", office=True), Unit(code="fgw", name="发改局")),
)


def test_round_trip() -> None:
    assert decode_units(encode_units(LISTED)) == LISTED


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ({"node": "1", "version": 1, "at": 0}, "missing fields ['units']"),
        ({"node": "1", "version": 1, "at": 0, "units": [], "x": 1}, "unknown fields ['x']"),
        ({"node": "1", "version": 0, "at": 0, "units": []}, "version"),
        ({"node": "1", "version": True, "at": 0, "units": []}, "version"),
        ({"node": "1", "version": 1, "at": 0, "units": {}}, "units: must be a list"),
        ({"node": "1", "version": 1, "at": 0,
          "units": [{"code": "a", "name": "A", "office": 1}]}, "units.office"),
        ({"node": "1", "version": 1, "at": 0,
          "units": [{"code": "a", "name": "A\nB", "office": False}]}, "units.name"),
        ({"node": "1", "version": 1, "at": 0, "units": [
            {"code": "a", "name": "A", "office": False},
            {"code": "a", "name": "B", "office": False}]}, "a is listed twice"),
        ({"node": "../x", "version": 1, "at": 0, "units": []}, "node"),
    ],
)
def test_strict_decoding_names_the_field(value: dict[str, codec.Value], detail: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_units(codec.encode(value))
    assert caught.value.reason == BAD_UNIT_LIST
    assert detail in caught.value.detail


def test_too_many_units_is_refused_while_decoding() -> None:
    units = [{"code": f"u{i}", "name": "x", "office": False} for i in range(257)]
    body = codec.encode({"node": "1", "version": 1, "at": 0, "units": units})
    with pytest.raises(ProtocolError) as caught:
        decode_units(body)
    assert caught.value.reason == BAD_UNIT_LIST


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_the_protocol_error(body: bytes) -> None:
    try:
        decode_units(body)
    except ProtocolError as exc:
        assert exc.reason == BAD_UNIT_LIST


def _store() -> tuple[TrustStore, SigningKey, SigningKey]:
    root, child = SigningKey.generate(), SigningKey.generate()
    store = TrustStore(root.verify_key.fingerprint)
    store.add(issue_certificate(root, node="14", name="省", level="province", parent=None,
                                public_key=root.verify_key.public_key, version=1,
                                not_before=0, not_after=NOW * 2).raw, NOW)
    store.add(issue_certificate(root, node="140105", name="区", level="county", parent="14",
                                public_key=child.verify_key.public_key, version=1,
                                not_before=0, not_after=NOW * 2).raw, NOW)
    return store, root, child


def test_verify_by_the_signers_own_current_key() -> None:
    store, root, child = _store()
    assert verify_units(sign_units(child, LISTED), store, NOW) == LISTED
    with pytest.raises(ProtocolError) as caught:
        verify_units(sign_units(root, LISTED), store, NOW)  # the parent signs the child's
    assert caught.value.reason == errors.SIGNER_MISMATCH
    with pytest.raises(ProtocolError) as caught:
        verify_units(sign_units(SigningKey.generate(), LISTED), store, NOW)
    assert caught.value.reason == errors.UNKNOWN_KEY
    forged = sign_units(child, LISTED)
    tampered = envelope.Envelope(
        type=forged.type, body=encode_units(UnitList(node="140105", version=99, at=NOW,
                                                     units=())),
        key_id=forged.key_id, signature=forged.signature, proof=None, raw=forged.raw,
    )
    with pytest.raises(ProtocolError) as caught:
        verify_units(tampered, store, NOW)
    assert caught.value.reason == errors.BAD_SIGNATURE
    batched = envelope.sign_batch(child, [(UNITS_TYPE, encode_units(LISTED))] * 2)[0]
    with pytest.raises(ProtocolError) as caught:
        verify_units(batched, store, NOW)
    assert caught.value.reason == errors.BAD_ENVELOPE
