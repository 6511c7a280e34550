"""Key rotation and revocation as state transitions: history verifies, the future does not."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hierarchy import errors
from hierarchy.errors import HierarchyError
from hierarchy.keys import (
    accept_rotation,
    certify_rotation,
    check_revocable,
    make_rotation_request,
    read_rotation_request,
    reissue,
    reissue_signed_by,
    rename,
    revoke,
    rotate,
)
from protocol import certs, codec, envelope
from protocol import errors as perrors
from protocol.certs import TrustStore
from protocol.errors import ProtocolError
from protocol.keys import SigningKey
from tests.vectors import cert_chain as vectors

KEYS = vectors.keys()
NOW = vectors.NOW
ROOT_FP = vectors.build()["root_fingerprint"]
TOWNSHIP, COUNTY, CITY = "140105001", "140105", "1401"
DAY = 24 * 3600 * 1000


def store() -> TrustStore:
    trust = TrustStore(ROOT_FP)
    for raw in vectors.certificate_records():
        trust.add_certificate(raw, NOW)
    return trust


def protocol_reason(call: Callable[[], object]) -> str:
    with pytest.raises(ProtocolError) as info:
        call()
    return info.value.reason


def hierarchy_reason(call: Callable[[], object]) -> str:
    with pytest.raises(HierarchyError) as info:
        call()
    return info.value.reason


# ------------------------------------------------------------------ rotation


def test_rotation_keeps_the_old_key_for_history_only() -> None:
    trust = store()
    old, new = KEYS[TOWNSHIP], SigningKey.from_seed(b"\x61" * 32)
    request = make_rotation_request(old, new, node=TOWNSHIP, from_seq=100, now=NOW)
    chain = accept_rotation(request, trust=trust, issuer=KEYS[COUNTY], now=NOW)
    # Anyone receiving the chain learns both keys, with their ranges.
    other = TrustStore.from_records(ROOT_FP, chain)
    for t in (trust, other):
        assert t.current(TOWNSHIP).version == 2
        assert t.current(TOWNSHIP).key_id == new.key_id
        t.check_event_signer(old.key_id, TOWNSHIP, 99, NOW)
        t.check_event_signer(new.key_id, TOWNSHIP, 100, NOW)
        late_old = lambda t=t: t.check_event_signer(old.key_id, TOWNSHIP, 100, NOW)  # noqa: E731
        early_new = lambda t=t: t.check_event_signer(new.key_id, TOWNSHIP, 99, NOW)  # noqa: E731
        assert protocol_reason(late_old) == perrors.KEY_RETIRED
        assert protocol_reason(early_new) == perrors.KEY_NOT_ACTIVE
    # A retired key cannot authorise anything new either.
    again = make_rotation_request(old, SigningKey.generate(), node=TOWNSHIP, from_seq=200, now=NOW)
    call = lambda: accept_rotation(again, trust=trust, issuer=KEYS[COUNTY], now=NOW)  # noqa: E731
    assert hierarchy_reason(call) == errors.NOT_CURRENT_KEY


def test_a_rotation_asked_again_is_answered_again() -> None:
    """The child lost the answer: the same keys and from_seq get the same chain, no
    new version; a different from_seq for the certified key is refused."""
    trust = store()
    old, new = KEYS[TOWNSHIP], SigningKey.generate()
    request = make_rotation_request(old, new, node=TOWNSHIP, from_seq=30, now=NOW)
    record, chain = certify_rotation(request, trust=trust, issuer=KEYS[COUNTY], now=NOW)
    assert record is not None and record in chain
    again = make_rotation_request(old, new, node=TOWNSHIP, from_seq=30, now=NOW + 1000)
    assert certify_rotation(again, trust=trust, issuer=KEYS[COUNTY], now=NOW + 1000) == (
        None, chain,
    )
    assert trust.version_of(TOWNSHIP) == 2
    moved = make_rotation_request(old, new, node=TOWNSHIP, from_seq=31, now=NOW)
    call = lambda: certify_rotation(moved, trust=trust, issuer=KEYS[COUNTY], now=NOW)  # noqa: E731
    assert hierarchy_reason(call) == errors.NOT_CURRENT_KEY
    # Only a former key of the node vouches for a retry.
    forged = make_rotation_request(
        KEYS[COUNTY], new, node=TOWNSHIP, from_seq=30, now=NOW
    )
    call = lambda: certify_rotation(forged, trust=trust, issuer=KEYS[COUNTY], now=NOW)  # noqa: E731
    assert hierarchy_reason(call) == errors.NOT_CURRENT_KEY
    assert trust.version_of(TOWNSHIP) == 2


def test_a_new_name_is_a_new_certificate_of_the_same_key() -> None:
    trust = store()
    before = trust.current(TOWNSHIP)
    raw = rename(trust, KEYS[COUNTY], node=TOWNSHIP, name="坞城街道（新）", now=NOW)
    after = trust.current(TOWNSHIP)
    assert certs.parse_certificate(raw).certificate == after
    assert (after.name, after.version) == ("坞城街道（新）", before.version + 1)
    assert (after.key_id, after.from_seq, after.not_after) == (
        before.key_id, before.from_seq, before.not_after,
    )
    trust.check_event_signer(KEYS[TOWNSHIP].key_id, TOWNSHIP, 1, NOW)
    by_city = lambda: rename(trust, KEYS[CITY], node=TOWNSHIP, name="x", now=NOW)  # noqa: E731
    assert hierarchy_reason(by_city) == errors.WRONG_PARENT
    # The root names itself.
    rename(trust, KEYS["14"], node="14", name="山西", now=NOW)
    assert trust.current("14").name == "山西"


def test_who_may_be_revoked_by_whom() -> None:
    trust = store()
    assert check_revocable(trust, parent=COUNTY, node=TOWNSHIP).node == TOWNSHIP
    for parent, node, reason in (
        (COUNTY, "140105009", errors.UNKNOWN_NODE),
        (CITY, TOWNSHIP, errors.WRONG_CHILD),  # a grandchild
        (COUNTY, COUNTY, errors.WRONG_CHILD),  # itself
        ("14", "14", errors.WRONG_CHILD),  # the root
    ):
        call = lambda p=parent, n=node: check_revocable(trust, parent=p, node=n)  # noqa: E731
        assert hierarchy_reason(call) == reason, (parent, node)
    revoke(trust, KEYS[COUNTY], node=TOWNSHIP, key_id=KEYS[TOWNSHIP].key_id, last_seq=3, now=NOW)
    call = lambda: check_revocable(trust, parent=COUNTY, node=TOWNSHIP)  # noqa: E731
    assert hierarchy_reason(call) == errors.ALREADY_REVOKED
    # A new key (enrolled again) may be revoked in its turn.
    rotate(
        trust, KEYS[COUNTY], node=TOWNSHIP, public_key=SigningKey.generate().public_key,
        from_seq=4, now=NOW,
    )
    assert check_revocable(trust, parent=COUNTY, node=TOWNSHIP).from_seq == 4


def test_a_retired_key_still_verifies_history_after_its_certificate_expires() -> None:
    trust = store()
    new = SigningKey.generate()
    rotate(trust, KEYS[COUNTY], node=TOWNSHIP, public_key=new.public_key, from_seq=10, now=NOW)
    late = vectors.NOT_AFTER + DAY  # the old certificate (and the chain's) expired by now
    with pytest.raises(ProtocolError):
        trust.check_event_signer(KEYS[TOWNSHIP].key_id, TOWNSHIP, 5, late)
    # Renew the ancestors; the retired township key needs nothing more.
    for node, issuer in ((COUNTY, KEYS[CITY]), (CITY, KEYS["14"])):
        reissue(trust, issuer, node=node, now=NOW, not_after=late + DAY)
    root = certs.issue_certificate(
        KEYS["14"],
        node="14",
        name="山西省",
        level="province",
        parent=None,
        public_key=KEYS["14"].public_key,
        version=2,
        not_before=NOW,
        not_after=late + DAY,
    )
    trust.add_certificate(root.raw, NOW)
    trust.check_event_signer(KEYS[TOWNSHIP].key_id, TOWNSHIP, 5, late)
    assert (
        protocol_reason(lambda: trust.check_event_signer(new.key_id, TOWNSHIP, 10, late))
        == perrors.CERT_EXPIRED
    )


def test_rotation_requests_need_both_signatures() -> None:
    trust = store()
    old, new = KEYS[TOWNSHIP], SigningKey.generate()
    good = make_rotation_request(old, new, node=TOWNSHIP, from_seq=5, now=NOW)
    assert read_rotation_request(good, trust, NOW).public_key == new.public_key
    # Signed by a stranger instead of the current key.
    stranger = make_rotation_request(SigningKey.generate(), new, node=TOWNSHIP, from_seq=5, now=NOW)
    assert hierarchy_reason(lambda: read_rotation_request(stranger, trust, NOW)) == (
        errors.NOT_CURRENT_KEY
    )
    # The new key's half signed by another key: no proof of possession.
    mixed = make_rotation_request(old, SigningKey.generate(), node=TOWNSHIP, from_seq=5, now=NOW)
    halves = codec.decode(mixed)
    assert isinstance(halves, dict)
    body = envelope.parse(halves["old"]).body  # type: ignore[arg-type]
    swapped = codec.encode(
        {"old": halves["old"], "new": envelope.sign(new, "duban.rotate", body).raw}
    )
    assert hierarchy_reason(lambda: read_rotation_request(swapped, trust, NOW)) == errors.BAD_PROOF
    assert hierarchy_reason(lambda: read_rotation_request(b"junk", trust, NOW)) == (
        errors.BAD_ROTATION
    )
    stale = NOW + 3600 * 1000
    assert hierarchy_reason(lambda: read_rotation_request(good, trust, stale)) == (
        errors.REQUEST_STALE
    )


def test_only_the_parents_current_key_certifies() -> None:
    trust = store()
    new = SigningKey.generate()
    by_city = lambda: rotate(  # noqa: E731
        trust, KEYS[CITY], node=TOWNSHIP, public_key=new.public_key, from_seq=5, now=NOW
    )
    assert hierarchy_reason(by_city) == errors.WRONG_PARENT
    by_stranger = lambda: rotate(  # noqa: E731
        trust, SigningKey.generate(), node=TOWNSHIP, public_key=new.public_key, from_seq=5, now=NOW
    )
    assert hierarchy_reason(by_stranger) == perrors.UNKNOWN_KEY


def test_from_seq_never_goes_backwards_and_keys_are_never_reused() -> None:
    trust = store()
    first = SigningKey.generate()
    rotate(trust, KEYS[COUNTY], node=TOWNSHIP, public_key=first.public_key, from_seq=50, now=NOW)
    back = lambda: rotate(  # noqa: E731
        trust,
        KEYS[COUNTY],
        node=TOWNSHIP,
        public_key=SigningKey.generate().public_key,
        from_seq=49,
        now=NOW,
    )
    assert hierarchy_reason(back) == perrors.BAD_CERTIFICATE
    reuse = lambda: rotate(  # noqa: E731
        trust,
        KEYS[COUNTY],
        node=TOWNSHIP,
        public_key=KEYS[TOWNSHIP].public_key,
        from_seq=60,
        now=NOW,
    )
    assert hierarchy_reason(reuse) == perrors.KEY_REUSED
    assert trust.version_of(TOWNSHIP) == 2


# ---------------------------------------------------------------- revocation


def test_revocation_refuses_later_events_and_keeps_earlier_ones() -> None:
    trust = store()
    key = KEYS[TOWNSHIP].key_id
    raw = revoke(trust, KEYS[COUNTY], node=TOWNSHIP, key_id=key, last_seq=41, now=NOW)
    assert certs.parse_revocation(raw).revocation.version == 2
    trust.check_event_signer(key, TOWNSHIP, 41, NOW)
    call = lambda: trust.check_event_signer(key, TOWNSHIP, 42, NOW)  # noqa: E731
    assert protocol_reason(call) == perrors.KEY_REVOKED
    # The record travels: a node far away that gets the chain refuses too.
    far = TrustStore.from_records(ROOT_FP, trust.chain(TOWNSHIP))
    far.check_event_signer(key, TOWNSHIP, 1, NOW)
    assert protocol_reason(lambda: far.check_event_signer(key, TOWNSHIP, 42, NOW)) == (
        perrors.KEY_REVOKED
    )
    # A revoked key cannot authorise its own rotation.
    request = make_rotation_request(
        KEYS[TOWNSHIP], SigningKey.generate(), node=TOWNSHIP, from_seq=42, now=NOW
    )
    call = lambda: accept_rotation(request, trust=trust, issuer=KEYS[COUNTY], now=NOW)  # noqa: E731
    assert hierarchy_reason(call) == perrors.KEY_REVOKED


def test_a_scheduled_revocation_applies_from_its_effective_time() -> None:
    trust = store()
    key = KEYS[TOWNSHIP].key_id
    revoke(
        trust, KEYS[COUNTY], node=TOWNSHIP, key_id=key, last_seq=10, now=NOW, effective_at=NOW + DAY
    )
    trust.check_event_signer(key, TOWNSHIP, 11, NOW + DAY - 1)
    late = lambda: trust.check_event_signer(key, TOWNSHIP, 11, NOW + DAY)  # noqa: E731
    assert protocol_reason(late) == perrors.KEY_REVOKED


def test_revocation_versions_never_go_back() -> None:
    trust = store()
    trust.add_revocation(vectors.revocation_record(), NOW)  # version 2
    replay = certs.issue_revocation(
        KEYS[COUNTY],
        node=TOWNSHIP,
        key_id=KEYS[TOWNSHIP].key_id,
        version=2,
        effective_at=NOW,
        last_seq=5,
    ).raw
    assert protocol_reason(lambda: trust.add_revocation(replay, NOW)) == perrors.VERSION_REGRESSION
    old_cert = certs.issue_certificate(
        KEYS[COUNTY],
        node=TOWNSHIP,
        name="坞城街道",
        level="township",
        parent=COUNTY,
        public_key=SigningKey.generate().public_key,
        version=2,
        not_before=NOW,
        not_after=vectors.NOT_AFTER,
        from_seq=42,
    ).raw
    assert protocol_reason(lambda: trust.add_certificate(old_cert, NOW)) == (
        perrors.VERSION_REGRESSION
    )
    assert trust.version_of(TOWNSHIP) == 2


def test_who_may_sign_a_revocation() -> None:
    trust = store()
    target = KEYS[TOWNSHIP].key_id

    def by(key: SigningKey, node: str = TOWNSHIP, key_id: bytes = target) -> Callable[[], object]:
        raw = certs.issue_revocation(
            key, node=node, key_id=key_id, version=9, effective_at=NOW, last_seq=0
        ).raw
        return lambda: trust.add_revocation(raw, NOW)

    assert protocol_reason(by(KEYS[CITY])) == perrors.SIGNER_NOT_PARENT  # grandparent
    assert protocol_reason(by(KEYS[TOWNSHIP])) == perrors.SIGNER_NOT_PARENT  # itself
    assert protocol_reason(by(SigningKey.generate())) == perrors.UNKNOWN_SIGNER
    assert protocol_reason(by(KEYS[COUNTY], node="140105002")) == perrors.UNKNOWN_NODE
    assert protocol_reason(by(KEYS[COUNTY], key_id=KEYS[COUNTY].key_id)) == perrors.UNKNOWN_KEY
    assert protocol_reason(by(KEYS["14"], node="14", key_id=KEYS["14"].key_id)) == (
        perrors.BAD_REVOCATION
    )


def test_revoking_a_parent_key_needs_the_children_reissued() -> None:
    trust = store()
    county_old = KEYS[COUNTY]
    # The city revokes the county's key and the county re-enrolls with a new one.
    revoke(trust, KEYS[CITY], node=COUNTY, key_id=county_old.key_id, last_seq=7, now=NOW)
    county_new = SigningKey.generate()
    rotate(trust, KEYS[CITY], node=COUNTY, public_key=county_new.public_key, from_seq=8, now=NOW)
    # What the revoked key certified no longer verifies...
    call = lambda: trust.check_event_signer(KEYS[TOWNSHIP].key_id, TOWNSHIP, 1, NOW)  # noqa: E731
    assert protocol_reason(call) == perrors.KEY_REVOKED
    # ...until the county re-certifies its children with its new key.
    reissued = reissue_signed_by(trust, county_new, old_key_id=county_old.key_id, now=NOW)
    assert [certs.parse_certificate(r).certificate.node for r in reissued] == [TOWNSHIP]
    trust.check_event_signer(KEYS[TOWNSHIP].key_id, TOWNSHIP, 1, NOW)
    assert trust.current(TOWNSHIP).version == 2
    # The revoked key signs nothing new, certificates included.
    rogue = SigningKey.generate()
    forged = certs.sign_certificate(
        county_old,
        certs.Certificate.for_key(
            node="140105002",
            name="假镇",
            level="township",
            parent=COUNTY,
            public_key=rogue.public_key,
            version=1,
            not_before=NOW,
            not_after=vectors.NOT_AFTER,
        ),
    ).raw
    assert protocol_reason(lambda: trust.add_certificate(forged, NOW)) == perrors.KEY_REVOKED
    # The county's own history up to seq 7 still verifies.
    trust.check_event_signer(county_old.key_id, COUNTY, 7, NOW)
    # And the whole story rebuilds from the records, anywhere.
    rebuilt = TrustStore.from_records(ROOT_FP, trust.export())
    rebuilt.check_event_signer(KEYS[TOWNSHIP].key_id, TOWNSHIP, 1, NOW)
    assert rebuilt.export() == trust.export()


def test_renewal_extends_validity_with_the_same_key() -> None:
    trust = store()
    late = vectors.NOT_AFTER + DAY
    for node, issuer in ((CITY, KEYS["14"]), (COUNTY, KEYS[CITY]), (TOWNSHIP, KEYS[COUNTY])):
        reissue(trust, issuer, node=node, now=NOW, not_after=late + DAY)
    check = lambda: trust.check_event_signer(KEYS[TOWNSHIP].key_id, TOWNSHIP, 3, late)  # noqa: E731
    assert protocol_reason(check) == perrors.CERT_EXPIRED  # the root itself still expires
    root = certs.issue_certificate(
        KEYS["14"],
        node="14",
        name="山西省",
        level="province",
        parent=None,
        public_key=KEYS["14"].public_key,
        version=2,
        not_before=NOW,
        not_after=late + DAY,
    )
    trust.add_certificate(root.raw, NOW)
    check()
    assert trust.current(TOWNSHIP).from_seq == 0
    assert trust.current(TOWNSHIP).version == 2
