"""Receiving a batch: parse, verify, authorise, then store in one transaction.

The items the batch touches are refolded after it commits (``EventLog.fold_later``).

The CPU work (parsing and decoding — for a large batch in a worker process,
``node/sync/catchup/decoder.py`` — and signature checks on a small thread pool: Ed25519
in ``cryptography`` releases the GIL) happens before the write lock is taken, and
so does everything that asks the tree (scope, who may assign to whom, each
event's routes). The write transaction only re-checks what another writer could
have changed (duplicates, forked sequences, items' assignments, and which children a
trust record for every child goes to: a join may commit between prepare and store,
and its child must get the batch's records, issue 22) and stores; it
runs as one synchronous body (``Database.run_write``: on SQLite, on the writer's
thread, while the event loop prepares the next batch). Each refused event is
refused alone, kept with its reason, and never blocks the rest of its batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from node.items.materialiser import SyncActivity
from node.storage import unit_lists
from node.storage.events import (
    PARENT,
    RECOVERY,
    SELF,
    TRUST_TYPES,
    Accepted,
    BatchResult,
    EventLog,
    Stored,
)
from node.sync.catchup.decoder import Decoder
from node.sync.outbox import Outbox
from node.sync.routing import KnownTree, to_every_child, trust_subject, with_children_now
from protocol import envelope, errors
from protocol.decoded import Decoded
from protocol.errors import ProtocolError, printable
from protocol.events import Assigned
from protocol.ownership import Role, check_signer, role_of
from protocol.units import UNITS_TYPE, UnitList, verify_units

logger = logging.getLogger(__name__)

NOT_IN_SUBTREE = "not_in_subtree"
NOT_FROM_ANCESTOR = "not_from_ancestor"
NOT_FOR_ME = "not_for_me"
NOT_ANCESTOR = "not_ancestor"
SEQ_CONFLICT = "seq_conflict"
UNITS_UP_ONLY = "units_up_only"

NOT_DECODED = TRUST_TYPES | {UNITS_TYPE}
"""Types whose bodies the decoder leaves alone: trust records (the trust store checks
them) and unit lists (:func:`protocol.units.verify_units`, in :meth:`Ingestor._units`)."""

Refused = tuple[bytes, str | None, bytes | None, str, str]

INLINE_SIGNATURES = 8
"""A batch with at most this many distinct signatures (Merkle-batch signed, as nodes
sign what they write: one or two a page) is verified on the event loop: a
millisecond at most, less than handing it to the verifying threads and back, which
waits for the GIL each way while the writer's thread commits the batch before."""


@dataclass(slots=True)
class _Candidate:
    index: int
    env: envelope.Envelope
    accepted: Accepted
    message: bytes | ProtocolError | None  # what its signature covers (or why nothing)
    links: list[str] = field(default_factory=list)  # the outboxes it is queued for
    every_child: bool = False  # a trust record for every child: taken again at commit
    misassigned: tuple[str, str] | None = None  # an assignment its origin may not make
    # An urge or instruction: the path from the root to its addressee (the assignee),
    # on which its signer must stand at or above the item's assigner.
    chain: tuple[str, ...] | None = None
    units: UnitList | None = None  # the unit list it carries, checked but for its version


@dataclass(slots=True)
class Prepared:
    """A received batch checked outside the write lock, ready for :meth:`Ingestor.commit`."""

    source: str
    result: BatchResult = field(default_factory=BatchResult)
    refused: list[Refused] = field(default_factory=list)
    refused_index: list[int] = field(default_factory=list)  # each refusal's place in the batch
    checked: list[_Candidate] = field(default_factory=list)

    def refuse(
        self, i: int, raw: bytes, env: envelope.Envelope | None, reason: str, detail: str
    ) -> None:
        event_id = bytes.fromhex(env.event_id) if env else None
        self.refused.append((raw, env.type if env else None, event_id, reason, detail))
        self.refused_index.append(i)


