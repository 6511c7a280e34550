"""``duban demo``: a whole four-level federation on this machine, with sample items.

Starts a province, 2 cities, 2 counties each and 2 townships each as real
nodes (own key, own SQLite database, own HTTP server on loopback), enrolled
over HTTP like ``duban join``; then plays out sample items in every state —
some overdue, one returned, a major item on an approved plan — through the
real sync, and serves until Ctrl-C.

History is seeded in the past by running the whole federation on a clock set
back ten days and moving it forward to the present as the story unfolds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import func, select

from hierarchy.roles import Action
from node.clock import OffsetClock
from node.demo import samples
from node.demo.localtree import LocalTree, RunningNode, Shape, build, four_levels, reopen
from node.errors import NodeError
from node.http.services import WORKFLOW
from node.storage import schema as t
from node.storage.accounts import User
from node.sync.catchup.tuning import ProcessTuning
from node.workflow.attachments import NewFile
from node.workflow.drafts import act, assign
from protocol.events import (
    Closed,
    Deployed,
    Feedback,
    Milestone,
    PlanDecided,
    PlanSubmitted,
    Resolved,
    Reviewed,
    Withdrawn,
)

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
DEMO_PASSWORD = "duban-demo"
DEMO_SETTINGS = {
    "sync.long_poll_seconds": 20,
    "sync.retry_initial_seconds": 0.2,
    "sync.retry_max_seconds": 5.0,
}


class DemoError(NodeError):
    """The demo cannot run (reason ``demo_failed``); the message says what to change
    and is the whole of ``str()``."""

    def __init__(self, message: str) -> None:
        super().__init__('demo_failed', message)

    def __str__(self) -> str:
        return self.detail


def say(text: str) -> None:
    print(text, flush=True)


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    end = time.monotonic() + 30
    while not await check():
        if time.monotonic() > end:
            raise DemoError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _status_at(node: RunningNode, item: str) -> str | None:
    """The item's status at ``node``, with ``+plan`` while a plan awaits a decision."""
    async with node.ctx.db.read() as conn:
        row = (
            await conn.execute(
                select(t.items.c.status, t.items.c.state).where(t.items.c.item_id == item)
            )
        ).first()
    if row is None:
        return None
    plan = json.loads(row.state).get("plan") or {}
    status: str = row.status
    return status + ("+plan" if plan.get("status") == "submitted" else "")


DEPARTMENTS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "township": (("econ", "经济发展办"), ("social", "社会事务办")),
}
"""Two departments at every node (unit code, name), by level; others as ``_DEFAULT_DEPTS``."""
_DEFAULT_DEPTS = (("econ", "发展和改革局"), ("env", "生态环境局"))

PEOPLE: tuple[tuple[str, str, str | None, str], ...] = (
    ("admin", "supervisor", "office", "督查室"),
    ("leader", "leader", None, "分管领导"),
    ("viewer", "viewer", None, "查看人员"),
)
"""Everyone at every node but the departments' people: (login, role, unit, display name).
Each department has a head ``<unit>-head`` (unit_head) and an operator ``<unit>-op``."""


def departments(level: str) -> tuple[tuple[str, str], tuple[str, str]]:
    return DEPARTMENTS.get(level, _DEFAULT_DEPTS)


async def add_people(tree: LocalTree, shape: Shape) -> None:
    """At every node: the office and two departments, and a person in every role: a
    leader, the 督查室 (supervisor), a viewer, and each department's head and operator.
    The nodes are furnished at once: hashing the passwords (Argon2) is most of the cost
    and runs on the worker threads."""
    levels = {node: level for node, _parent, _name, level in shape}

    async def furnish(node: RunningNode) -> None:
        accounts = node.ctx.accounts
        now = node.ctx.clock.now_ms()
        await accounts.add_unit("office", "办公室", office=True, now=now)
        for login, role, unit, display in PEOPLE:
            await accounts.add_user(login, role=role, unit=unit, password=DEMO_PASSWORD,
                                    display_name=display, now=now)
        for code, name in departments(levels[node.id]):
            await accounts.add_unit(code, name, office=False, now=now)
            await accounts.add_user(f"{code}-head", role="unit_head", unit=code,
                                    password=DEMO_PASSWORD, display_name=f"{name}负责人", now=now)
            await accounts.add_user(f"{code}-op", role="operator", unit=code,
                                    password=DEMO_PASSWORD, display_name=f"{name}联络员", now=now)

    await asyncio.gather(*(furnish(node) for node in tree.nodes.values()))


async def _status_counts(node: RunningNode) -> list[tuple[str, int]]:
    async with node.ctx.db.read() as conn:
        rows = await conn.execute(
            select(t.items.c.status, func.count()).group_by(t.items.c.status).order_by(
                t.items.c.status
            )
        )
        return [(r[0], int(r[1])) for r in rows]


