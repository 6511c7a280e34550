"""The node's aiohttp application, built in one place from its configuration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from node.background import stop_task
from node.clock import Clock, SystemClock
from node.config import Config, ConfigError
from node.context import NodeContext, open_node
from node.http import blobs as blobs_http
from node.http import enroll as enroll_http
from node.http import keys as keys_http
from node.http import services
from node.http import sync as sync_server
from node.http import web as web_pages
from node.http.api import auth as api_auth
from node.http.api import cascade as api_cascade
from node.http.api import items as api_items
from node.http.api import openapi as api_openapi
from node.http.api import reminders as reminders_http
from node.http.api import reports as reports_api
from node.http.api import todo as api_todo
from node.http.api import units as units_api
from node.http.errors import STORAGE_NOTICE, StorageFullNotice, error_middleware
from node.items import materialiser
from node.queries import keeper
from node.queries.assemble import Reports, score_rules
from node.queries.figures import Figures
from node.queries.ledger import Ledger, boards_of
from node.queries.messages import Messages
from node.queries.rollup import Rollup
from node.queries.todo import Todo
from node.reminders.channels import build_notifiers
from node.reminders.schedule import Settings
from node.reminders.scheduler import Reminders
from node.reminders.scheduler import logger as reminders_logger
from node.storage import keyfile
from node.storage.events import PARENT
from node.sync import blobs
from node.sync.auth import ReplayGuard
from node.sync.catchup.tuning import Streaming
from node.sync.client import LINK_TASK, SyncClient, SyncFailure
from node.sync.client import logger as sync_client_logger
from node.workflow.actions import Workflow
from node.workflow.attachments import Quotas
from node.workflow.cascade import WATCH_NAME as CASCADE_WATCH
from node.workflow.cascade import Cascade
from node.workflow.cascade import logger as cascade_logger
from protocol.errors import ProtocolError

logger = logging.getLogger(__name__)

NODE = web.AppKey("node", NodeContext)
"""The opened node: the root's own, read by nothing below it (node/http/services.py
holds what handlers read)."""
CLIENT = web.AppKey("sync_client", SyncClient)


async def status_payload(ctx: NodeContext) -> dict[str, object]:
    now = ctx.clock.now_ms()
    statuses = await ctx.outbox.link_statuses(ctx.outbox.all_links())
    cert = ctx.certificate
    shown = [s.to_dict(now) for s in statuses]
    # The link to the parent as the running sync client knows it: its last error is
    # kept in memory too, for when the database could not record it (a full disk).
    watch = ctx.background.get(LINK_TASK)
    if watch is not None and watch.health.failures:
        for entry in shown:
            if entry["link"] == PARENT:
                health = watch.health
                entry["last_error"] = health.last_error
                entry["last_error_at"] = health.last_error_at
                entry["failures"] = health.failures
    for entry in shown:
        if entry["link"] == PARENT:  # the files going up (docs/sync.md, "Attachments")
            entry.update(await blobs.link_files(ctx.db, PARENT))
    return {
        "node": {
            "id": ctx.me, "name": cert.name, "level": cert.level, "parent": cert.parent,
            "key_id": cert.key_id.hex(),
        },
        "now": now,
        "counts": await ctx.store.counts(),
        # Received events whose items are not folded into the ledger's rows yet.
        "unfolded": await ctx.store.unfolded_count(),
        "own_seq": await ctx.store.own_seq(),
        "links": shown,
        # Each background task (sync, folding, reminders, tallies): failures in a row
        # and the last error, from memory (node/background.py).
        "background": ctx.background.status(),
    }


async def status(request: web.Request) -> web.Response:
    return web.json_response(await status_payload(request.app[NODE]))


@web.middleware
async def current_rows(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Reads see every event received before them: item rows are folded just after a
    sync batch commits (node/items/materialiser.py), so a read waits for that, briefly. During
    a large catch-up it answers after ROWS_WAIT_SECONDS with the rows folded so far
    (node/storage/events.py)."""
    if request.method == "GET" and not request.path.startswith("/sync/"):
        ctx = request.app.get(NODE)
        if ctx is not None:
            await ctx.store.rows_current()
    return await handler(request)


def sync_client(
    ctx: NodeContext,
    session: aiohttp.ClientSession,
    streaming: Streaming = contextlib.nullcontext,
    *,
    kind: type[SyncClient] = SyncClient,
) -> SyncClient:
    """The link of an opened node to its parent (``ctx.parent`` must be set); ``kind``
    a subclass (tests cut the link)."""
    assert ctx.parent is not None, "the root has no parent to sync with"
    watch = ctx.watch(
        LINK_TASK, sync_client_logger,
        initial=float(ctx.config["sync.retry_initial_seconds"]),
        cap=float(ctx.config["sync.retry_max_seconds"]),
        expected=(SyncFailure, ProtocolError),
    )
    return kind(
        me=ctx.me, parent=ctx.parent, parent_url=ctx.parent_url, key=ctx.key, clock=ctx.clock,
        config=ctx.config, events=ctx.store, outbox=ctx.outbox, ingestor=ctx.ingestor,
        stopping=ctx.stopping, watch=watch, session=session, streaming=streaming,
    )