class Ingestor:
    """Turns received envelope bytes into stored events for one node: checked against
    the ``tree`` its trust store draws, stored in the event ``log`` with the link's
    cursor (``outbox``), telling background work (``activity``) while it works."""

    def __init__(
        self,
        log: EventLog,
        outbox: Outbox,
        tree: KnownTree,
        activity: SyncActivity,
        *,
        executor: Executor | None,
        threads: int = 2,
        decoder: Decoder | None = None,
    ) -> None:
        self.log = log
        self.outbox = outbox
        self.tree = tree
        self.trust = tree.trust
        self.activity = activity
        self.executor = executor
        self.threads = max(1, threads)
        self.decoder = decoder or Decoder(0)

    async def receive(
        self,
        source: str,
        raws: Sequence[bytes],
        *,
        applied_pos: int | None = None,
        peer_epoch: bytes | None = None,
    ) -> BatchResult:
        """Check and store one batch: :meth:`prepare`, then :meth:`commit`."""
        return await self.commit(
            await self.prepare(source, raws), applied_pos=applied_pos, peer_epoch=peer_epoch
        )

    async def decode(
        self, raws: Sequence[bytes], *, needed: asyncio.Event | None = None
    ) -> list[Decoded]:
        """What the bytes of a batch alone say (the first part of :meth:`prepare`): the
        sync client starts it as soon as a page arrives, while the page before is
        still being prepared (``needed``: see ``Decoder.decode``)."""
        return await self.decoder.decode(raws, NOT_DECODED, needed=needed)

    async def prepare(
        self, source: str, raws: Sequence[bytes], decoded: Sequence[Decoded] | None = None
    ) -> Prepared:
        """The CPU work of a batch, outside the write lock: parse, drop what is held,
        decode, check scope and signer, verify. The next batch may be prepared while
        this one commits (the sync client does), as :meth:`commit` re-checks inside the
        write transaction whatever a commit in between could have changed. ``decoded``
        is :meth:`decode` of ``raws`` if it was started earlier."""
        with self.activity.receiving():  # folding item rows gives way meanwhile
            if decoded is None:
                decoded = await self.decode(raws)
            return await self._prepare(source, decoded)

    async def _prepare(self, source: str, decoded: Sequence[Decoded]) -> Prepared:
        log, trust = self.log, self.trust
        now = log.clock.now_ms()
        batch = Prepared(source)
        result, refuse = batch.result, batch.refuse

        parsed: list[tuple[int, Decoded]] = []
        seen: set[bytes] = set()
        for i, d in enumerate(decoded):
            if d.env is None:
                assert d.error is not None
                refuse(i, d.raw, None, d.error.reason, d.error.detail)
                continue
            if d.event_id in seen:
                result.duplicates += 1
                continue
            seen.add(d.event_id)
            parsed.append((i, d))

        known = await log.db.run_read(log.known_ids, [d.event_id for _, d in parsed])
        fresh = [(i, d) for i, d in parsed if d.event_id not in known]
        result.duplicates += len(parsed) - len(fresh)

        candidates: list[_Candidate] = []
        # Most events of a batch share their signer and their (origin, to): the checks
        # that depend on those alone are worked out once, until a trust record changes
        # the tree.
        check_signer = trust.event_signer_check(now)
        scopes: dict[tuple[str, str], ProtocolError | None] = {}
        for i, d in fresh:
            env = d.env
            assert env is not None
            if env.type in TRUST_TYPES:
                try:
                    trust.add(env.raw, now)
                except ProtocolError as exc:
                    refuse(i, env.raw, env, exc.reason, exc.detail)
                    continue
                check_signer = trust.event_signer_check(now)
                scopes.clear()
                accepted = Accepted(
                    env=env, event=None, origin=None, origin_seq=None, event_id=d.event_id
                )
                candidates.append(_Candidate(i, env, accepted, d.message))
                continue
            if env.type == UNITS_TYPE:
                try:
                    listed = self._units(source, env, now)
                except ProtocolError as exc:
                    refuse(i, env.raw, env, exc.reason, exc.detail)
                    continue
                accepted = Accepted(
                    env=env, event=None, origin=None, origin_seq=None, event_id=d.event_id
                )
                candidates.append(_Candidate(i, env, accepted, d.message, units=listed))
                continue
            try:
                if d.error is not None:
                    raise d.error
                event = d.event
                assert event is not None
                pair = (event.origin, event.to)
                if pair in scopes:
                    out_of_scope = scopes[pair]
                else:
                    out_of_scope = scopes[pair] = self._scope_error(source, *pair)
                if out_of_scope is not None:
                    raise ProtocolError(out_of_scope.reason, out_of_scope.detail)
                check_signer(env.key_id, event.origin, event.seq)
            except ProtocolError as exc:
                refuse(i, env.raw, env, exc.reason, exc.detail)
                continue
            accepted = Accepted(
                env=env, event=event, origin=event.origin, origin_seq=event.seq, event_id=d.event_id
            )
            candidates.append(_Candidate(i, env, accepted, d.message))

        verdicts = await self._verify(
            [(c.env, c.message) for c in candidates if c.accepted.event is not None]
        )
        checked: list[_Candidate] = []
        it = iter(verdicts)
        for c in candidates:
            if c.accepted.event is not None:
                bad = next(it)
                if bad is not None:
                    refuse(c.index, c.env.raw, c.env, bad.reason, bad.detail)
                    continue
            checked.append(c)
        # What the tree says, worked out here on the event loop (which alone changes
        # the tree) for the commit to use on the writer's thread.
        may_assign: dict[tuple[str, str], bool] = {}
        routes = self.outbox.links([c.accepted for c in checked], source)
        for c, links in zip(checked, routes, strict=True):
            c.links = links
            ev = c.accepted.event
            if c.env.type in TRUST_TYPES:
                c.every_child = to_every_child(self.tree, trust_subject(c.env))
            if isinstance(ev, Assigned):
                pair = (ev.origin, ev.assignee)
                allowed = may_assign.get(pair)
                if allowed is None:
                    allowed = may_assign[pair] = self.tree.in_subtree(*pair)
                if not allowed:
                    c.misassigned = (NOT_ANCESTOR, f"{ev.origin} may not assign to {ev.assignee}")
            elif ev is not None and role_of(ev) is Role.SUPERVISOR:
                c.chain = tuple(self.tree.path_of(ev.to).split("/")[:-1])
        batch.checked = checked
        return batch

    async def commit(
        self,
        prepared: Prepared,
        *,
        applied_pos: int | None = None,
        peer_epoch: bytes | None = None,
    ) -> BatchResult:
        """Store a prepared batch and the link cursor ``applied_pos`` in one transaction
        (the cursor only moves forward, unless the sender's ``peer_epoch`` is new:
        :meth:`Outbox.received`)."""
        with self.activity.receiving():
            return await self._commit(prepared, applied_pos, peer_epoch)

    async def _commit(
        self, prepared: Prepared, applied_pos: int | None, peer_epoch: bytes | None
    ) -> BatchResult:
        log = self.log
        result = prepared.result
        log.commit_begins()
        stored: Stored | None = None
        try:
            final, stored, cursor = await log.db.run_write(
                lambda conn: self._store(conn, prepared, applied_pos, peer_epoch)
            )
        finally:
            await log.commit_ended(stored)
        assert stored is not None  # run_write returned
        result.accepted = len(final)
        result.refused = [
            (i, r[3], r[4]) for i, r in zip(prepared.refused_index, prepared.refused, strict=True)
        ]
        result.applied_pos = cursor
        if result.refused:
            _log_refusals(prepared.source, result)
        if final:
            await self.outbox.queued(stored.links)
        return result

    def _store(
        self,
        conn: Connection,
        prepared: Prepared,
        applied_pos: int | None,
        peer_epoch: bytes | None = None,
    ) -> tuple[list[Accepted], Stored, int]:
        """The write transaction's body (on SQLite, on the writer's thread): re-check
        against what is stored, then store the events and the link's cursor."""
        log = self.log
        source, result, checked = prepared.source, prepared.result, prepared.checked
        refused, refuse = prepared.refused, prepared.refuse
        # Each event's clock is bounded by ours as the events before it in the batch
        # leave it: a parent forwarding a chain its child built over several batches
        # must not be refused by its own parent (docs/sync.md, "Clocks").
        clock_before = log.read_clock(conn)
        clock = clock_before
        known = log.known_ids(conn, [c.accepted.event_id for c in checked])
        checked = [c for c in checked if c.accepted.event_id not in known]
        result.duplicates += len(known)
        owners = log.seq_owners(
            conn,
            (
                (c.accepted.origin, c.accepted.origin_seq)
                for c in checked
                if c.accepted.origin is not None and c.accepted.origin_seq is not None
            ),
        )
        parties = log.item_parties(
            conn, (c.accepted.event.item for c in checked if c.accepted.event is not None)
        )
        final: list[Accepted] = []
        links: list[list[str]] = []
        versions: dict[str, int] = {}  # unit lists: the version held, as the batch leaves it
        now = log.clock.now_ms()
        for c in checked:
            ev = c.accepted.event
            listed = c.units
            if listed is not None:
                held = versions.get(listed.node)
                if held is None:
                    held = unit_lists.held_version(conn, listed.node)
                if listed.version <= held:
                    refuse(
                        c.index, c.env.raw, c.env, errors.VERSION_REGRESSION,
                        f"unit list of {listed.node}: version {listed.version} <= {held} held",
                    )
                    continue
                unit_lists.keep(conn, listed, c.env.raw, now)
                versions[listed.node] = listed.version
            if ev is not None:
                too_far = log.clock_refusal(ev.lamport, clock, source)
                if too_far is not None:
                    refuse(c.index, c.env.raw, c.env, errors.CLOCK_TOO_FAR_AHEAD, too_far)
                    continue
                owner = owners.get((ev.origin, ev.seq))
                if owner is not None and owner != c.accepted.event_id:
                    refuse(
                        c.index,
                        c.env.raw,
                        c.env,
                        SEQ_CONFLICT,
                        f"{ev.origin} seq {ev.seq} already names another event",
                    )
                    continue
                reason = (
                    c.misassigned if isinstance(ev, Assigned) else _unowned(ev, parties, c.chain)
                )
                if reason is not None:
                    refuse(c.index, c.env.raw, c.env, *reason)
                    continue
                owners[(ev.origin, ev.seq)] = c.accepted.event_id
                clock = max(clock, ev.lamport)
                if isinstance(ev, Assigned):
                    parties[ev.item] = (ev.assigner, ev.assignee)
            final.append(c.accepted)
            # A child may have enrolled since prepare (its join holds the write lock
            # between two batches): who "every child" is, is decided now.
            links.append(with_children_now(self.tree, c.links, source) if c.every_child
                         else c.links)
        stored = log.record_batch(
            conn,
            source=source,
            accepted=final,
            links=links,
            refused=refused,
            now=now,
            clock=clock_before,
        )
        cursor = Outbox.received(
            conn, source, now=now, dropped=stored.dropped, applied_pos=applied_pos,
            peer_epoch=peer_epoch,
        )
        return final, stored, cursor

    def _units(self, source: str, env: envelope.Envelope, now: int) -> UnitList:
        """The unit list ``env`` carries if its node signed it and it may come from
        ``source``: a child's subtree, or this node itself; never from the parent
        (lists travel up only). Whether its version is new is checked in the write
        transaction (:meth:`_store`)."""
        listed = verify_units(env, self.trust, now)
        node, me = listed.node, self.tree.me
        if source in (PARENT, RECOVERY):
            raise ProtocolError(
                UNITS_UP_ONLY, f"unit list of {node} came down from the parent; lists go up only"
            )
        if source == SELF:
            if node != me:
                raise ProtocolError(NOT_IN_SUBTREE, f"{node} is not this node")
        elif not self.tree.in_subtree(source, node):
            raise ProtocolError(NOT_IN_SUBTREE, f"{node} is not in {source}'s subtree")
        return listed

    def _scope_error(self, source: str, origin: str, to: str) -> ProtocolError | None:
        try:
            self._check_scope(source, origin, to)
        except ProtocolError as exc:
            return exc
        return None

    def _check_scope(self, source: str, origin: str, to: str) -> None:
        tree = self.tree
        me = tree.me
        if source == PARENT:
            if not tree.is_ancestor(origin, me):
                raise ProtocolError(NOT_FROM_ANCESTOR, f"{origin} is not an ancestor of {me}")
            if not tree.in_subtree(me, to):
                raise ProtocolError(NOT_FOR_ME, f"addressed to {to}, outside {me}'s subtree")
        elif source == SELF:
            if origin != me:
                raise ProtocolError(NOT_IN_SUBTREE, f"{origin} is not this node")
        elif source == RECOVERY:
            if not tree.in_subtree(me, origin):
                raise ProtocolError(NOT_IN_SUBTREE, f"{origin} is not in {me}'s subtree")
        elif not tree.in_subtree(source, origin):
            raise ProtocolError(NOT_IN_SUBTREE, f"{origin} is not in {source}'s subtree")

    async def _verify(
        self, signed: Sequence[tuple[envelope.Envelope, bytes | ProtocolError | None]]
    ) -> list[ProtocolError | None]:
        if not signed:
            return []
        pairs: list[tuple[envelope.Envelope, bytes | ProtocolError]] = []
        for env, message in signed:
            assert message is not None  # only a parsed envelope has one, and every one here is
            pairs.append((env, message))
        lookup = self.trust.key_for
        if (
            self.executor is None
            or len(pairs) < 64
            or self.threads == 1
            or len({env.signature for env, _message in pairs}) <= INLINE_SIGNATURES
        ):
            return envelope.verify_signed(pairs, lookup)
        # Keep Merkle batches together so each batch signature is checked once.
        size = -(-len(pairs) // self.threads)
        chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
        loop = asyncio.get_running_loop()
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(self.executor, envelope.verify_signed, part, lookup)
                for part in chunks
            )
        )
        return [v for part in parts for v in part]