class Story:
    """Plays one item's life, waiting for sync between the two parties."""

    def __init__(self, tree: LocalTree, clock: OffsetClock) -> None:
        self.tree = tree
        self.clock = clock

    async def at(self, node: str, item: str, status: str) -> None:
        async def check() -> bool:
            return await _status_at(self.tree[node], item) == status

        await _eventually(check, f"{item} to be {status} at {node}")

    async def assign(self, by: str, to: str, title: str, **fields: object) -> str:
        [(event, _)] = await self.tree[by].ctx.store.append_own(
            [assign(me=by, assignee=to, title=title, **fields)]  # type: ignore[arg-type]
        )
        await self.at(to, event.item, "assigned")
        return event.item

    async def do(self, node: str, item: str, to: str, kind: type, expect: str, **f: object) -> None:
        await self.tree[node].ctx.store.append_own([act(kind, me=node, item=item, to=to, **f)])
        await self.at(to, item, expect)

    def later(self, hours: float) -> None:
        self.clock.offset_ms += int(hours * HOUR_MS)


async def seed(tree: LocalTree, clock: OffsetClock) -> list[tuple[str, str]]:
    """Sample items in every state; returns (item id, what it shows)."""
    s = Story(tree, clock)
    shown: list[tuple[str, str]] = []

    # 1. Assigned ten days ago, never touched: red (overdue).
    town = "140201001"
    item = await s.assign("140201", town, "排查农村危房安全隐患", source="topical")
    shown.append((item, "assigned 10 days ago, nothing done: overdue (red)"))

    # 2. A general item closed on time.
    town = "140101001"
    item = await s.assign("14", town, "整治农村人居环境", board="daily", source="plenary")
    s.later(3)
    await s.do(town, item, "14", Deployed, "deployed", note="已召开专题会议研究部署")
    s.later(20)
    await s.do(town, item, "14", Feedback, "reporting", text="已清理垃圾点12处", progress=60,
               attachments=())
    s.later(48)
    await s.do(town, item, "14", Resolved, "resolved", text="全部整治完毕", attachments=())
    s.later(5)
    await s.do("14", item, town, Reviewed, "accepted", outcome="accept", reason="")
    await s.do("14", item, town, Closed, "closed", note="销号")
    shown.append((item, "deployed, reported, resolved, accepted and closed (0)"))

    # 3. A general item returned for rework, now overdue.
    town = "140101002"
    item = await s.assign("14", town, "化解信访积案", board="daily", source="instruction")
    s.later(10)
    await s.do(town, item, "14", Deployed, "deployed", note="成立专班")
    s.later(30)
    await s.do(town, item, "14", Resolved, "resolved", text="已与信访人达成协议", attachments=())
    s.later(4)
    await s.do("14", item, town, Reviewed, "returned", outcome="return",
               reason="缺少书面协议和回访记录")
    shown.append((item, "resolved, then returned (退回) by the province"))

    # 4. A major item on an approved plan (key investment board).
    town = "140102001"
    item = await s.assign("14", town, "推进重点招商项目落地", board="investment",
                          source="executive", item_class="major")
    s.later(5)
    await s.do(town, item, "14", Deployed, "deployed", note="主要领导牵头")
    s.later(30)
    await s.do(town, item, "14", Feedback, "reporting", text="已与投资方完成首轮洽谈",
               progress=15, attachments=())
    now = clock.now_ms()
    milestones = (
        Milestone(title="完成项目签约", due=now + 10 * DAY_MS),
        Milestone(title="完成土地供应", due=now + 40 * DAY_MS),
        Milestone(title="项目开工", due=now + 70 * DAY_MS),
    )
    await s.do(town, item, "14", PlanSubmitted, "reporting+plan", milestones=milestones,
               note="一个月内难以完成，报送解决方案和时间节点")
    s.later(6)
    await s.do("14", item, town, PlanDecided, "planned", approved=True, reason="")
    shown.append((item, "major item on an approved plan with three milestones"))

    # 5. Decomposition at a city: a key task for a county, deployed and reporting.
    item = await s.assign("1402", "140202", "重点工程项目进度督查", board="engineering",
                          source="office")
    s.later(2)
    await s.do("140202", item, "1402", Deployed, "deployed", note="已分解到乡镇")
    await s.do("140202", item, "1402", Feedback, "reporting", text="三个项目均已复工",
               progress=35, attachments=())
    shown.append((item, "a city's item for a county, reporting 35%"))

    # 6. A withdrawn item.
    item = await s.assign("1401", "140102", "临时性检查任务", source="office")
    await s.do("1401", item, "140102", Withdrawn, "withdrawn", reason="任务已由省级统一部署")
    shown.append((item, "withdrawn (撤回) by the city"))

    # 7. Resolved, awaiting the province's review.
    town = "140202002"
    item = await s.assign("14", town, "规范村级财务管理", source="topical")
    s.later(8)
    await s.do(town, item, "14", Deployed, "deployed", note="已部署")
    await s.do(town, item, "14", Resolved, "resolved", text="已建立村级财务公开制度",
               attachments=())
    shown.append((item, "resolved, awaiting the province's review"))

    # 8. One province item to every township (the cascade), with evidence coming up.
    item = await cascade_story(s, tree)
    shown.append((item, "to every township: passed down by each level, mixed progress, "
                        "photos and PDFs gone up to the province"))

    # 9. Assigned just now: green, due tomorrow.
    clock.offset_ms = 0
    item = await s.assign("14", "140101", "做好安全生产大检查", source="office")
    shown.append((item, "just assigned to a county: green"))
    return shown


