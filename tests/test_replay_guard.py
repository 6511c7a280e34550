"""The replay guard of signed sync requests (node/sync/auth.py): bounded, and one
child's flood never makes the guard forget another child's nonces."""

from __future__ import annotations

import base64
import os

import pytest

from node.sync.auth import AuthError, ReplayGuard, make_header, read_header
from protocol import codec, envelope
from protocol.keys import SigningKey

WINDOW = 300_000
NOW = 10**12


def test_a_flood_from_one_child_never_evicts_another_childs_nonces() -> None:
    guard = ReplayGuard(WINDOW, capacity=100)
    honest = os.urandom(16)
    guard.check(honest, NOW, NOW, "140101")
    for _ in range(1_000):  # a hostile sibling, each request fresh and signed
        guard.check(os.urandom(16), NOW, NOW + 1, "140102")
    with pytest.raises(AuthError) as caught:
        guard.check(honest, NOW, NOW + 2, "140101")  # a captured request, replayed
    assert caught.value.reason == "replayed"


def test_a_childs_own_memory_is_bounded() -> None:
    guard = ReplayGuard(WINDOW, capacity=100)
    for _ in range(1_000):
        guard.check(os.urandom(16), NOW, NOW, "140102")
    assert sum(len(seen) for seen in guard._seen.values()) <= 100


@pytest.mark.parametrize("size", [0, 1, 15, 17, 64])
def test_a_nonce_is_16_bytes(size: int) -> None:
    key = SigningKey.generate()
    header = make_header(key, node="140101", parent="1401", method="GET",
                         target="/sync/v1/hello", body=b"", now_ms=NOW)
    env = envelope.parse(base64.urlsafe_b64decode(header))
    claim = codec.decode(env.body)
    assert isinstance(claim, dict)
    claim["nonce"] = os.urandom(size)
    forged = envelope.sign(key, env.type, codec.encode(claim)).raw
    with pytest.raises(AuthError) as caught:
        read_header(base64.urlsafe_b64encode(forged).decode())
    assert caught.value.reason == "bad_auth"
