"""Signed envelopes: verification on exact bytes, Merkle batches, strict parsing, vectors."""

from __future__ import annotations

import hashlib
import json

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec, envelope, errors
from protocol.errors import ProtocolError
from protocol.keys import SigningKey, VerifyKey
from tests.vectors import envelope as vectors

KEY = SigningKey.from_seed(b"\x07" * 32)
OTHER = SigningKey.from_seed(b"\x08" * 32)


def lookup(key_id: bytes) -> VerifyKey:
    for k in (KEY, OTHER):
        if k.key_id == key_id:
            return k.verify_key
    raise ProtocolError(errors.UNKNOWN_KEY)


def test_checked_in_vectors_match_the_builder() -> None:
    assert json.loads(vectors.PATH.read_text(encoding="utf-8")) == vectors.build()


def test_vectors_verify_from_their_raw_bytes() -> None:
    data = json.loads(vectors.PATH.read_text(encoding="utf-8"))
    key = VerifyKey(bytes.fromhex(data["public_key"]))
    for item in [data["single"], *data["batch"]]:
        env = envelope.parse(bytes.fromhex(item["raw"]))
        env.verify(key)
        assert env.event_id == item["event_id"]
        assert env.signed_message().hex() == item["signed_message"]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100])
def test_every_batched_envelope_verifies_alone(size: int) -> None:
    envs = envelope.sign_batch(KEY, [("t.x", codec.encode({"n": n})) for n in range(size)])
    assert len({e.signature for e in envs}) == 1
    for env in envs:
        parsed = envelope.parse(env.raw)
        parsed.verify(KEY.verify_key)
        assert parsed == env


def test_tampering_is_detected() -> None:
    env = envelope.sign(KEY, "t.x", b"body")
    forged = envelope.Envelope(
        type="t.x", body=b"bodz", key_id=env.key_id, signature=env.signature,
        proof=None, raw=b"",
    )
    with pytest.raises(ProtocolError) as caught:
        forged.verify(KEY.verify_key)
    assert caught.value.reason == errors.BAD_SIGNATURE
    retyped = envelope.Envelope(
        type="t.y", body=b"body", key_id=env.key_id, signature=env.signature,
        proof=None, raw=b"",
    )
    with pytest.raises(ProtocolError):
        retyped.verify(KEY.verify_key)
    with pytest.raises(ProtocolError) as caught:
        env.verify(OTHER.verify_key)
    assert caught.value.reason == errors.UNKNOWN_KEY


def test_moving_an_event_to_another_batch_position_fails() -> None:
    envs = envelope.sign_batch(KEY, [("t.x", bytes([n])) for n in range(4)])
    a, b = envs[0], envs[1]
    swapped = envelope.Envelope(
        type=a.type, body=a.body, key_id=a.key_id, signature=a.signature,
        proof=b.proof, raw=b"",
    )
    with pytest.raises(ProtocolError):
        swapped.verify(KEY.verify_key)


def test_verify_all_refuses_only_the_bad_one() -> None:
    envs = envelope.sign_batch(KEY, [("t.x", bytes([n])) for n in range(5)])
    bad = envelope.Envelope(
        type="t.x", body=b"evil", key_id=envs[2].key_id, signature=envs[2].signature,
        proof=envs[2].proof, raw=b"",
    )
    unknown = envelope.sign(SigningKey.from_seed(b"\x09" * 32), "t.x", b"?")
    result = envelope.verify_all([*envs[:2], bad, *envs[3:], unknown], lookup)
    assert [r.reason if r else None for r in result] == [
        None, None, errors.BAD_SIGNATURE, None, None, errors.UNKNOWN_KEY
    ]


def test_event_id_is_the_hash_of_the_exact_bytes() -> None:
    env = envelope.sign(KEY, "t.x", b"body")
    again = envelope.sign(KEY, "t.x", b"body")  # Ed25519 is deterministic
    assert env.event_id == again.event_id
    assert env.event_id != envelope.sign(KEY, "t.x", b"bodY").event_id


