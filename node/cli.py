"""The ``duban`` command line: create, enroll, run and inspect nodes.

Every command takes ``--data DIR`` (the node's data directory: ``duban.toml``,
``node.key``, ``node.db``). Errors are one clear line on stderr and exit 2;
nothing prints a stack trace for a mistake a user can make.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from hierarchy.errors import HierarchyError
from node import config as cfg
from node.app import create_app, status_payload
from node.clock import SystemClock
from node.context import NodeContext, open_node
from node.errors import KINDS, NodeError
from node.http.timeouts import ConnectionTimeouts, TimedRunner
from node.queries.assemble import Reports, score_rules
from node.queries.ledger import boards_of
from node.setup import first_admin, init_root, join_parent
from node.storage.db import migrate
from protocol.errors import ProtocolError

logger = logging.getLogger(__name__)


class CliError(NodeError):
    """A command that cannot do what it was asked; ``str()`` is the detail alone (a
    report's refusal, as the API words it)."""

    def __str__(self) -> str:
        return self.detail or self.reason


def _data(args: argparse.Namespace) -> Path:
    return Path(args.data).expanduser().resolve()


@contextlib.asynccontextmanager
async def opened(
    args: argparse.Namespace, config: cfg.Config | None = None
) -> AsyncIterator[tuple[cfg.Config, NodeContext]]:
    """The node in ``--data`` opened for one command, closed afterwards."""
    config = config or cfg.load(_data(args))
    ctx = await open_node(config, SystemClock())
    try:
        yield config, ctx
    finally:
        await ctx.close()


# ---------------------------------------------------------------- commands


async def cmd_init(args: argparse.Namespace) -> int:
    data = _data(args)
    config = await init_root(
        data,
        node=args.id,
        name=args.name,
        level=args.level,
        clock=SystemClock(),
        extra=_extra(args),
    )
    admin, password = await first_admin(config, SystemClock())
    print(f"created root node {args.id} {args.name} ({args.level}) in {data}")
    print(f"root fingerprint (children pin this): {config['node.root_fingerprint']}")
    print(f"first administrator: {admin}  password: {password}  (shown once)")
    return 0


def _extra(args: argparse.Namespace) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if args.listen:
        extra["server.listen"] = args.listen
    if args.database_url:
        extra["database.url"] = args.database_url
    return extra


async def cmd_invite(args: argparse.Namespace) -> int:
    from node.http.enroll import issue_code
    from node.keys import next_from_seq

    async with opened(args) as (config, ctx):
        from_seq = args.from_seq
        if from_seq is None:
            from_seq = await next_from_seq(ctx, args.child)
        code = await issue_code(
            ctx.db, ctx.me, ctx.clock, ctx.config,
            child=args.child, name=args.name, level=args.level, from_seq=from_seq,
        )
        url = str(config["server.public_url"]) or f"http://{config['server.listen']}"
    print(code)
    again = (
        f" {args.child} holds a certificate already: its new key signs from seq {from_seq}."
        if from_seq
        else ""
    )
    print(
        f"# one-time code for {args.child} {args.name} ({args.level}), valid "
        f"{config['enroll.code_ttl_hours']} h.{again} On the child's machine run:\n"
        f"#   duban join --data DIR --parent {url} --code {code} "
        f"--root {ctx.trust.root_fingerprint}",
        file=sys.stderr,
    )
    return 0


async def cmd_join(args: argparse.Namespace) -> int:
    data = _data(args)
    config = await join_parent(
        data,
        parent_url=args.parent,
        code=args.code,
        root=args.root,
        clock=SystemClock(),
        extra=_extra(args),
    )
    print(
        f"joined {config['node.parent_url']} as {config['node.id']} {config['node.name']} "
        f"({config['node.level']}) in {data}"
    )
    admin, password = await first_admin(config, SystemClock())
    print(f"first administrator: {admin}  password: {password}  (shown once)")
    return 0


async def cmd_key_rotate(args: argparse.Namespace) -> int:
    from node.keys import rotate_key

    config = cfg.load(_data(args))
    rotated = await rotate_key(config, SystemClock())
    cert = rotated.certificate
    print(
        f"{cert.node} {cert.name} now signs with key {cert.key_id.hex()[:16]} from seq "
        f"{cert.from_seq} (certificate version {cert.version}"
        f"{', self-signed' if cert.parent is None else ', signed by ' + cert.parent})"
    )
    print(
        f"the old key {rotated.old_key_id.hex()[:16]} is kept in {rotated.kept_as}: it signs "
        "nothing new; the events it signed still verify everywhere"
    )
    return 0


async def cmd_key_replace(args: argparse.Namespace) -> int:
    from node.keys import replace_key

    config = cfg.load(_data(args))
    replaced = await replace_key(config, SystemClock(), args.code)
    cert = replaced.certificate
    print(
        f"{cert.node} {cert.name} enrolled again: it signs with key {cert.key_id.hex()[:16]} "
        f"from seq {cert.from_seq} (certificate version {cert.version}, signed by "
        f"{cert.parent}); its children certified by the old key are certified again"
    )
    print(f"the old key {replaced.old_key_id.hex()[:16]} is kept in {replaced.kept_as}")
    return 0


async def cmd_revoke(args: argparse.Namespace) -> int:
    from node.keys import revoke_child

    data = _data(args)
    config = cfg.load(data)
    done = await revoke_child(
        config, SystemClock(), args.child, last_seq=args.last_seq, reason=args.reason
    )
    child = done.child
    kept = (
        f"its events up to seq {done.last_seq} still verify, later ones are refused"
        if done.last_seq > 0
        else "every event it signs is refused"
    )
    print(
        f"revoked key {child.key_id.hex()[:16]} of {child.node} {child.name} ({child.level}) "
        f"after seq {done.last_seq}: {kept} everywhere the revocation reaches (it travels "
        "the tree as this node syncs: start it again)"
    )
    url = str(config["server.public_url"]) or f"http://{config['server.listen']}"
    print(
        f"to enroll {child.node} again with a new key, get a code here:\n"
        f"  duban invite --data {data} --child {child.node} --name {child.name} "
        f"--level {child.level} --from-seq {done.from_seq}"
    )
    in_place = "  duban key replace --data DIR --code CODE"
    if done.signed_below:
        print(
            f"then on {child.node}'s machine, in its data directory (restored from a backup "
            f"if need be): the certificates of its children ({', '.join(done.signed_below)}) "
            "were signed by the revoked key and stop verifying everywhere until it certifies "
            f"them again, which this does:\n{in_place}"
        )
        return 0
    print(
        f"then on {child.node}'s machine, either in its data directory if it survives:\n"
        f"{in_place}\n"
        f"or in a new one (its history up to seq {done.from_seq - 1} comes back from this "
        "node on its first sync; what it wrote after that and had not sent is lost with its "
        "key):\n"
        f"  duban join --data NEW_DIR --parent {url} --code CODE "
        f"--root {config['node.root_fingerprint']}"
    )
    return 0


async def cmd_tree_import(args: argparse.Namespace) -> int:
    from node.tree_import import import_tree

    data = _data(args)
    config = cfg.load(data)
    path = Path(args.file).expanduser()
    try:
        done = await import_tree(config, SystemClock(), path.read_bytes(), dry_run=args.dry_run)
    except HierarchyError as exc:
        if not exc.problems:
            raise
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        print(
            f"duban: {len(exc.problems)} problems in {path}: nothing changed", file=sys.stderr
        )
        return 2
    tree = done.comparison.tree
    print(
        f"{path}: {len(tree)} nodes under {tree.root.id} {tree.root.name}; every node known "
        f"here by certificate is in it with the same parent and level"
    )
    if done.renamed:
        verb = "would be certified" if done.dry_run else "certified"
        print(f"{verb} again under the file's name (the new certificates travel the tree):")
        for r in done.renamed:
            print(f"  {r.node}  {r.old} -> {r.new}")
    for r in done.revoked:
        print(f"  {r.node}  {r.old} -> {r.new}: its key is revoked; give the new name when "
              "it is invited again")
    if done.elsewhere:
        print(
            f"renamed in the file, certified by another node ({len(done.elsewhere)}; each "
            "parent renames its children when it imports the file):"
        )
        for r in done.elsewhere[:20]:
            print(f"  {r.node}  {r.old} -> {r.new}")
        if len(done.elsewhere) > 20:
            print(f"  and {len(done.elsewhere) - 20} more")
    if not (done.renamed or done.revoked or done.elsewhere):
        print("no name differs")
    if done.to_invite:
        print(f"children of {done.me} in the file that are not enrolled yet:")
        for node in done.to_invite:
            print(f"  duban invite --data {data} --child {node.id} --name {node.name} "
                  f"--level {node.level}")
    return 0


async def cmd_run(args: argparse.Namespace) -> int:
    from node.sync.catchup.tuning import ProcessTuning

    config = cfg.load(_data(args))
    listen = args.listen or str(config["server.listen"])
    host, _, port = listen.rpartition(":")
    # This process is the node's alone: it takes the catch-up's settings
    # (node/sync/catchup/tuning.py), applied once the node is open.
    tuning = ProcessTuning()
    app = create_app(config, streaming=tuning.streaming)
    runner = TimedRunner(app, ConnectionTimeouts.from_config(config), handle_signals=False)
    await runner.setup()
    tuning.apply()
    site = web.TCPSite(runner, host or "127.0.0.1", int(port))
    await site.start()
    print(f"node {config['node.id']} serving on http://{listen}  (Ctrl-C stops)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("stopping…", flush=True)
    await runner.cleanup()
    tuning.restore()
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    async with opened(args) as (config, ctx):
        payload = await status_payload(ctx)
    listen = str(config["server.listen"])
    host, _, port = listen.rpartition(":")
    url = args.url or f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{port}"
    live = await _live_status(url, payload["node"])  # type: ignore[arg-type]
    if live is not None:
        _merge_live(payload, live)
    if args.json:
        print(json.dumps(payload, ensure_ascii=False, indent=1))
        return 0
    node = payload["node"]
    assert isinstance(node, dict)
    print(f"{node['id']} {node['name']} ({node['level']})  parent: {node['parent'] or '-'}")
    print(f"counts: {payload['counts']}  own seq: {payload['own_seq']}")
    if payload["unfolded"]:
        print(f"received events not folded into item rows yet: {payload['unfolded']}")
    print(f"{'link':<14}{'pending':>9}{'oldest':>9}  {'last contact':<14} last error")
    for link in payload["links"]:  # type: ignore[attr-defined]
        age = link["oldest_pending_age_s"]
        contact = link["last_contact"]
        seen = "-" if contact is None else f"{(payload['now'] - contact) // 1000}s ago"
        error = link["last_error"] or ""
        if error and link["failures"]:
            error = f"{error} ({link['failures']} failures in a row)"
        print(
            f"{link['link']:<14}{link['pending_out']:>9}{'-' if age is None else f'{age}s':>9}"
            f"  {seen:<14} {error}"
        )
    if live is None:
        print(f"(the node is not answering at {url}: background tasks not shown)")
    for task in payload.get("background", []):  # type: ignore[attr-defined]
        if task["failures"]:
            print(
                f"background task {task['task']}: failing, {task['failures']} in a row, "
                f"last error: {task['last_error']}"
            )
    return 0


async def _live_status(url: str, node: dict[str, Any]) -> dict[str, Any] | None:
    """The running node's own status (what it keeps in memory: the errors it could
    not write to a full disk, its background tasks), or None if it does not answer."""
    try:
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
            url.rstrip("/") + "/api/v1/status"
        ) as resp:
            if resp.status != 200:
                return None
            live: dict[str, Any] = await resp.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    # The same node (id and key), not another one listening there.
    same = {k: live.get("node", {}).get(k) for k in ("id", "key_id")}
    return live if same == {"id": node["id"], "key_id": node["key_id"]} else None


def _merge_live(payload: dict[str, Any], live: dict[str, Any]) -> None:
    """Take the running node's errors and background tasks; counts and ages stay the
    database's (read now)."""
    errors = {entry["link"]: entry for entry in live.get("links", [])}
    for entry in payload["links"]:
        fresh = errors.get(entry["link"])
        if fresh is not None and (fresh.get("last_error_at") or 0) >= (
            entry["last_error_at"] or 0
        ):
            for key in ("last_error", "last_error_at", "failures"):
                entry[key] = fresh.get(key)
    payload["background"] = live.get("background", [])


async def cmd_migrate(args: argparse.Namespace) -> int:
    config = cfg.load(_data(args))
    revision = await migrate(config.database_url)
    print(f"database at revision {revision}")
    return 0


async def cmd_user_add(args: argparse.Namespace) -> int:
    config = cfg.load(_data(args))
    password = args.password
    generated = False
    if password is None and not args.no_password:
        password = secrets.token_urlsafe(12)
        generated = True
    async with opened(args, config) as (config, ctx):
        user = await ctx.accounts.add_user(
            args.name, role=args.role, unit=args.unit, password=password,
            display_name=args.display_name or "", now=ctx.clock.now_ms(),
            phone=args.phone, email=args.email,
        )
    print(f"added {user.name} ({user.role}{', ' + user.unit if user.unit else ''}) "
          f"at node {config['node.id']}")
    if generated:
        print(f"password: {password}")
    return 0


async def cmd_user_set(args: argparse.Namespace) -> int:
    async with opened(args) as (_config, ctx):
        user = await ctx.accounts.set_contact(args.name, phone=args.phone, email=args.email)
    print(f"{user.name}: phone {user.phone or '-'}, email {user.email or '-'}")
    return 0


async def cmd_user_list(args: argparse.Namespace) -> int:
    async with opened(args) as (_config, ctx):
        users = await ctx.accounts.users()
    for user in users:
        print(f"{user.name:<20} {user.role:<11} {user.unit or '-':<16} "
              f"{user.phone or '-':<16} {user.email or '-':<28} "
              f"{'disabled' if user.disabled else ''}")
    return 0


async def cmd_token(args: argparse.Namespace) -> int:
    async with opened(args) as (_config, ctx):
        token = await ctx.accounts.token_for(args.user, ctx.clock.now_ms())
    print(token)
    return 0


async def cmd_unit_add(args: argparse.Namespace) -> int:
    async with opened(args) as (_config, ctx):
        await ctx.accounts.add_unit(args.code, args.name, office=args.office,
                                    now=ctx.clock.now_ms())
    print(f"added unit {args.code} {args.name}")
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    from node.demo.play import run_demo

    return await run_demo(args)


def _reports(ctx: NodeContext) -> Reports:
    """The node's reports, as ``duban run`` builds them (node/app.py ``provide``)."""
    return Reports(
        ctx.db, ctx.clock, ctx.tree, ctx.accounts, score_rules(ctx.config),
        boards_of(ctx.config),
    )


async def cmd_report(args: argparse.Namespace) -> int:
    """The weekly summary or the quarterly bulletin, as Markdown text or JSON."""
    from node.queries import render

    try:
        async with opened(args) as (_config, ctx):
            await ctx.store.materialise_all()  # the node may have stopped mid-way
            reports = _reports(ctx)
            if args.report_command == "weekly":
                report = await reports.weekly_report(scope=args.scope, week=args.week)
                text = render.weekly_text
            else:
                report = await reports.quarterly_report(scope=args.scope, quarter=args.quarter)
                text = render.quarterly_text
    except KINDS as exc:
        raise CliError(exc.reason, exc.detail, exc.field) from None
    if args.format == "json":
        print(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        print(text(report), end="")
    return 0


async def cmd_export_ledger(args: argparse.Namespace) -> int:
    """The ledger (台账) as an Excel file, with the ledger API's filters."""
    params = {
        name: str(getattr(args, f"filter_{name}"))
        for name in LEDGER_FILTERS
        if getattr(args, f"filter_{name}") is not None
    }
    try:
        async with opened(args) as (_config, ctx):
            await ctx.store.materialise_all()  # the node may have stopped mid-way
            data, _, count = await _reports(ctx).ledger_xlsx(params)
    except KINDS as exc:
        raise CliError(exc.reason, exc.detail, exc.field) from None
    out = Path(args.out).expanduser()
    out.write_bytes(data)
    print(f"wrote {count} items to {out}")
    return 0


LEDGER_FILTERS = (
    "scope", "depth", "status", "colour", "board", "unit", "overdue", "due_from", "due_to",
    "q", "assigner", "assignee", "parent_item", "sort", "limit", "offset",
)
"""The filters of ``GET /api/v1/items``, as ``--due-from`` etc. (docs/reports.md)."""


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duban", description="Duban (督办) federated supervision")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create a root (province) node")
    p.add_argument("--data", required=True)
    p.add_argument("--id", required=True, help="node id, e.g. the division code 14")
    p.add_argument("--name", required=True)
    p.add_argument("--level", default="province")
    p.add_argument("--listen", help="HOST:PORT to serve on (saved in duban.toml)")
    p.add_argument("--database-url", help="PostgreSQL URL instead of SQLite")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("invite", help="print a one-time enrollment code for a child")
    p.add_argument("--data", required=True)
    p.add_argument("--child", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--level", required=True)
    p.add_argument(
        "--from-seq", type=int,
        help="first sequence number the child's key signs (default: 0 for a new node, after "
        "its last event held here for one enrolled before)",
    )
    p.set_defaults(func=cmd_invite)

    p = sub.add_parser("join", help="enroll this new node under its parent")
    p.add_argument("--data", required=True)
    p.add_argument("--parent", required=True, help="the parent's URL")
    p.add_argument("--code", required=True)
    p.add_argument("--root", help="root fingerprint to pin (recommended)")
    p.add_argument("--listen")
    p.add_argument("--database-url")
    p.set_defaults(func=cmd_join)

    p = sub.add_parser("key", help="this node's key (docs/operations.md)")
    key_commands = p.add_subparsers(dest="key_command", required=True)
    q = key_commands.add_parser(
        "rotate", help="make a new key and have the parent certify it (the node stopped)"
    )
    q.add_argument("--data", required=True)
    q.set_defaults(func=cmd_key_rotate)
    q = key_commands.add_parser(
        "replace",
        help="after the parent revoked this node's key: enroll again in place with a code "
        "(the node stopped)",
    )
    q.add_argument("--data", required=True)
    q.add_argument("--code", required=True, help="from the parent's `duban invite`")
    q.set_defaults(func=cmd_key_replace)

    p = sub.add_parser("revoke", help="revoke a child's key (this node stopped)")
    p.add_argument("--data", required=True)
    p.add_argument("child", help="the child's node id")
    p.add_argument(
        "--last-seq", type=int,
        help="the child's last event still vouched for (default: its last one held here)",
    )
    p.add_argument("--reason", default="", help="free text kept in the record, e.g. 钥匙遗失")
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("tree", help="the government tree")
    tree_commands = p.add_subparsers(dest="tree_command", required=True)
    q = tree_commands.add_parser(
        "import", help="check a published tree (CSV) and take its names (this node stopped)"
    )
    q.add_argument("file", help="CSV with columns code,name,parent_code,level")
    q.add_argument("--data", required=True)
    q.add_argument("--dry-run", action="store_true", help="only check; change nothing")
    q.set_defaults(func=cmd_tree_import)

    p = sub.add_parser("run", help="serve the node until Ctrl-C or SIGTERM")
    p.add_argument("--data", required=True)
    p.add_argument("--listen", help="HOST:PORT (default: server.listen)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="links, lag, counts and background tasks")
    p.add_argument("--data", required=True)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--url",
        help="the running node, asked for what it keeps in memory (default: server.listen)",
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("migrate", help="upgrade the database schema")
    p.add_argument("--data", required=True)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("user", help="people of this node")
    users = p.add_subparsers(dest="user_command", required=True)
    q = users.add_parser("add", help="add a person with a role")
    q.add_argument("--data", required=True)
    q.add_argument("--name", required=True)
    q.add_argument("--role", required=True,
                   help="leader, supervisor, unit_head, operator or viewer")
    q.add_argument("--unit", help="the unit a unit_head or operator acts for")
    q.add_argument("--display-name")
    q.add_argument("--password", help="default: a generated one, printed once")
    q.add_argument("--no-password", action="store_true", help="token-only account")
    q.add_argument("--phone", help="mobile number for SMS reminders")
    q.add_argument("--email", help="address for email reminders")
    q.set_defaults(func=cmd_user_add)
    q = users.add_parser("set", help="set a person's phone and email ('' clears)")
    q.add_argument("--data", required=True)
    q.add_argument("--name", required=True)
    q.add_argument("--phone")
    q.add_argument("--email")
    q.set_defaults(func=cmd_user_set)
    q = users.add_parser("list", help="list the people of this node")
    q.add_argument("--data", required=True)
    q.set_defaults(func=cmd_user_list)

    p = sub.add_parser("unit", help="units (office and departments) of this node")
    units = p.add_subparsers(dest="unit_command", required=True)
    q = units.add_parser("add", help="add a unit")
    q.add_argument("--data", required=True)
    q.add_argument("--code", required=True, help="e.g. office, finance, env_bureau")
    q.add_argument("--name", required=True)
    q.add_argument("--office", action="store_true", help="this is the general office")
    q.set_defaults(func=cmd_unit_add)

    p = sub.add_parser("token", help="print a new bearer token for a person")
    p.add_argument("--data", required=True)
    p.add_argument("--user", required=True)
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("demo", help="run a four-level demo tree on this machine")
    p.add_argument("--data", help="keep the demo here (default: a temporary directory)")
    p.add_argument("--base-port", type=int, default=8400)
    p.add_argument("--no-wait", action="store_true", help="exit after the walk-through")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", help="weekly summary or quarterly bulletin (docs/reports.md)")
    reports = p.add_subparsers(dest="report_command", required=True)
    for name, period, example in (("weekly", "week", "2026-W47"),
                                  ("quarterly", "quarter", "2026Q4")):
        q = reports.add_parser(name, help=f"the {name} report")
        q.add_argument("--data", required=True)
        q.add_argument("--scope", help="a node in this node's subtree (default: this node)")
        q.add_argument(f"--{period}", help=f"e.g. {example} (default: the current {period})")
        q.add_argument("--format", choices=("text", "json"), default="text")
        q.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="export data as files")
    exports = p.add_subparsers(dest="export_command", required=True)
    q = exports.add_parser("ledger", help="the ledger (台账) as an Excel file")
    q.add_argument("--data", required=True)
    q.add_argument("--out", required=True, help="the .xlsx file to write")
    for name in LEDGER_FILTERS:
        q.add_argument(f"--{name.replace('_', '-')}", dest=f"filter_{name}",
                       metavar=name.upper(), help=f"as {name} in GET /api/v1/items")
    q.set_defaults(func=cmd_export_ledger)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = asyncio.run(args.func(args))
        return code
    except KeyboardInterrupt:
        return 130
    except (NodeError, HierarchyError, ProtocolError, aiohttp.ClientError, OSError) as exc:
        print(f"duban: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
