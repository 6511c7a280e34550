"""Bulk decoding (protocol.decoded), the worker process that runs it (node.sync.catchup)
and the compact form it sends back (node.sync.catchup.transfer).

What must hold: decoding a batch in bulk gives what parsing and decoding each
envelope one by one gives (the same objects, the same refusals with the same
reasons), and the compact form a worker sends back rebuilds exactly that.
"""

from __future__ import annotations

import asyncio
import marshal
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.sync.catchup.decoder import MIN_EVENTS, Decoder
from node.sync.catchup.transfer import MARSHAL_VERSION, pack, unpack
from protocol import envelope, errors
from protocol.decoded import Decoded, decode_all
from protocol.envelope import Envelope
from protocol.errors import ProtocolError
from protocol.events import Assigned, Deadlines, Event, decode_event, encode_event
from protocol.keys import SigningKey, VerifyKey
from tests.test_events import events

KEY = SigningKey.from_seed(b"\x07" * 32)
SKIP = frozenset({"trust.cert"})


def lookup(key_id: bytes) -> VerifyKey:
    if key_id == KEY.key_id:
        return KEY.verify_key
    raise ProtocolError(errors.UNKNOWN_KEY)


def _outcome(value: object) -> object:
    if isinstance(value, ProtocolError):
        return ("error", value.reason, value.detail)
    return value


def _view(d: Decoded) -> tuple[Any, ...]:
    return (d.raw, d.env, _outcome(d.error), d.event, d.event_id, _outcome(d.message))


def one_by_one(raw: bytes, skip: frozenset[str]) -> tuple[Any, ...]:
    """What the plain functions say of one envelope, in the shape of ``_view``."""
    try:
        env = envelope.parse(raw)
    except ProtocolError as exc:
        return (raw, None, _outcome(exc), None, b"", None)
    event: Event | None = None
    error: ProtocolError | None = None
    if env.type not in skip:
        try:
            event = decode_event(env.type, env.body)
        except ProtocolError as exc:
            error = exc
    try:
        message: object = env.signed_message()
    except ProtocolError as exc:
        message = exc
    return (raw, env, _outcome(error), event, bytes.fromhex(env.event_id), _outcome(message))


def mutate(raw: bytes, data: st.DataObject) -> bytes:
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(out) - 1))
        op = data.draw(st.sampled_from(("flip", "cut", "insert")))
        if op == "flip":
            out[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del out[at : at + data.draw(st.integers(1, 6))]
        else:
            out[at:at] = data.draw(st.binary(min_size=1, max_size=3))
        if not out:
            break
    return bytes(out)


def batch_of(evs: list[Event], data: st.DataObject) -> list[bytes]:
    """``evs`` signed in one Merkle batch or one by one, some envelopes mutated, some
    bodies that are not events, some of a skipped type."""
    pieces = [encode_event(e) for e in evs]
    pieces.append(("trust.cert", b"\x80"))
    pieces.append(("item.nothing", b"\x80"))
    if data.draw(st.booleans()):
        envs = envelope.sign_batch(KEY, pieces)
    else:
        envs = [envelope.sign(KEY, t, b) for t, b in pieces]
    raws = [e.raw for e in envs]
    for i in data.draw(st.lists(st.integers(0, len(raws) - 1), max_size=3)):
        raws[i] = mutate(raws[i], data)
    return raws


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, min_size=1, max_size=6), st.data())
def test_bulk_decoding_is_decoding_one_by_one(evs: list[Event], data: st.DataObject) -> None:
    raws = batch_of(evs, data)
    bulk = decode_all(raws, SKIP)
    assert [_view(d) for d in bulk] == [one_by_one(r, SKIP) for r in raws]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, min_size=1, max_size=6), st.data())
def test_the_compact_form_rebuilds_the_same(evs: list[Event], data: st.DataObject) -> None:
    raws = batch_of(evs, data)
    decoded = decode_all(raws, SKIP)
    sent = marshal.loads(marshal.dumps(pack(decoded), MARSHAL_VERSION))  # as the worker does
    rebuilt = unpack(raws, sent)
    assert [_view(d) for d in rebuilt] == [_view(d) for d in decoded]
    for d in rebuilt:  # rebuilt objects are whole: they encode to the bytes they came from
        if d.event is not None and d.env is not None:
            assert encode_event(d.event) == (d.env.type, d.env.body)