def test_parse_refuses_bad_shapes() -> None:
    good = envelope.sign(KEY, "t.x", b"body")
    base = codec.decode(good.raw)
    assert isinstance(base, dict)

    def reason(**changes: object) -> str:
        value = {**base, **changes}
        for k, v in list(value.items()):
            if v is None:
                del value[k]
        with pytest.raises(ProtocolError) as caught:
            envelope.parse(codec.encode(value))  # type: ignore[arg-type]
        return caught.value.reason

    assert reason(v=2) == errors.UNKNOWN_VERSION
    assert reason(v=None) == errors.UNKNOWN_VERSION
    assert reason(t=None) == errors.BAD_ENVELOPE
    assert reason(x=1) == errors.BAD_ENVELOPE
    assert reason(t="Bad Type") == errors.BAD_TYPE
    assert reason(t=b"t.x") == errors.BAD_TYPE
    assert reason(k=b"short") == errors.BAD_ENVELOPE
    assert reason(s=b"short") == errors.BAD_ENVELOPE
    assert reason(b="text") == errors.BAD_ENVELOPE
    assert reason(m={"i": 0, "n": 1, "p": []}) == errors.BAD_MERKLE_PROOF
    assert reason(m={"i": 5, "n": 2, "p": []}) == errors.BAD_MERKLE_PROOF
    assert reason(m=[1]) == errors.BAD_MERKLE_PROOF
    with pytest.raises(ProtocolError) as caught:
        envelope.parse(codec.encode([1, 2]))
    assert caught.value.reason == errors.BAD_ENVELOPE


@settings(max_examples=300)
@given(st.data())
def test_mutated_envelopes_never_raise_anything_else(data: st.DataObject) -> None:
    envs = envelope.sign_batch(KEY, [("t.x", bytes([n])) for n in range(3)])
    raw = bytearray(data.draw(st.sampled_from(envs)).raw)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] ^= data.draw(st.integers(1, 255))
    try:
        env = envelope.parse(bytes(raw))
        env.verify(lookup(env.key_id))
    except ProtocolError:
        return
    # A mutation that still verifies must have left type, body and signer intact.
    assert (env.type, env.body[:1]) in {(e.type, e.body[:1]) for e in envs}


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    try:
        envelope.parse(data)
    except ProtocolError:
        pass


def test_codec_reasons_come_before_envelope_checks() -> None:
    """parse skips the codec's depth and float walk on the way to an envelope; a refused
    envelope still gets the reason a full decode gives first."""
    good = envelope.sign_batch(KEY, [("t.x", b"a"), ("t.x", b"b")])[0]
    base = codec.decode(good.raw)
    assert isinstance(base, dict)

    def reason(**changes: object) -> str:
        with pytest.raises(ProtocolError) as caught:
            envelope.parse(msgpack.packb({**base, **changes}, use_bin_type=True))
        return caught.value.reason

    assert reason(x=1.5) == errors.FLOAT_NOT_ALLOWED
    assert reason(v=1.0) == errors.FLOAT_NOT_ALLOWED
    assert reason(m={"i": 0, "n": 2.0, "p": []}) == errors.FLOAT_NOT_ALLOWED
    assert reason(m={"i": 0, "n": 2, "p": [[b"x"]]}) == errors.TOO_DEEP
    assert reason(t=[[["x"]]]) == errors.TOO_DEEP


def test_verify_all_shares_inner_hashes_between_proofs() -> None:
    """verify_all hashes each inner node of a batch once; a forged path must still fail alone."""
    envs = envelope.sign_batch(KEY, [("t.x", bytes([n])) for n in range(100)])
    for env in envs:
        assert env.signed_message(envelope.node_memo()) == env.signed_message()
    proof = envs[40].proof
    assert proof is not None
    forged_path = (proof.path[0], bytes(32), *proof.path[2:])
    forged = envelope.Envelope(
        type="t.x", body=envs[40].body, key_id=KEY.key_id, signature=envs[40].signature,
        proof=envelope.MerkleProof(index=proof.index, size=proof.size, path=forged_path),
        raw=b"",
    )
    other = envelope.sign_batch(KEY, [("t.x", bytes([n])) for n in range(100, 200)])
    verdicts = envelope.verify_all([*envs[:40], forged, *envs[41:], *other[:3]], lookup)
    assert [i for i, v in enumerate(verdicts) if v is not None] == [40]
    assert verdicts[40] is not None and verdicts[40].reason == errors.BAD_SIGNATURE


@settings(max_examples=200)
@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz._-", min_size=1, max_size=64),
    st.binary(max_size=600),
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**64 - 1),
)
def test_the_written_out_messages_are_their_pae(
    type_: str, body: bytes, root: bytes, size: int
) -> None:
    """event_message, leaf_hash and batch_message build their PAE by hand (they run for
    every received event): they must give exactly what pae() gives."""
    t = type_.encode("ascii")
    assert envelope.event_message(type_, body) == envelope.pae([envelope.EVENT_DOMAIN, t, body])
    assert envelope.leaf_hash(type_, body) == hashlib.sha256(
        b"\x00" + envelope.pae([envelope.EVENT_DOMAIN, t, body])
    ).digest()
    assert envelope.batch_message(root, size) == envelope.pae(
        [envelope.BATCH_DOMAIN, root, size.to_bytes(8, "little")]
    )
    assert envelope.pae([b"ab", b""]) == (
        (2).to_bytes(8, "little") + (2).to_bytes(8, "little") + b"ab" + bytes(8)
    )