def provide(app: web.Application, ctx: NodeContext) -> None:
    """Each service of the opened node under its key (node/http/services.py)."""
    app[services.CONFIG] = ctx.config
    app[services.CLOCK] = ctx.clock
    app[services.DB] = ctx.db
    app[services.KEY] = ctx.key
    app[services.TREE] = ctx.tree
    app[services.EVENTS] = ctx.store
    app[services.OUTBOX] = ctx.outbox
    app[services.INGESTOR] = ctx.ingestor
    app[services.ACCOUNTS] = ctx.accounts
    app[services.PRESENCE] = ctx.presence
    app[services.ACTIVITY] = ctx.activity
    app[services.BACKGROUND] = ctx.background
    app[services.STOPPING] = ctx.stopping
    cascade = app[services.CASCADE] = Cascade(
        db=ctx.db, events=ctx.store, tree=ctx.tree, auto=bool(ctx.config["cascade.auto"])
    )
    app[services.WORKFLOW] = Workflow(
        db=ctx.db,
        events=ctx.store,
        tree=ctx.tree,
        accounts=ctx.accounts,
        clock=ctx.clock,
        quotas=Quotas.from_config(ctx.config),
        cascaded=cascade.wake,
        noticed=ctx.notices.set,
    )
    boards = boards_of(ctx.config)
    # Unusable [scores] settings refuse the start here, naming the setting.
    rules = score_rules(ctx.config)
    app[services.LEDGER] = Ledger(
        ctx.db, ctx.clock, ctx.tree, ctx.presence.connected, boards, rules
    )
    app[services.REPORTS] = Reports(ctx.db, ctx.clock, ctx.tree, ctx.accounts, rules, boards)
    app[services.FIGURES] = Figures(ctx.db, ctx.clock, ctx.tree)
    app[services.ROLLUP] = Rollup(ctx.db, ctx.clock, ctx.tree)
    app[services.TODO] = Todo(
        ctx.db, ctx.clock, ctx.tree, cascade_auto=bool(ctx.config["cascade.auto"])
    )
    app[services.MESSAGES] = Messages(ctx.db, ctx.clock)


async def reminder_scheduler(app: web.Application) -> AsyncIterator[None]:
    """An ``app.cleanup_ctx`` entry: the reminder scheduler (node/reminders/) while the
    app runs; the message endpoints find it under ``REMINDERS``."""
    ctx = app[NODE]
    settings = Settings.from_config(ctx.config)
    session = aiohttp.ClientSession()
    task = None
    try:
        service = Reminders(
            me=ctx.me, db=ctx.db, clock=ctx.clock, rows_current=ctx.store.rows_current,
            notifiers=build_notifiers(ctx.config, session), settings=settings,
            woken=ctx.notices,
        )
        app[reminders_http.REMINDERS] = service
        if settings.enabled:
            tick = settings.tick_ms / 1000
            cap = min(tick, float(ctx.config["background.retry_max_seconds"]))
            watch = ctx.watch("reminders", reminders_logger, cap=cap)
            task = asyncio.create_task(
                service.run(watch, ctx.stopping), name=f"reminders {ctx.me}"
            )
            logger.info("reminders on: channels %s", ", ".join(service.notifiers) or "none")
        yield
    finally:
        ctx.stopping.set()
        await stop_task(task)
        await session.close()


async def tally_keeper(app: web.Application) -> AsyncIterator[None]:
    """An ``app.cleanup_ctx`` entry: the page tallies' keeper (node/queries/keeper.py)
    while the app runs; it stops with the app, or when the node stops."""
    ctx = app[NODE]
    changes = keeper.Changes(
        commits=ctx.outbox.changed, folded_past=ctx.store.folded_past,
        folded_pos=lambda: ctx.store.folded_pos,
    )
    tallies = keeper.TallyKeeper(ctx.db, ctx.clock, ctx.activity, changes)
    watch = ctx.watch(keeper.WATCH_NAME, keeper.logger)
    stopping = asyncio.Event()
    task = asyncio.create_task(
        tallies.run(watch, stopping, ctx.stopping), name=f"tally keeper {ctx.me}"
    )
    try:
        yield
    finally:
        stopping.set()
        await stop_task(task, grace=10.0)


async def cascade_service(app: web.Application) -> AsyncIterator[None]:
    """An ``app.cleanup_ctx`` entry: with ``cascade.auto`` (the default), the service that
    passes cascade items down as they arrive (node/workflow/cascade.py) while the app runs."""
    ctx = app[NODE]
    cascade = app[services.CASCADE]
    task = None
    stopping = asyncio.Event()
    follow = None
    if cascade.auto:
        watch = ctx.watch(CASCADE_WATCH, cascade_logger)

        async def node_stops() -> None:
            await ctx.stopping.wait()
            stopping.set()

        follow = asyncio.ensure_future(node_stops())
        task = asyncio.create_task(cascade.run(watch, stopping), name=f"cascade {ctx.me}")
    try:
        yield
    finally:
        stopping.set()
        await stop_task(task, grace=10.0)
        if follow is not None:
            follow.cancel()


