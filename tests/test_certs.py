"""Certificates and the trust store: records, chains to the pinned root, every refusal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import certs, codec, envelope, errors
from protocol.certs import Certificate, Revocation, TrustStore
from protocol.errors import ProtocolError
from protocol.keys import SigningKey, fingerprint_of, key_id_of
from tests.vectors import cert_chain as vectors

KEYS = vectors.keys()
ROOT_FP = fingerprint_of(KEYS["14"].public_key)
NOW = vectors.NOW
T0, T1 = vectors.NOT_BEFORE, vectors.NOT_AFTER
RECORDS = vectors.certificate_records()


def reason(exc: pytest.ExceptionInfo[ProtocolError]) -> str:
    return exc.value.reason


def full_store() -> TrustStore:
    store = TrustStore(ROOT_FP)
    for raw in RECORDS:
        store.add_certificate(raw, NOW)
    return store


def cert(
    key: SigningKey,
    *,
    node: str = "140105002",
    parent: str | None = "140105",
    version: int = 1,
    not_before: int = T0,
    not_after: int = T1,
    from_seq: int = 0,
) -> Certificate:
    return Certificate.for_key(
        node=node,
        name="北格镇",
        level="township",
        parent=parent,
        public_key=key.public_key,
        version=version,
        not_before=not_before,
        not_after=not_after,
        from_seq=from_seq,
    )


# ----------------------------------------------------------------- records


def test_issue_parse_and_verify_round_trip() -> None:
    raw = RECORDS[1]
    signed = certs.parse_certificate(raw)
    c = signed.certificate
    assert (c.node, c.name, c.level, c.parent, c.version) == ("1401", "太原市", "city", "14", 1)
    assert c.key_id == KEYS["1401"].key_id == key_id_of(c.public_key)
    assert signed.signer == KEYS["14"].key_id
    assert certs.verify_certificate(raw, KEYS["14"].verify_key) == c
    assert Certificate.from_body(signed.envelope.body) == c
    with pytest.raises(ProtocolError) as info:
        certs.verify_certificate(raw, KEYS["1401"].verify_key)
    assert reason(info) == errors.UNKNOWN_KEY  # the envelope names another key


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"version": 0}, "version"),
        ({"version": True}, "version"),
        ({"not_after": T0}, "not_after"),
        ({"from_seq": -1}, "from_seq"),
        ({"node": ""}, "node"),
        ({"node": " 14"}, "node"),
        ({"name": "a\nb"}, "name"),
        ({"parent": "140105002"}, "own parent"),
        ({"key_id": b"\x00" * 16}, "key_id"),
        ({"public_key": b"\x00" * 31}, "public_key"),
    ],
)
def test_certificates_validate_on_construction(change: dict[str, object], detail: str) -> None:
    fields = cert(KEYS["140105001"]).to_value()
    fields.update(change)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError) as info:
        Certificate(**fields)  # type: ignore[arg-type]
    assert reason(info) == errors.BAD_CERTIFICATE
    assert detail in info.value.detail


def body_with(**change: codec.Value) -> bytes:
    value = cert(KEYS["140105001"]).to_value()
    value.update(change)
    return codec.encode({k: v for k, v in value.items() if v != "DROP"})


@pytest.mark.parametrize(
    "body",
    [
        body_with(extra=1),
        body_with(from_seq="DROP"),
        body_with(version="1"),
        body_with(parent=5),
        codec.encode([1, 2]),
        b"\xc1",
        codec.encode({"node": {"nested": 1}}),
    ],
)
def test_certificate_bodies_are_strict(body: bytes) -> None:
    raw = envelope.sign(KEYS["140105"], certs.CERT_TYPE, body).raw
    with pytest.raises(ProtocolError) as info:
        certs.parse_certificate(raw)
    assert reason(info) == errors.BAD_CERTIFICATE


def test_wrong_type_batched_or_garbage_envelopes_are_bad_certificates() -> None:
    body = codec.encode(cert(KEYS["140105001"]).to_value())
    wrong_type = envelope.sign(KEYS["140105"], "duban.other", body).raw
    batched = envelope.sign_batch(KEYS["140105"], [(certs.CERT_TYPE, body)] * 2)[0].raw
    for raw in (wrong_type, batched, b"", b"\x00garbage"):
        with pytest.raises(ProtocolError) as info:
            certs.parse_certificate(raw)
        assert reason(info) == errors.BAD_CERTIFICATE


def test_revocation_records_round_trip_and_validate() -> None:
    signed = certs.parse_revocation(vectors.revocation_record())
    assert signed.revocation == Revocation(
        node="140105001",
        key_id=KEYS["140105001"].key_id,
        version=2,
        effective_at=vectors.REVOKED_AT,
        last_seq=vectors.LAST_SEQ,
        reason="key lost",
    )
    with pytest.raises(ProtocolError) as info:
        Revocation(node="x", key_id=b"short", version=1, effective_at=0, last_seq=0)
    assert reason(info) == errors.BAD_REVOCATION
    with pytest.raises(ProtocolError) as info:
        certs.parse_revocation(RECORDS[0])
    assert reason(info) == errors.BAD_REVOCATION


# ------------------------------------------------------------------ chains


def test_a_chain_verifies_to_the_pinned_root() -> None:
    township = certs.verify_chain(RECORDS, ROOT_FP, NOW)
    assert township.node == "140105001"
    store = full_store()
    assert store.root_node == "14"
    assert store.chain("140105001") == RECORDS
    assert store.chain("1401") == RECORDS[:2]
    assert store.check_key(KEYS["140105001"].key_id, NOW).node == "140105001"
    assert store.key_for(KEYS["1401"].key_id) == KEYS["1401"].verify_key


def test_another_root_is_untrusted() -> None:
    other_fp = fingerprint_of(SigningKey.from_seed(b"\x99" * 32).public_key)
    with pytest.raises(ProtocolError) as info:
        certs.verify_chain(RECORDS, other_fp, NOW)
    assert reason(info) == errors.UNTRUSTED_ROOT


def test_a_second_root_is_untrusted() -> None:
    store = full_store()
    rogue = SigningKey.from_seed(b"\x98" * 32)
    raw = certs.sign_certificate(rogue, cert(rogue, node="15", parent=None)).raw
    with pytest.raises(ProtocolError) as info:
        store.add_certificate(raw, NOW)
    assert reason(info) == errors.UNTRUSTED_ROOT


def test_records_out_of_order_break_the_chain() -> None:
    with pytest.raises(ProtocolError) as info:
        certs.verify_chain([RECORDS[0], RECORDS[2]], ROOT_FP, NOW)
    assert reason(info) == errors.CHAIN_BROKEN


def test_a_certificate_must_be_signed_by_the_parent_not_an_ancestor() -> None:
    store = full_store()
    new = SigningKey.from_seed(b"\x51" * 32)
    by_city = certs.sign_certificate(KEYS["1401"], cert(new)).raw  # parent is 140105
    with pytest.raises(ProtocolError) as info:
        store.add_certificate(by_city, NOW)
    assert reason(info) == errors.CHAIN_BROKEN


def test_a_forged_signature_is_refused() -> None:
    store = full_store()
    new = SigningKey.from_seed(b"\x52" * 32)
    env = certs.sign_certificate(new, cert(new))
    forged = envelope._wire(  # the county's key id on a signature by someone else
        env.type, env.body, KEYS["140105"].key_id, env.signature, None
    )
    with pytest.raises(ProtocolError) as info:
        store.add_certificate(forged, NOW)
    assert reason(info) == errors.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0 - 1, errors.CERT_NOT_YET_VALID),
        (T1, errors.CERT_EXPIRED),
        (T1 + 10**9, errors.CERT_EXPIRED),
    ],
)
def test_validity_times_are_checked_against_now(now: int, expected: str) -> None:
    with pytest.raises(ProtocolError) as info:
        certs.verify_chain(RECORDS, ROOT_FP, now)
    assert reason(info) == expected


def test_an_expired_issuer_invalidates_the_chain_below_it() -> None:
    store = TrustStore(ROOT_FP)
    store.add_certificate(RECORDS[0], NOW)
    short_city = certs.issue_certificate(
        KEYS["14"],
        node="1401",
        name="太原市",
        level="city",
        parent="14",
        public_key=KEYS["1401"].public_key,
        version=1,
        not_before=T0,
        not_after=NOW + 1000,
    ).raw
    store.add_certificate(short_city, NOW)
    store.add_certificate(RECORDS[2], NOW)
    store.check_key(KEYS["140105"].key_id, NOW)
    with pytest.raises(ProtocolError) as info:
        store.check_key(KEYS["140105"].key_id, NOW + 1000)
    assert reason(info) == errors.CERT_EXPIRED
    with pytest.raises(ProtocolError) as info:
        store.check_event_signer(KEYS["140105"].key_id, "140105", 5, NOW + 1000)
    assert reason(info) == errors.CERT_EXPIRED
    with pytest.raises(ProtocolError) as info:  # an expired issuer signs nothing new
        store.add_certificate(RECORDS[3], NOW + 1000)
    assert reason(info) == errors.CERT_EXPIRED


def test_adding_the_same_record_twice_changes_nothing() -> None:
    store = full_store()
    before = store.export()
    assert store.add(RECORDS[2], NOW) == certs.parse_certificate(RECORDS[2]).certificate
    assert store.export() == before


def test_versions_never_go_backwards() -> None:
    store = full_store()
    new = SigningKey.from_seed(b"\x53" * 32)
    same_version = certs.issue_certificate(
        KEYS["140105"],
        node="140105001",
        name="坞城街道",
        level="township",
        parent="140105",
        public_key=new.public_key,
        version=1,
        not_before=T0,
        not_after=T1,
        from_seq=10,
    ).raw
    with pytest.raises(ProtocolError) as info:
        store.add_certificate(same_version, NOW)
    assert reason(info) == errors.VERSION_REGRESSION
    assert store.version_of("140105001") == 1


def test_a_key_is_certified_for_one_node_only() -> None:
    store = full_store()
    raw = certs.sign_certificate(KEYS["140105"], cert(KEYS["140105001"])).raw
    with pytest.raises(ProtocolError) as info:
        store.add_certificate(raw, NOW)
    assert reason(info) == errors.KEY_REUSED


def test_a_node_keeps_its_parent() -> None:
    store = full_store()
    raw = certs.issue_certificate(
        KEYS["1401"],
        node="140105001",
        name="坞城街道",
        level="township",
        parent="1401",
        public_key=KEYS["140105001"].public_key,
        version=2,
        not_before=T0,
        not_after=T1,
    ).raw
    with pytest.raises(ProtocolError) as info:
        store.add_certificate(raw, NOW)
    assert reason(info) == errors.BAD_CERTIFICATE


def test_event_signers_must_belong_to_the_origin() -> None:
    store = full_store()
    store.check_event_signer(KEYS["140105001"].key_id, "140105001", 0, NOW)
    with pytest.raises(ProtocolError) as info:
        store.check_event_signer(KEYS["140105001"].key_id, "140105", 0, NOW)
    assert reason(info) == errors.SIGNER_MISMATCH
    with pytest.raises(ProtocolError) as info:
        store.check_event_signer(b"\x00" * 16, "140105", 0, NOW)
    assert reason(info) == errors.UNKNOWN_KEY
    with pytest.raises(ProtocolError) as info:
        store.key_for(b"\x00" * 16)
    assert reason(info) == errors.UNKNOWN_KEY


def test_signed_events_verify_through_the_store() -> None:
    store = full_store()
    events = envelope.sign_batch(
        KEYS["140105001"], [("item.feedback", codec.encode({"seq": n})) for n in range(3)]
    )
    assert envelope.verify_all(events, store.key_for) == [None, None, None]
    stranger = envelope.sign(SigningKey.from_seed(b"\x54" * 32), "item.feedback", b"\x80")
    [refused] = envelope.verify_all([stranger], store.key_for)
    assert refused is not None and refused.reason == errors.UNKNOWN_KEY


def test_the_root_rotates_by_cross_signing() -> None:
    store = full_store()
    new_root = SigningKey.from_seed(b"\x55" * 32)
    raw = certs.issue_certificate(
        KEYS["14"],
        node="14",
        name="山西省",
        level="province",
        parent=None,
        public_key=new_root.public_key,
        version=2,
        not_before=NOW,
        not_after=T1,
        from_seq=100,
    ).raw
    store.add_certificate(raw, NOW)
    assert store.is_retired(KEYS["14"].key_id)
    store.check_key(new_root.key_id, NOW)
    # An unpinned self-signed root key is not enough.
    lone = SigningKey.from_seed(b"\x56" * 32)
    self_signed = certs.sign_certificate(lone, cert(lone, node="14", parent=None, version=3))
    with pytest.raises(ProtocolError) as info:
        store.add_certificate(self_signed.raw, NOW)
    assert reason(info) == errors.UNTRUSTED_ROOT
    # A fresh node pinned to the first root follows the rotation.
    assert certs.verify_chain(store.chain("14"), ROOT_FP, NOW).key_id == new_root.key_id


def test_export_and_rebuild_give_the_same_answers() -> None:
    store = full_store()
    store.add_revocation(vectors.revocation_record(), NOW)
    rebuilt = TrustStore.from_records(ROOT_FP, store.export())
    assert rebuilt.export() == store.export()
    assert rebuilt.chain("140105001") == store.chain("140105001")
    assert rebuilt.version_of("140105001") == 2
    later = vectors.REVOKED_AT
    with pytest.raises(ProtocolError) as info:
        rebuilt.check_event_signer(KEYS["140105001"].key_id, "140105001", 42, later)
    assert reason(info) == errors.KEY_REVOKED


def test_add_all_refuses_each_bad_record_alone() -> None:
    store = TrustStore(ROOT_FP)
    results = store.add_all([RECORDS[0], RECORDS[2], RECORDS[1], b"junk", RECORDS[2]], NOW)
    assert [r.reason if r else None for r in results] == [
        None,
        errors.CHAIN_BROKEN,
        None,
        errors.BAD_CERTIFICATE,
        None,
    ]
    not_trust = envelope.sign(KEYS["14"], "item.assign", b"\x80").raw
    with pytest.raises(ProtocolError) as info:
        store.add(not_trust, NOW)
    assert reason(info) == errors.BAD_TYPE


def test_the_root_fingerprint_must_look_like_one() -> None:
    with pytest.raises(ValueError):
        TrustStore("abc")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_gives_a_protocol_error_and_nothing_else(data: bytes) -> None:
    store = full_store()
    try:
        store.add(data, NOW)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(RECORDS[3]) - 1), st.integers(1, 255))
def test_flipping_any_byte_of_a_record_is_refused_or_harmless(index: int, xor: int) -> None:
    store = TrustStore(ROOT_FP)
    for raw in RECORDS[:3]:
        store.add(raw, NOW)
    tampered = bytearray(RECORDS[3])
    tampered[index] ^= xor
    try:
        added = store.add(bytes(tampered), NOW)
    except ProtocolError:
        return
    # Only a re-encoding that still carries the same signed body can pass.
    assert added == certs.parse_certificate(RECORDS[3]).certificate