CASCADE_TITLE = "全省各乡镇开展燃气安全排查"


async def _person(node: RunningNode, name: str) -> User:
    found = await node.ctx.accounts.user_by_name(name)
    if found is None:  # pragma: no cover - add_people made them
        raise DemoError(f"no person {name!r} at {node.id}")
    return found[0]


async def _cascaded_to(node: RunningNode, top: str) -> str | None:
    """The sub-item of the cascade ``top`` addressed to ``node``, once it holds one."""
    async with node.ctx.db.read() as conn:
        return (
            await conn.execute(
                select(t.items.c.item_id)
                .where(t.items.c.assignee == node.id, t.items.c.cascade.is_not(None))
                .order_by(t.items.c.assigned_at.desc())
            )
        ).scalar()


async def cascade_story(s: Story, tree: LocalTree) -> str:
    """The province's 督查室 assigns one item to its own office with ``cascade:
    township``; every level passes it down (``cascade.auto``). Then the townships
    answer unevenly: some report with a site photo and a PDF record, one resolves
    and its county accepts, some only deploy, the rest do nothing (and turn red).
    Returns the province item's id."""
    province = tree["14"]
    admin = await _person(province, "admin")
    event, _ = await province.app[WORKFLOW].assign(admin, {
        "assignee": "office", "title": CASCADE_TITLE, "board": "key_task",
        "source": "executive", "class": "general", "calendar": "natural",
        "description": "按照省政府常务会议部署，全省各乡镇全面排查燃气用户、管线和"
                       "经营场所安全隐患，建立隐患清单和整改台账，照片和检查记录随反馈上报。",
        "cascade": "township",
    })
    townships = sorted(n for n, node in tree.nodes.items() if len(n) == 9)
    subs: dict[str, str] = {}
    for town in townships:
        node = tree[town]

        async def holds(node: RunningNode = node) -> bool:
            return await _cascaded_to(node, event.item) is not None

        await _eventually(holds, f"the cascade to reach {town}")
        found = await _cascaded_to(node, event.item)
        assert found is not None
        subs[town] = found
    s.later(20)
    reported = []
    for i, town in enumerate(townships):
        node, sub = tree[town], subs[town]
        wf, who = node.app[WORKFLOW], await _person(node, "admin")
        place = node.ctx.tree.tree.node(town).name
        if i % 4 == 3:
            continue  # nothing done: overdue
        await wf.act(who, sub, Action.DEPLOY, Deployed, note="已召开专题会议部署燃气安全排查")
        if i % 4 == 2:
            continue  # deployed only
        photo = NewFile(samples.photo(place, "燃气安全排查现场"), "image/jpeg", "现场照片.jpg")
        record = NewFile(
            samples.record_pdf("燃气安全排查记录", [
                f"排查单位：{place}",
                f"排查燃气用户 {60 + 7 * i} 户，检查管线 {3 + i} 公里。",
                f"发现隐患 {1 + i % 3} 处，已整改 {i % 3} 处，其余限期整改。",
            ]),
            "application/pdf", "排查记录.pdf",
        )
        files = (photo.ref, record.ref)
        digests = tuple(f.digest for f in files)
        if i == 0:
            await wf.act(who, sub, Action.RESOLVE, Resolved, uploads=(photo, record),
                         text="全部燃气用户排查完毕，隐患已全部整改", attachments=digests,
                         files=files)
        else:
            await wf.act(who, sub, Action.FEEDBACK, Feedback, uploads=(photo, record),
                         text="已完成入户排查，正在督促整改", progress=40 + 10 * i,
                         attachments=digests, files=files)
        reported.append(town)
    # The county reviews its township's resolution: review at each level.
    first = townships[0]
    county = tree[first[:6]]
    await s.at(first[:6], subs[first], "resolved")
    await county.app[WORKFLOW].act(
        await _person(county, "admin"), subs[first], Action.REVIEW, Reviewed,
        outcome="accept", reason="",
    )
    # Wait until the province holds every report and its files (they travel up behind).
    want = 2 * len(reported)

    async def files_up() -> bool:
        async with province.ctx.db.read() as conn:
            held = await conn.scalar(
                select(func.count()).select_from(t.attachments)
                .where(t.attachments.c.source.is_not(None))
            )
        return int(held or 0) >= want

    await _eventually(files_up, "the townships' files to reach the province")
    return event.item


