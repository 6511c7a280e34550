"""Known-answer vector: one item's whole signed history and its folded state.

The province "14" assigns a major item to the township "140105001" just before
the 2026 National Day holiday (working-day calendar); the township deploys, the
province urges it (催办), the township reports, a provincial leader writes an
instruction (批示), the township submits a plan that the province approves,
reports a milestone answering the instruction, asks for an extension that the
province approves (the resolve deadline moves), resolves, is returned once,
resolves again, is accepted with the grade excellent (优秀; the rules' default
after a return is qualified, so the province says why) and the province closes
the item. A last event, the township trying to close the item itself, shows a
refusal. Keys come from fixed seeds and Ed25519 is deterministic, so every byte
is reproducible: another implementation must produce the same envelopes, event ids and state.

Run ``python tests/vectors/item_history.py`` to regenerate item_history.json.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from protocol import codec, envelope
from protocol.events import (
    Assigned,
    Closed,
    Deployed,
    Event,
    ExtensionDecided,
    ExtensionRequested,
    Feedback,
    FileRef,
    Instructed,
    Milestone,
    PlanDecided,
    PlanSubmitted,
    Resolved,
    Reviewed,
    Urged,
    encode_event,
)
from protocol.fold import fold
from protocol.keys import SigningKey
from protocol.rules import CHINA_TZ, compute_deadlines

PROVINCE = "14"
TOWNSHIP = "140105001"
JSON_PATH = Path(__file__).with_suffix(".json")


def seed(node: str) -> bytes:
    return hashlib.sha256(f"duban/vector/node/{node}".encode()).digest()


def china_ms(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=CHINA_TZ).timestamp()) * 1000


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def keys() -> dict[str, SigningKey]:
    return {node: SigningKey.from_seed(seed(node)) for node in (PROVINCE, TOWNSHIP)}


def events() -> list[Event]:
    """The history, in the order the parties wrote it (Lamport clocks 1, 2, ...)."""
    history = _history()
    history = [replace(e, lamport=i) for i, e in enumerate(history, start=1)]
    # The milestone report answers the instruction: it names the instruction's event id.
    # The decision names the request's event id.
    [instruction] = [e for e in history if isinstance(e, Instructed)]
    [request] = [e for e in history if isinstance(e, ExtensionRequested)]
    signers = keys()
    answered = envelope.sign(signers[PROVINCE], *encode_event(instruction)).event_id
    asked = envelope.sign(signers[TOWNSHIP], *encode_event(request)).event_id
    out: list[Event] = []
    for e in history:
        if isinstance(e, Feedback) and e.milestone == 0:
            e = replace(e, answers=answered)
        elif isinstance(e, ExtensionDecided):
            e = replace(e, request=asked)
        out.append(e)
    return out


def _history() -> list[Event]:
    item = f"{PROVINCE}-000123"
    assigned_at = china_ms(2026, 9, 29, 10)
    deadlines = compute_deadlines(assigned_at=assigned_at, item_class="major", calendar="working")
    down = {"item": item, "origin": PROVINCE, "to": TOWNSHIP}
    up = {"item": item, "origin": TOWNSHIP, "to": PROVINCE}
    photo = hashlib.sha256(b"photo: survey of the drains").digest()
    report = hashlib.sha256(b"report: acceptance test").digest()
    return [
        Assigned(
            **down,
            seq=123,
            lamport=1,
            at=assigned_at,
            title="推进老旧小区雨污分流改造",
            description="完成辖区内老旧小区雨污分流改造,消除汛期内涝隐患。",
            board="engineering",
            source="executive",
            item_class="major",
            assigner=PROVINCE,
            assignee=TOWNSHIP,
            lead_unit="office",
            co_units=("construction", "finance"),
            calendar="working",
            deadlines=deadlines.deadlines,
        ),
        Deployed(
            **up, seq=41, lamport=2, at=china_ms(2026, 9, 29, 16, 30), note="已召开专题会部署"
        ),
        Urged(
            **down, seq=124, lamport=1, at=china_ms(2026, 10, 8, 9), author="省政府督查室",
            text="请抓紧反馈办理情况",
        ),
        Feedback(
            **up,
            seq=42,
            lamport=3,
            at=china_ms(2026, 10, 8, 11),
            text="完成现场摸排",
            progress=10,
            attachments=(photo,),
        ),
        Instructed(
            **down, seq=125, lamport=1, at=china_ms(2026, 10, 9, 10), author="王副省长",
            text="汛期前务必完成主体工程,确保群众安全。",
        ),
        PlanSubmitted(
            **up,
            seq=43,
            lamport=4,
            at=china_ms(2026, 10, 20, 9),
            milestones=(
                Milestone(title="完成管网勘测", due=china_ms(2026, 11, 10, 18)),
                Milestone(title="完成主体施工", due=china_ms(2026, 12, 10, 18)),
                Milestone(title="完成验收", due=china_ms(2026, 12, 25, 18)),
            ),
            note="工程量大,一个月内无法完成",
        ),
        PlanDecided(
            **down, seq=131, lamport=5, at=china_ms(2026, 10, 21, 10), approved=True, reason=""
        ),
        Feedback(
            **up,
            seq=44,
            lamport=6,
            at=china_ms(2026, 11, 9, 17),
            text="管网勘测完成",
            progress=40,
            attachments=(),
            milestone=0,
            monthly=True,
        ),
        ExtensionRequested(
            **up, seq=45, lamport=1, at=china_ms(2026, 12, 15, 10),
            reason="验收单位排期推迟", deadline=china_ms(2027, 1, 15, 18),
            progress="主体施工已完成,待第三方验收",
        ),
        ExtensionDecided(
            **down, seq=132, lamport=1, at=china_ms(2026, 12, 16, 9), request="0" * 64,
            approved=True, reason="同意延期",
        ),
        Resolved(
            **up,
            seq=46,
            lamport=7,
            at=china_ms(2026, 12, 20, 15),
            text="改造完成",
            attachments=(report,),
        ),
        Reviewed(
            **down,
            seq=140,
            lamport=8,
            at=china_ms(2026, 12, 21, 10),
            outcome="return",
            reason="缺少验收报告签字页",
        ),
        Resolved(
            **up,
            seq=47,
            lamport=9,
            at=china_ms(2026, 12, 24, 16),
            text="改造完成,补充验收签字页",
            attachments=(report,),
            files=(FileRef(digest=report, name="验收报告.pdf", size=2048, type="application/pdf"),),
        ),
        Reviewed(
            **down, seq=141, lamport=10, at=china_ms(2026, 12, 25, 10), outcome="accept",
            reason="返工后资料齐全,群众满意度高", grade="excellent",
        ),
        Closed(**down, seq=142, lamport=11, at=china_ms(2026, 12, 25, 10, 5), note="销号"),
        Closed(**up, seq=48, lamport=12, at=china_ms(2026, 12, 25, 11), note="越权销号"),
    ]


def build() -> dict[str, object]:
    """The vector as a JSON-able dict (bytes as hex)."""
    keys_ = keys()
    signed = []
    pairs = []
    for event in events():
        type_, body = encode_event(event)
        env = envelope.sign(keys_[event.origin], type_, body)
        pairs.append((env.event_id, event))
        signed.append(
            {
                "type": env.type,
                "signer": event.origin,
                "event_id": env.event_id,
                "envelope": env.raw.hex(),
                "body": _jsonable(codec.decode(body)),
            }
        )
    return {
        "about": "one item's signed history, 14 -> 140105001; see item_history.py",
        "nodes": {
            node: {
                "seed": seed(node).hex(),
                "public_key": key.public_key.hex(),
                "key_id": key.key_id.hex(),
            }
            for node, key in keys_.items()
        },
        "events": signed,
        "state": fold(pairs).to_dict(),
    }


def main() -> None:
    text = json.dumps(build(), ensure_ascii=False, indent=2, sort_keys=True)
    JSON_PATH.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