def _log_refusals(source: str, result: BatchResult) -> None:
    """One line per batch, however many of its events were refused (a child could
    send thousands): how many, by reason, and the first one's detail. Every refusal
    stays in the reply and, within the quota, in ``refused``. Details are printable
    already (``ProtocolError``); ``source`` is a link name."""
    reasons = Counter(reason for _i, reason, _detail in result.refused)
    index, reason, detail = result.refused[0]
    logger.warning(
        "batch from %s: %d accepted, %d duplicates, %d refused (%s); first: event %d %s %s",
        source,
        result.accepted,
        result.duplicates,
        len(result.refused),
        ", ".join(f"{r} {n}" for r, n in reasons.most_common()),
        index,
        reason,
        printable(detail),
    )


def _unowned(
    ev: object, parties: dict[str, tuple[str, str]], chain: tuple[str, ...] | None = None
) -> tuple[str, str] | None:
    """Why an event about an item may not be stored (its item's assignment unknown
    here, or a signer not party to it); None if it may. ``chain``: for an urge or an
    instruction, the path from the root to its addressee, on which its signer must
    stand above the assigner (``not_supervisor`` otherwise, at every hop)."""
    item = getattr(ev, "item", "")
    known = parties.get(item)
    if known is None:
        return errors.UNKNOWN_ITEM, f"no assignment of {item} is known here"
    above = None if chain is None else _above_in(chain, known[0])
    refusal = check_signer(ev, *known, above)  # type: ignore[arg-type]
    return None if refusal is None else (refusal.reason, refusal.detail)


def _above_in(chain: tuple[str, ...], assigner: str) -> Callable[[str], bool]:
    """Whether a node is a proper ancestor of ``assigner``, by the path ``chain`` from
    the root through it (an assigner not on it has no ancestor there)."""
    above = frozenset(chain[: chain.index(assigner)]) if assigner in chain else frozenset()
    return above.__contains__