async def run_demo(args: argparse.Namespace) -> int:
    keep = args.data is not None
    base = Path(args.data).expanduser().resolve() if keep else Path(
        tempfile.mkdtemp(prefix="duban-demo-")
    )
    shape = four_levels()
    clock = OffsetClock(-10 * DAY_MS)
    ports = {node: args.base_port + i for i, (node, *_rest) in enumerate(shape)}
    started = time.monotonic()
    # The whole tree runs in this process: it takes the catch-up's settings once
    # (node/sync/catchup/tuning.py), applied when every node is open.
    tuning = ProcessTuning()
    if (base / shape[0][0]).exists():
        clock.offset_ms = 0
        say(f"reopening the demo tree in {base}")
        tree = await reopen(base, clock, shape, streaming=tuning.streaming)
        shown: list[tuple[str, str]] = []
    else:
        say(f"creating a four-level demo tree in {base} …")
        try:
            tree = await build(
                base, clock, shape, extra=DEMO_SETTINGS, ports=ports,
                streaming=tuning.streaming,
            )
        except OSError as exc:
            raise DemoError(
                f"{exc.strerror or exc}: the demo uses ports {args.base_port}-"
                f"{args.base_port + len(shape) - 1}; pick others with --base-port"
            ) from None
        say(f"  {len(shape)} nodes enrolled and running ({time.monotonic() - started:.1f}s)")
        try:
            await add_people(tree, shape)
            say("playing sample items through the federation …")
            shown = await seed(tree, clock)
        except BaseException:
            await tree.stop()  # or its servers and database threads keep the process alive
            raise
    tuning.apply()
    try:
        _print_summary(tree, shape, shown, await _status_counts(tree[shape[0][0]]))
        if args.no_wait:
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        say("running; press Ctrl-C to stop")
        await stop.wait()
        return 0
    finally:
        say("stopping the demo tree …")
        await tree.stop()
        tuning.restore()
        if not keep:
            say(f"(demo data was in {base}; pass --data DIR to keep it)")


def _print_summary(
    tree: LocalTree,
    shape: list[tuple[str, str | None, str, str]],
    shown: list[tuple[str, str]],
    counts: list[tuple[str, int]],
) -> None:
    say("")
    say(f"{'node':<12} {'level':<9} {'status (JSON)':<44} name")
    for node, _parent, name, level in shape:
        indent = {"province": "", "city": " ", "county": "  ", "township": "   "}[level]
        say(f"{indent + node:<12} {level:<9} {tree[node].url + '/api/v1/status':<44} {name}")
    if shown:
        say("")
        say("sample items, as the province's mirror holds them:")
        for item, what in shown:
            say(f"  {item:<14} {what}")
        say("")
        say("the province's mirror by status: " + ", ".join(
            f"{status} {count}" for status, count in counts))
    say("")
    say(f"people at every node (password {DEMO_PASSWORD} for all):")
    for login, role, _unit, display in PEOPLE:
        say(f"  {login:<12} {role:<11} {display}")
    for level in ("province", "township"):
        where = "at townships" if level == "township" else "at the province, cities and counties"
        for code, name in departments(level):
            say(f"  {code + '-head':<12} {'unit_head':<11} {name}负责人 ({where})")
            say(f"  {code + '-op':<12} {'operator':<11} {name}联络员 ({where})")
    say("")
    say(f"sign in at any node as admin (督查室) or leader (分管领导), password {DEMO_PASSWORD}")
    say(f"  e.g. {tree['14'].url}/  — or with the API:")
    say(f"  curl -s -c jar -H 'Content-Type: application/json' "
        f"-d '{{\"name\":\"admin\",\"password\":\"{DEMO_PASSWORD}\"}}' "
        f"{tree['14'].url}/api/v1/login")
    say(f"  curl -s -b jar '{tree['14'].url}/api/v1/items?colour=red'")


def main() -> None:  # pragma: no cover - `duban demo` is the entry point
    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    parser.add_argument("--base-port", type=int, default=8400)
    parser.add_argument("--no-wait", action="store_true")
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(run_demo(parser.parse_args())))


__all__ = ["add_people", "cascade_story", "run_demo", "seed"]
