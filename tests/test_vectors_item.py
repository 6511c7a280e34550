"""The checked-in item history vector: reproducible, verifiable, and folds to its state."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType

from protocol import codec, envelope
from protocol.events import decode_event, encode_event
from protocol.fold import fold
from protocol.keys import SigningKey, VerifyKey

VECTORS = Path(__file__).parent / "vectors"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("item_history", VECTORS / "item_history.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _recorded() -> dict[str, object]:
    data = json.loads((VECTORS / "item_history.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_checked_in_vector_matches_build() -> None:
    assert _recorded() == _module().build()


def test_envelopes_verify_and_fold_to_the_recorded_state() -> None:
    data = _recorded()
    nodes = data["nodes"]
    assert isinstance(nodes, dict)
    keys = {}
    for node, info in nodes.items():
        key = VerifyKey(bytes.fromhex(info["public_key"]))
        assert key.key_id.hex() == info["key_id"]
        assert SigningKey.from_seed(bytes.fromhex(info["seed"])).public_key == key.public_key
        keys[key.key_id] = (node, key)
    pairs = []
    events = data["events"]
    assert isinstance(events, list)
    for entry in events:
        raw = bytes.fromhex(entry["envelope"])
        env = envelope.parse(raw)
        signer, key = keys[env.key_id]
        env.verify(key)
        assert env.event_id == entry["event_id"] == hashlib.sha256(raw).hexdigest()
        assert env.type == entry["type"] and signer == entry["signer"]
        event = decode_event(env.type, env.body)
        assert event.origin == signer
        assert encode_event(event) == (env.type, env.body)  # our encoding is deterministic
        assert codec.decode(env.body) is not None
        pairs.append((env.event_id, event))
    state = fold(pairs)
    assert state.to_dict() == data["state"]
    assert state.status == "closed" and state.returns == 1
    assert [reason for _, reason in state.refused] == ["not_assigner"]