def test_envelopes_encoded_in_another_key_order_are_refused_alike() -> None:
    """An envelope whose map puts its keys in another order than Duban's sorted one is
    not the canonical encoding (it would be another event id): refused with the same
    reason whether decoded in place or rebuilt from the worker's compact form."""
    signed = envelope.sign(KEY, "item.nothing", b"\x81\xa1x\x01")
    reordered = msgpack.packb(
        {"v": 1, "t": signed.type, "k": signed.key_id, "s": signed.signature, "b": signed.body},
        use_bin_type=True,
    )
    raws = [signed.raw, reordered]
    decoded = decode_all(raws)
    assert decoded[0].env is not None and decoded[0].env.raw == signed.raw
    assert decoded[1].env is None and decoded[1].error is not None
    assert decoded[1].error.reason == errors.NON_CANONICAL
    rebuilt = unpack(raws, marshal.loads(marshal.dumps(pack(decoded), MARSHAL_VERSION)))
    assert [_view(d) for d in rebuilt] == [_view(d) for d in decoded]
    assert [d.env.body for d in rebuilt if d.env is not None] == [signed.body]


def test_unit_codes_named_like_nested_fields_stay_units() -> None:
    event = Assigned(
        item="14-000001", origin="14", seq=1, lamport=1, at=1, to="1401",
        title="t", description="", board="key_task", source="office", item_class="general",
        assigner="14", assignee="1401", co_units=("deadlines", "milestones"),
        calendar="natural", deadlines=Deadlines(deploy=2, feedback=3, resolve=4),
    )
    raws = [envelope.sign(KEY, *encode_event(event)).raw]
    rebuilt = unpack(raws, pack(decode_all(raws)))
    assert rebuilt[0].event == event
    assert rebuilt[0].event.co_units == ("deadlines", "milestones")  # type: ignore[union-attr]


def test_verify_signed_answers_as_verify_all() -> None:
    envs = envelope.sign_batch(KEY, [("t.x", bytes([n])) for n in range(5)])
    bad = Envelope(
        type="t.x", body=b"evil", key_id=envs[2].key_id, signature=envs[2].signature,
        proof=envs[2].proof, raw=b"",
    )
    stranger = envelope.sign(SigningKey.from_seed(b"\x09" * 32), "t.x", b"?")
    batch = [*envs[:2], bad, *envs[3:], stranger]
    known = envelope.node_memo()
    signed = [(e, e.signed_message(known)) for e in batch]
    reasons = [r.reason if r else None for r in envelope.verify_signed(signed, lookup)]
    assert reasons == [r.reason if r else None for r in envelope.verify_all(batch, lookup)]
    assert reasons == [None, None, errors.BAD_SIGNATURE, None, None, errors.UNKNOWN_KEY]
    # A message that could not be worked out is the envelope's refusal.
    broken = ProtocolError(errors.BAD_MERKLE_PROOF, "path too short")
    assert envelope.verify_signed([(envs[0], broken)], lookup) == [broken]


def _many(n: int) -> list[bytes]:
    pieces = [
        encode_event(
            Assigned(
                item=f"14-{s:06d}", origin="14", seq=s, lamport=s, at=1, to="1401",
                title=f"事项{s}", description="说明", board="key_task", source="office",
                item_class="general", assigner="14", assignee="1401", co_units=("env",),
                calendar="natural", deadlines=Deadlines(deploy=2, feedback=3, resolve=4),
            )
        )
        for s in range(1, n + 1)
    ]
    raws = [e.raw for e in envelope.sign_batch(KEY, pieces)]
    raws[7] = raws[7][:-3]  # one that does not parse
    return raws


def test_a_worker_process_decodes_large_batches_as_in_place() -> None:
    raws = _many(MIN_EVENTS + 50)
    expected = [_view(d) for d in decode_all(raws, SKIP)]

    async def run() -> tuple[list[Decoded], list[Decoded], int]:
        decoder = Decoder(1)
        try:
            first = await decoder.decode(raws, SKIP)  # starts the worker, decodes in place
            assert decoder.in_worker == 0
            for _ in range(600):  # the worker starts in well under a minute
                if decoder.ready():
                    break
                await asyncio.sleep(0.1)
            second = await decoder.decode(raws, SKIP)
            small = await decoder.decode(raws[: MIN_EVENTS - 1], SKIP)  # in place: too small
            assert [_view(d) for d in small] == expected[: MIN_EVENTS - 1]
            return first, second, decoder.in_worker
        finally:
            await decoder.close()

    first, second, in_worker = asyncio.run(run())
    assert in_worker == 1
    assert [_view(d) for d in first] == expected
    assert [_view(d) for d in second] == expected


def test_a_batch_fetched_ahead_waits_for_the_starting_worker_until_needed() -> None:
    """While the worker starts, a batch somebody waits for is decoded in place; one
    fetched ahead waits for the worker instead, unless it is needed first."""
    raws = _many(MIN_EVENTS + 20)
    expected = [_view(d) for d in decode_all(raws, SKIP)]

    async def run() -> tuple[list[list[Decoded]], list[int]]:
        decoder = Decoder(1)
        try:
            decoder.start()
            assert not decoder.ready()
            got, in_worker = [], []
            got.append(await decoder.decode(raws, SKIP))  # waited for: in place
            in_worker.append(decoder.in_worker)
            needed = asyncio.Event()
            soon = asyncio.ensure_future(decoder.decode(raws, SKIP, needed=needed))
            needed.set()  # needed before the worker is up: in place
            got.append(await soon)
            in_worker.append(decoder.in_worker)
            assert not decoder.ready()
            got.append(await decoder.decode(raws, SKIP, needed=asyncio.Event()))  # waits
            in_worker.append(decoder.in_worker)
            return got, in_worker
        finally:
            await decoder.close()

    got, in_worker = asyncio.run(run())
    assert in_worker == [0, 0, 1]
    for decoded in got:
        assert [_view(d) for d in decoded] == expected