async def partial_files_expiry(app: web.Application) -> AsyncIterator[None]:
    """An ``app.cleanup_ctx`` entry: drops the parts of files from children whose upload
    stopped more than ``sync.blob_partial_days`` ago (node/sync/blobs.py), unless 0."""
    ctx = app[NODE]
    days = float(ctx.config["sync.blob_partial_days"])
    if days < 0:
        raise ConfigError(f"sync.blob_partial_days must be 0 (off) or more, got {days:g}")
    task = None
    stopping = asyncio.Event()
    if days > 0:
        expiry = blobs.PartialExpiry(ctx.db, ctx.clock, int(days * 86_400_000))
        watch = ctx.watch(blobs.EXPIRY_WATCH, blobs.logger)
        task = asyncio.create_task(expiry.run(watch, stopping), name=f"file parts expiry {ctx.me}")
    try:
        yield
    finally:
        stopping.set()
        await stop_task(task, grace=5.0)


def create_app(
    config: Config,
    clock: Clock | None = None,
    *,
    streaming: Streaming = contextlib.nullcontext,
) -> web.Application:
    """Everything a node serves; long-lived work starts and stops with the app.

    ``streaming``: what the sync client holds while a catch-up's pages stream in,
    handed down by the owner of the process (``ProcessTuning.streaming``,
    node/sync/catchup/tuning.py); by default nothing: a node never changes the
    settings of a process it shares."""
    clock = clock or SystemClock()
    max_body = int(config["sync.batch_bytes"]) * 2 + 1024 * 1024
    app = web.Application(client_max_size=max_body, middlewares=[error_middleware, current_rows])
    window = int(config["sync.clock_skew_seconds"]) * 1000
    app[sync_server.GUARD] = ReplayGuard(window)
    app[STORAGE_NOTICE] = StorageFullNotice()

    async def data_dir_lock(app: web.Application) -> AsyncIterator[None]:
        # First in, last out: while the node runs, `duban key rotate`, `revoke` and
        # `tree import` refuse (node/storage/keyfile.py).
        with keyfile.running(config.data_dir, config.key_path):
            yield

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        ctx = await open_node(config, clock)
        app[NODE] = ctx
        provide(app, ctx)
        # A node with units but no list of its own signed yet (from before lists were
        # published, or a rotated key) publishes it now (docs/hierarchy.md).
        await ctx.accounts.publish_units_if_stale(ctx.clock.now_ms())
        task = None
        session = None
        folding_watch = ctx.watch("materialiser", materialiser.logger)
        folding = asyncio.create_task(
            materialiser.run(ctx.store, ctx.activity, ctx.stopping, folding_watch),
            name=f"materialiser {ctx.me}",
        )
        if ctx.parent is not None:
            if not ctx.parent_url:
                logger.warning("node.parent_url is not set: this node cannot sync")
            else:
                session = aiohttp.ClientSession()
                client = sync_client(ctx, session, streaming)
                app[CLIENT] = client
                task = asyncio.create_task(client.run(), name=f"sync {ctx.me}")
        logger.info("node %s (%s) ready", ctx.me, ctx.certificate.name)
        try:
            yield
        finally:
            ctx.stopping.set()
            await ctx.outbox.notify()
            # A pull may sit in a long-poll: give the loops a moment, then cancel.
            await stop_task(task, grace=2.0)
            await stop_task(folding, grace=10.0)
            if session is not None:
                await session.close()
            await ctx.close()

    async def release_long_polls(app: web.Application) -> None:
        # Runs before the server waits for in-flight requests: wake the long-polls.
        ctx = app.get(NODE)
        if ctx is not None:
            ctx.stopping.set()
            await ctx.outbox.notify()

    # Every long-lived task of the node, in start order (aiohttp unwinds them in
    # reverse): the node itself with its sync client and materialiser, then the
    # reminder scheduler, the page tallies' keeper and the cascade, which need the node open.
    app.cleanup_ctx.append(data_dir_lock)
    app.cleanup_ctx.append(lifecycle)
    app.cleanup_ctx.append(reminder_scheduler)
    app.cleanup_ctx.append(tally_keeper)
    app.cleanup_ctx.append(cascade_service)
    app.cleanup_ctx.append(partial_files_expiry)
    app.on_shutdown.append(release_long_polls)
    sync_server.add_routes(app)
    blobs_http.add_routes(app)
    enroll_http.add_routes(app)
    keys_http.add_routes(app)
    app.router.add_get("/api/v1/status", status)
    api_auth.add_routes(app)
    api_cascade.add_routes(app)  # before the items' /api/v1/items/{item}/{action}
    api_items.add_routes(app)
    api_todo.add_routes(app)
    api_openapi.add_routes(app)
    web_pages.add_routes(app)
    reports_api.add_routes(app)
    units_api.add_routes(app)
    reminders_http.add_routes(app)
    return app
