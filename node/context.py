"""Everything one running node is made of, built once by :func:`open_node`.

Dependencies are passed in (configuration, clock); nothing here is global, so
many nodes run side by side in one process (the tests and the demo do).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from node.background import Background, Backoff, Watch
from node.clock import Clock
from node.config import Config, ConfigError
from node.items import tallies
from node.items.materialiser import SyncActivity
from node.items.projection import Projection
from node.storage import keyfile
from node.storage.accounts import Accounts
from node.storage.db import Database, open_database
from node.storage.events import EventLog
from node.storage.unit_lists import UnitPublisher
from node.sync.blobs import BlobQueue
from node.sync.catchup.decoder import Decoder
from node.sync.ingest import Ingestor
from node.sync.outbox import Outbox
from node.sync.presence import Presence
from node.sync.routing import KnownTree
from protocol.certs import Certificate, TrustStore
from protocol.keys import SigningKey

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class NodeContext:
    config: Config
    clock: Clock
    key: SigningKey
    db: Database
    trust: TrustStore
    tree: KnownTree  # the tree the trust store draws
    store: EventLog
    outbox: Outbox
    ingestor: Ingestor
    executor: ThreadPoolExecutor
    accounts: Accounts
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Children holding a page request open right now: connected, and we are current.
    presence: Presence = field(default_factory=Presence)
    # The background tasks' failures, in memory (shown even when the disk is full).
    background: Background = field(default_factory=Background)
    # Whether sync is busy (background work gives way to a catch-up).
    activity: SyncActivity = field(default_factory=SyncActivity)
    # Set when an urge or instruction is folded here: the reminder scheduler's wake-up.
    notices: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def me(self) -> str:
        return str(self.config["node.id"])

    @property
    def certificate(self) -> Certificate:
        return self.trust.current(self.me)

    @property
    def parent(self) -> str | None:
        return self.certificate.parent

    @property
    def parent_url(self) -> str:
        return str(self.config["node.parent_url"]).rstrip("/")

    @property
    def batch_events(self) -> int:
        return int(self.config["sync.batch_events"])

    @property
    def batch_bytes(self) -> int:
        return int(self.config["sync.batch_bytes"])

    def watch(
        self,
        name: str,
        log: logging.Logger,
        *,
        initial: float | None = None,
        cap: float | None = None,
        expected: tuple[type[BaseException], ...] = (),
    ) -> Watch:
        """A :class:`~node.background.Watch` for one of this node's tasks, registered
        for the status pages; backoff from ``background.*`` unless given."""
        backoff = Backoff(
            float(self.config["background.retry_initial_seconds"]) if initial is None else initial,
            float(self.config["background.retry_max_seconds"]) if cap is None else cap,
        )
        return self.background.add(
            Watch(
                name,
                clock=self.clock,
                log=log,
                backoff=backoff,
                summary_seconds=float(self.config["background.summary_seconds"]),
                expected=expected,
                label=f"{self.me} {name}",
            )
        )

    async def epoch(self) -> bytes:
        return await self.store.epoch()

    async def close(self) -> None:
        self.stopping.set()
        await self.outbox.notify()
        await self.db.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        await self.ingestor.decoder.close()


async def open_node(config: Config, clock: Clock, *, create: bool = False) -> NodeContext:
    """Open a node's key, database and trust store from its configuration."""
    me = str(config["node.id"])
    if not me:
        raise ConfigError(
            f"{config.data_dir}: node.id is not set; run `duban init` or `duban join`"
        )
    key = keyfile.load(config.key_path)
    db = await open_database(config.database_url, create=create)
    try:
        now = clock.now_ms()
        await db.run_write(lambda conn: tallies.build_if_missing(conn, now))
        records = await _trust_records(db)
        fingerprint = str(config["node.root_fingerprint"])
        trust = TrustStore.from_records(fingerprint, records)
        threads = int(config["sync.verify_threads"])
        executor = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="verify")
        has_parent = bool(records) and trust.has_node(me) and trust.current(me).parent is not None
        tree = KnownTree(trust, me)
        outbox = Outbox(db, tree, has_parent=has_parent)
        notices = asyncio.Event()
        store = EventLog(
            db, me=me, key=key, clock=clock, router=outbox, projection=Projection(
                tree.path_of, files_named=BlobQueue(clock).named if has_parent else None,
                noticed=notices.set,
            ),
            max_clock_ahead=int(config["sync.max_clock_ahead"]),
            refused_keep_events=int(config["sync.refused_keep_events"]),
            refused_keep_bytes=int(config["sync.refused_keep_bytes"]),
        )
        await store.start_materialised_cursor()
        await store.repair_clock()
        decoder = Decoder(int(config["sync.decode_processes"]))
        activity = SyncActivity()
        ingestor = Ingestor(
            store, outbox, tree, activity, executor=executor, threads=threads, decoder=decoder
        )
    except BaseException:
        await db.close()
        raise
    return NodeContext(
        config=config,
        clock=clock,
        key=key,
        db=db,
        trust=trust,
        tree=tree,
        store=store,
        outbox=outbox,
        ingestor=ingestor,
        executor=executor,
        accounts=Accounts(db, publisher=UnitPublisher(store, key, me)),
        activity=activity,
        notices=notices,
    )


async def _trust_records(db: Database) -> list[bytes]:
    from sqlalchemy import select

    from node.storage import schema as t
    from node.storage.events import TRUST_TYPES

    async with db.read() as conn:
        rows = await conn.execute(
            select(t.events.c.raw).where(t.events.c.type.in_(TRUST_TYPES)).order_by(t.events.c.pos)
        )
        return [r[0] for r in rows]


def data_dir_of(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()
