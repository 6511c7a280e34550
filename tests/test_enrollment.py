"""Enrollment end to end as pure state transitions, with real keys and real signatures."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from hierarchy import errors
from hierarchy.enrollment import (
    DEFAULT_CODE_TTL_MS,
    MAX_CLOCK_SKEW_MS,
    Enrollment,
    JoinResponse,
    code_hash,
    complete_join,
    make_join_request,
    read_join_request,
)
from hierarchy.errors import HierarchyError
from protocol import certs, envelope
from protocol import errors as perrors
from protocol.certs import TrustStore
from protocol.errors import ProtocolError
from protocol.keys import SigningKey, fingerprint_of

NOW = 1_717_200_000_000
HOUR = 3600 * 1000
PROVINCE = SigningKey.from_seed(b"\x01" * 32)
ROOT_FP = fingerprint_of(PROVINCE.public_key)


def root_store() -> TrustStore:
    store = TrustStore(ROOT_FP)
    raw = certs.issue_certificate(
        PROVINCE,
        node="14",
        name="山西省",
        level="province",
        parent=None,
        public_key=PROVINCE.public_key,
        version=1,
        not_before=NOW - HOUR,
        not_after=NOW + 10 * 365 * 24 * HOUR,
    ).raw
    store.add_certificate(raw, NOW)
    return store


def counting_random() -> Callable[[int], bytes]:
    state = {"n": 0}

    def random_bytes(size: int) -> bytes:
        state["n"] += 1
        return bytes([state["n"]]) * size

    return random_bytes


def refused(call: Callable[[], object]) -> str:
    with pytest.raises(HierarchyError) as info:
        call()
    return info.value.reason


def test_issue_join_verify_then_a_second_join_is_refused() -> None:
    store = root_store()
    book = Enrollment("14")
    code = book.issue_code(node="1401", name="太原市", level="city", now=NOW)
    city = SigningKey.from_seed(b"\x02" * 32)
    request = make_join_request(city, parent="14", node="1401", code=code, now=NOW + 1000)
    response = book.accept_join(request, now=NOW + 2000, parent_key=PROVINCE, trust=store)
    # The child checks the answer against the root it pinned at install.
    wire = response.to_bytes()
    child_store = complete_join(
        wire, key=city, node="1401", root_fingerprint=ROOT_FP, now=NOW + 3000
    )
    cert = child_store.current("1401")
    assert (cert.node, cert.parent, cert.level, cert.version) == ("1401", "14", "city", 1)
    assert cert.key_id == city.key_id
    assert certs.verify_chain(response.chain, ROOT_FP, NOW + 3000) == cert
    assert store.current("1401") == cert  # the parent keeps it too
    # The same code again, even with the same request, is refused.
    again = make_join_request(city, parent="14", node="1401", code=code, now=NOW + 4000)
    assert (
        refused(lambda: book.accept_join(again, now=NOW + 5000, parent_key=PROVINCE, trust=store))
        == errors.CODE_USED
    )
    assert (
        refused(lambda: book.accept_join(request, now=NOW + 5000, parent_key=PROVINCE, trust=store))
        == errors.CODE_USED
    )


def test_a_whole_branch_enrolls_and_the_township_verifies_everything() -> None:
    province_store = root_store()
    keys = {"14": PROVINCE}
    stores = {"14": province_store}
    branch = [("14", "1401", "太原市", "city"), ("1401", "140105", "小店区", "county")]
    branch.append(("140105", "140105001", "坞城街道", "township"))
    now = NOW
    for parent, node, name, level in branch:
        book = Enrollment(parent)
        code = book.issue_code(node=node, name=name, level=level, now=now)
        keys[node] = SigningKey.generate()
        request = make_join_request(keys[node], parent=parent, node=node, code=code, now=now)
        response = book.accept_join(request, now=now, parent_key=keys[parent], trust=stores[parent])
        stores[node] = complete_join(
            response, key=keys[node], node=node, root_fingerprint=ROOT_FP, now=now
        )
        now += HOUR
    township = stores["140105001"]
    assert township.nodes() == ["14", "1401", "140105", "140105001"]
    event = envelope.sign(keys["140105001"], "item.feedback", b"\x80")
    assert envelope.verify_all([event], township.key_for) == [None]
    township.check_event_signer(event.key_id, "140105001", 1, now)
    # Anyone pinned to the root verifies the township from its chain alone.
    assert certs.verify_chain(stores["140105"].chain("140105001"), ROOT_FP, now).node == (
        "140105001"
    )


def join(
    book: Enrollment, store: TrustStore, code: str, *, node: str = "1401", at: int = NOW
) -> JoinResponse:
    key = SigningKey.generate()
    request = make_join_request(key, parent="14", node=node, code=code, now=at)
    return book.accept_join(request, now=at, parent_key=PROVINCE, trust=store)


def test_expired_unknown_and_wrong_child_codes_are_refused() -> None:
    store = root_store()
    book = Enrollment("14")
    code = book.issue_code(node="1401", name="太原市", level="city", now=NOW, ttl_ms=HOUR)
    assert refused(lambda: join(book, store, code, at=NOW + HOUR)) == errors.CODE_EXPIRED
    code = book.issue_code(node="1401", name="太原市", level="city", now=NOW)
    assert refused(lambda: join(book, store, "AAAA-BBBB")) == errors.CODE_UNKNOWN
    assert refused(lambda: join(book, store, code, node="1402")) == errors.WRONG_CHILD
    # Refusals do not consume the code.
    assert join(book, store, code).certificate


def test_a_request_for_another_parent_is_refused() -> None:
    store = root_store()
    book = Enrollment("14")
    code = book.issue_code(node="1401", name="太原市", level="city", now=NOW)
    key = SigningKey.generate()
    request = make_join_request(key, parent="15", node="1401", code=code, now=NOW)
    call = lambda: book.accept_join(request, now=NOW, parent_key=PROVINCE, trust=store)  # noqa: E731
    assert refused(call) == errors.WRONG_PARENT


def test_a_request_without_proof_of_possession_is_refused() -> None:
    store = root_store()
    book = Enrollment("14")
    code = book.issue_code(node="1401", name="太原市", level="city", now=NOW)
    key, thief = SigningKey.generate(), SigningKey.generate()
    honest = envelope.parse(make_join_request(key, parent="14", node="1401", code=code, now=NOW))
    # The thief re-signs the honest body (which names the honest key) with its own key.
    resigned = envelope.sign(thief, honest.type, honest.body).raw
    assert refused(lambda: read_join_request(resigned)) == errors.BAD_PROOF
    # A signature that does not match the body.
    forged = envelope._wire(honest.type, honest.body, honest.key_id, b"\x00" * 64, None)
    assert refused(lambda: read_join_request(forged)) == errors.BAD_PROOF
    assert refused(lambda: read_join_request(b"junk")) == errors.BAD_REQUEST
    call = lambda: book.accept_join(forged, now=NOW, parent_key=PROVINCE, trust=store)  # noqa: E731
    assert refused(call) == errors.BAD_PROOF
    assert book.pending(NOW)  # still usable


def test_a_stale_request_is_refused() -> None:
    store = root_store()
    book = Enrollment("14")
    code = book.issue_code(node="1401", name="太原市", level="city", now=NOW)
    key = SigningKey.generate()
    request = make_join_request(key, parent="14", node="1401", code=code, now=NOW)
    later = NOW + MAX_CLOCK_SKEW_MS + 1
    call = lambda: book.accept_join(request, now=later, parent_key=PROVINCE, trust=store)  # noqa: E731
    assert refused(call) == errors.REQUEST_STALE


def test_codes_are_random_typeable_and_only_their_hash_is_kept() -> None:
    book = Enrollment("14")
    random_bytes = counting_random()
    code = book.issue_code(
        node="1401", name="太原市", level="city", now=NOW, random_bytes=random_bytes
    )
    assert code == "AEAQ-CAIB-AEAQ-CAIB-AEAQ-CAIB-AEAQ-CAIB"
    assert code_hash(code) == code_hash(code.lower().replace("-", " "))
    state = json.dumps(book.export())
    assert code not in state and code.replace("-", "") not in state
    assert code_hash(code).hex() in state
    # A typed code works however it is spaced.
    store = root_store()
    assert join(book, store, code.lower().replace("-", " ")).certificate


def test_a_new_code_replaces_an_unused_one_for_the_same_child() -> None:
    store = root_store()
    book = Enrollment("14")
    first = book.issue_code(node="1401", name="太原市", level="city", now=NOW)
    second = book.issue_code(node="1401", name="太原市", level="city", now=NOW)
    other = book.issue_code(node="1402", name="大同市", level="city", now=NOW)
    assert len(book.pending(NOW)) == 2
    assert refused(lambda: join(book, store, first)) == errors.CODE_UNKNOWN
    join(book, store, second)
    join(book, store, other, node="1402")
    assert book.pending(NOW) == []


def test_state_survives_export_and_import() -> None:
    store = root_store()
    book = Enrollment("14")
    used = book.issue_code(node="1401", name="太原市", level="city", now=NOW)
    pending = book.issue_code(node="1402", name="大同市", level="city", now=NOW)
    join(book, store, used)
    restored = Enrollment.from_dict(json.loads(json.dumps(book.export())))
    assert restored.invitations() == book.invitations()
    trust = TrustStore.from_records(ROOT_FP, store.export())
    assert refused(lambda: join(restored, trust, used)) == errors.CODE_USED
    assert join(restored, trust, pending, node="1402").certificate
    assert refused(lambda: Enrollment.from_dict({"parent": "14"})) == errors.BAD_STATE
    bad = {"parent": "14", "invitations": [{"code_hash": "zz"}]}
    assert refused(lambda: Enrollment.from_dict(bad)) == errors.BAD_STATE


def test_expired_codes_are_forgotten_used_ones_kept() -> None:
    store = root_store()
    book = Enrollment("14")
    join(book, store, book.issue_code(node="1401", name="太原市", level="city", now=NOW))
    book.issue_code(node="1402", name="大同市", level="city", now=NOW)
    assert book.forget_expired(NOW + DEFAULT_CODE_TTL_MS) == 1
    assert [i.node for i in book.invitations()] == ["1401"]


def test_the_child_refuses_an_answer_that_is_not_for_it() -> None:
    store = root_store()
    book = Enrollment("14")
    code = book.issue_code(node="1401", name="太原市", level="city", now=NOW)
    response = join(book, store, code)
    mine = SigningKey.generate()
    call = lambda: complete_join(  # noqa: E731
        response, key=mine, node="1401", root_fingerprint=ROOT_FP, now=NOW
    )
    assert refused(call) == errors.BAD_RESPONSE
    other_root = fingerprint_of(SigningKey.generate().public_key)
    call = lambda: complete_join(  # noqa: E731
        response, key=mine, node="1401", root_fingerprint=other_root, now=NOW
    )
    assert refused(call) == perrors.UNTRUSTED_ROOT
    assert refused(lambda: JoinResponse.from_bytes(b"\x93\x01\x02\x03")) == errors.BAD_RESPONSE


def test_a_lost_key_is_replaced_by_enrolling_again_from_a_later_seq() -> None:
    store = root_store()
    book = Enrollment("14")
    old = SigningKey.generate()
    code = book.issue_code(node="1401", name="太原市", level="city", now=NOW)
    book.accept_join(
        make_join_request(old, parent="14", node="1401", code=code, now=NOW),
        now=NOW,
        parent_key=PROVINCE,
        trust=store,
    )
    code = book.issue_code(node="1401", name="太原市", level="city", now=NOW, from_seq=500)
    new = SigningKey.generate()
    response = book.accept_join(
        make_join_request(new, parent="14", node="1401", code=code, now=NOW),
        now=NOW,
        parent_key=PROVINCE,
        trust=store,
    )
    child = complete_join(response, key=new, node="1401", root_fingerprint=ROOT_FP, now=NOW)
    assert child.current("1401").version == 2
    child.check_event_signer(old.key_id, "1401", 499, NOW)
    child.check_event_signer(new.key_id, "1401", 500, NOW)
    with pytest.raises(ProtocolError) as info:
        child.check_event_signer(old.key_id, "1401", 500, NOW)
    assert info.value.reason == perrors.KEY_RETIRED