def test_requests_to_the_worker_are_pipelined_and_answered_in_order() -> None:
    """Several batches sent to the worker before any reply comes back each get their
    own answer, also when the caller of one of them gives up on it."""
    raws = _many(MIN_EVENTS + 40)
    batches = [raws[: MIN_EVENTS + k] for k in (0, 40, 10, 25)]
    expected = [[_view(d) for d in decode_all(b, SKIP)] for b in batches]

    async def run() -> tuple[list[list[tuple[Any, ...]]], int]:
        decoder = Decoder(1)
        try:
            decoder.start()
            for _ in range(600):
                if decoder.ready():
                    break
                await asyncio.sleep(0.1)
            assert decoder.ready()
            asked = [asyncio.ensure_future(decoder.decode(b, SKIP)) for b in batches]
            await asyncio.sleep(0)  # every request is on its way
            assert len(decoder._replies) == len(batches)
            asked[1].cancel()
            got = [[_view(d) for d in await asked[i]] for i in (0, 2, 3)]
            assert asked[1].cancelled()
            got.append([_view(d) for d in await decoder.decode(batches[1], SKIP)])
            return got, decoder.in_worker
        finally:
            await decoder.close()

    got, in_worker = asyncio.run(run())
    assert got == [expected[0], expected[2], expected[3], expected[1]]
    assert in_worker == 4


def test_no_worker_when_configured_so() -> None:
    raws = _many(MIN_EVENTS)

    async def run() -> int:
        decoder = Decoder(0)
        for _ in range(3):
            assert [_view(d) for d in await decoder.decode(raws, SKIP)] == [
                _view(d) for d in decode_all(raws, SKIP)
            ]
        return decoder.in_worker

    assert asyncio.run(run()) == 0


async def until_ready(decoder: Decoder) -> None:
    for _ in range(600):  # the worker starts in well under a minute
        if decoder.ready():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the decoding worker did not start")


def test_a_dead_worker_costs_nothing_but_time() -> None:
    """The worker killed between batches: the next batch is decoded in place, the same,
    and a later one starts a new worker."""
    raws = _many(MIN_EVENTS + 10)
    expected = [_view(d) for d in decode_all(raws, SKIP)]

    async def run() -> list[list[tuple[Any, ...]]]:
        decoder = Decoder(1)
        try:
            decoder.start()
            await until_ready(decoder)
            first = await decoder.decode(raws, SKIP)
            assert decoder.in_worker == 1
            proc = decoder._proc
            assert proc is not None
            proc.kill()
            await proc.wait()
            second = await decoder.decode(raws, SKIP)  # fails over to decoding in place
            assert decoder.in_worker == 1 and not decoder.ready()
            await decoder.decode(raws, SKIP)  # in place again; starts a new worker
            await until_ready(decoder)
            third = await decoder.decode(raws, SKIP)
            assert decoder.in_worker == 2
            return [[_view(d) for d in got] for got in (first, second, third)]
        finally:
            await decoder.close()

    for got in asyncio.run(run()):
        assert got == expected


def test_an_idle_worker_stops_and_a_later_catch_up_starts_another() -> None:
    """A worker given nothing for ``idle_seconds`` exits (a node that caught up once
    must not keep a process for good); the next large batch starts a new one."""
    raws = _many(MIN_EVENTS + 10)
    expected = [_view(d) for d in decode_all(raws, SKIP)]

    async def run() -> tuple[list[list[tuple[Any, ...]]], int | None]:
        decoder = Decoder(1, idle_seconds=0.3)
        try:
            decoder.start()
            await until_ready(decoder)
            first = await decoder.decode(raws, SKIP)
            proc = decoder._proc
            assert proc is not None and decoder.in_worker == 1
            for _ in range(100):
                if proc.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            code = proc.returncode
            assert not decoder.ready() and decoder._proc is None
            second = await decoder.decode(raws, SKIP)  # in place; starts another worker
            await until_ready(decoder)
            third = await decoder.decode(raws, SKIP)
            assert decoder.in_worker == 2 and decoder._proc is not proc
            return [[_view(d) for d in got] for got in (first, second, third)], code
        finally:
            await decoder.close()

    decoded, code = asyncio.run(run())
    assert code is not None, "the idle worker did not exit"
    for got in decoded:
        assert got == expected
