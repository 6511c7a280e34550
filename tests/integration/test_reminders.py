"""Reminders end to end: real nodes, a real HTTP SMS gateway, SMTP server and webhook.

An injected :class:`ManualClock` walks items through their whole life; after
each step the scheduler runs one pass (``run_once``) and the test asserts
exactly which reminders reached whom, by which channel — across a node
restart, and for a node that was down when a reminder fell due.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import Envelope, Session

from node.clock import ManualClock
from node.demo.localtree import RunningNode
from node.http.api.reminders import REMINDERS
from node.reminders.scheduler import RunReport
from tests.api_client import Api, person
from tests.federation import build, eventually

CHINA = timezone(timedelta(hours=8))
T0 = int(datetime(2026, 3, 2, 9, 0, tzinfo=CHINA).timestamp() * 1000)
HOUR = 3_600_000
ROOT = [("14", None, "山西省", "province")]
TREE = [("14", None, "山西省", "province"), ("1401", "14", "太原市", "city")]
TITLE = "整治汾河流域污染"

ENV_HEAD = ("env_head", "unit_head", "env", "13800000001", "env_head@example.gov.cn")
ENV_OP = ("env_op", "operator", "env", "13800000002", "env_op@example.gov.cn")
FIN_HEAD = ("fin_head", "unit_head", "fin", "13800000003", "fin_head@example.gov.cn")
SUP = ("sup", "supervisor", None, "13800000004", "sup@example.gov.cn")
OFFICE_HEAD = ("office_head", "unit_head", "office", "13800000005", "office@example.gov.cn")


# ------------------------------------------------------------------ stand-ins


@dataclass
class HttpReceiver:
    """A real HTTP server on loopback recording every request; failures injected first.

    ``failures[key]`` lists what the next requests for ``key`` (a phone, or
    "webhook") get: an HTTP status such as "500", or "timeout" (no answer
    before the client gives up). After the list is used up, requests succeed.
    """

    failures: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[dict[str, Any], dict[str, str]]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.requests.append((body, dict(request.headers)))
        key = body.get("phone", "webhook")
        plan = self.failures.get(key)
        if plan:
            what = plan.pop(0)
            if what == "timeout":
                await asyncio.sleep(1.5)
                return web.Response(status=200, text="too late")
            return web.Response(status=int(what), text="gateway busy")
        self.accepted.append(body | {"_headers": dict(request.headers)})
        return web.json_response({"code": "OK"})

    async def start(self, path: str) -> None:
        app = web.Application()
        app.router.add_post(path, self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}{path}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass
class Mailbox:
    """An aiosmtpd handler: records accepted mail; ``failures[rcpt]`` answers first."""

    failures: dict[str, list[str]] = field(default_factory=dict)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
        rcpt = envelope.rcpt_tos[0]
        plan = self.failures.get(rcpt)
        if plan:
            self.refused += 1
            return plan.pop(0)
        assert isinstance(envelope.content, bytes)
        mail = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(mail, EmailMessage)
        self.accepted.append({
            "to": rcpt,
            "from": envelope.mail_from,
            "subject": str(mail["Subject"]),
            "text": mail.get_content().strip(),
            "id": str(mail["X-Duban-Message-Id"]),
        })
        return "250 OK"


@dataclass
class Channels:
    sms: HttpReceiver
    webhook: HttpReceiver
    mail: Mailbox
    smtp_port: int

    def settings(self, **more: Any) -> dict[str, Any]:
        return {
            "reminders.tick_seconds": 3600.0,  # the test drives the passes
            "reminders.retry_initial_seconds": 60.0,
            "reminders.retry_max_seconds": 600.0,
            "sms.enabled": True,
            "sms.url": self.sms.url,
            "sms.headers": '{"X-Api-Key": "k-123"}',
            "sms.timeout_seconds": 0.5,
            "smtp.enabled": True,
            "smtp.host": "127.0.0.1",
            "smtp.port": self.smtp_port,
            "smtp.from": "duban@14.example.gov.cn",
            "smtp.timeout_seconds": 5.0,
            "webhook.enabled": True,
            "webhook.url": self.webhook.url,
            "webhook.secret": "s3cret",
            "webhook.timeout_seconds": 0.5,
            **{k.replace("__", "."): v for k, v in more.items()},
        }


@pytest.fixture
async def channels() -> AsyncIterator[Channels]:
    sms, webhook, mail = HttpReceiver(), HttpReceiver(), Mailbox()
    await sms.start("/sms/send")
    await webhook.start("/hooks/duban")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SmtpServer(mail, hostname="smtp.test"), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield Channels(sms, webhook, mail, port)
    finally:
        server.close()
        await server.wait_closed()
        await sms.stop()
        await webhook.stop()


# ------------------------------------------------------------------ helpers


async def add_people(node: RunningNode, *people: tuple[str, str, str | None, str, str]) -> None:
    ctx = node.ctx
    units = await ctx.accounts.units()
    if "office" not in units:
        await ctx.accounts.add_unit("office", "办公室", office=True, now=ctx.clock.now_ms())
    for name, role, unit, phone, email in people:
        await person(node, name, role, unit)
        await ctx.accounts.set_contact(name, phone=phone, email=email)


async def api_for(session: aiohttp.ClientSession, node: RunningNode, name: str) -> Api:
    token = await node.ctx.accounts.token_for(name, node.ctx.clock.now_ms())
    return Api(session, node, token)


async def tick(node: RunningNode) -> RunReport:
    return await node.app[REMINDERS].run_once()


_STEPS = {"研究部署": "deploy", "首次反馈": "feedback", "落实解决": "resolve"}


def tag(text: str) -> tuple[str, str, bool]:
    """(deadline, kind, late) read back from a Chinese reminder text."""
    step = next(v for k, v in _STEPS.items() if f"（{k}）" in text)
    kind = "due_soon" if "将于" in text else "overdue"
    assert kind == "due_soon" or "超期" in text, text
    return step, kind, text.startswith("[补发]")


class Ledger:
    """Everything delivered so far, and what is new since the last check."""

    def __init__(self, ch: Channels) -> None:
        self.ch = ch
        self.seen = (0, 0, 0)

    def new(self) -> Counter[tuple[str, str, tuple[str, str, bool]]]:
        sms, mail, hook = self.ch.sms.accepted, self.ch.mail.accepted, self.ch.webhook.accepted
        got: Counter[tuple[str, str, tuple[str, str, bool]]] = Counter()
        for entry in sms[self.seen[0]:]:
            got["sms", entry["phone"], tag(entry["text"])] += 1
        for entry in mail[self.seen[1]:]:
            got["email", entry["to"], tag(entry["text"])] += 1
            assert "【督办提醒】" in entry["subject"] and entry["from"] == "duban@14.example.gov.cn"
        for entry in hook[self.seen[2]:]:
            names = ",".join(sorted(r["name"] for r in entry["recipients"]))
            got["webhook", names, (entry["deadline"], entry["kind"], entry["late"])] += 1
            assert tag(entry["text"]) == (entry["deadline"], entry["kind"], entry["late"])
        self.seen = (len(sms), len(mail), len(hook))
        return got

    def expect(self, *reminders: tuple[str, str, bool],
               people: tuple[tuple[str, str, str | None, str, str], ...] = (ENV_HEAD, ENV_OP)
               ) -> None:
        want: Counter[tuple[str, str, tuple[str, str, bool]]] = Counter()
        for reminder in reminders:
            for _, _, _, phone, email in people:
                want["sms", phone, reminder] += 1
                want["email", email, reminder] += 1
            want["webhook", ",".join(sorted(p[0] for p in people)), reminder] += 1
        assert self.new() == want


# ------------------------------------------------------------------ tests


async def test_whole_life_every_reminder_once_to_the_right_people(
    tmp_path: Path, channels: Channels
) -> None:
    clock = ManualClock(T0)
    fed = await build(tmp_path, clock, ROOT, extra=channels.settings())
    node = fed["14"]
    seen = Ledger(channels)
    try:
        await add_people(node, ENV_HEAD, ENV_OP, FIN_HEAD, SUP, OFFICE_HEAD)
        async with aiohttp.ClientSession() as session:
            sup = await api_for(session, node, "sup")
            created = await sup.post("/api/v1/items", {
                "title": TITLE, "assignee": "env", "class": "general",
            }, expect=201)
            item = created["id"]
            assert created["deadlines"]["deploy_ms"] == T0 + 24 * HOUR

            async def at(hours: float) -> RunReport:
                clock.set(T0 + int(hours * HOUR))
                return await tick(node)

            assert (await at(0)).recorded == 0
            await at(18.99)
            seen.expect()
            report = await at(19)  # 5 h before the 1-day deadline
            assert (report.recorded, report.queued, report.sent) == (1, 5, 5)
            seen.expect(("deploy", "due_soon", False))
            sms = channels.sms.accepted[-1]
            assert sms["text"] == (
                f"【督办提醒】事项《{TITLE}》将于2026-03-03 09:00到期（研究部署），请及时办理。"
            )
            assert sms["_headers"]["X-Api-Key"] == "k-123"
            assert sms["_headers"]["Idempotency-Key"] == sms["id"]
            assert (await tick(node)).recorded == 0  # the same instant again: nothing
            seen.expect()

            operator = await api_for(session, node, "env_op")
            await at(20)
            await operator.post(f"/api/v1/items/{item}/deploy", {"note": "已召开专题会议"})
            await at(25)  # deployed in time: no overdue notice
            seen.expect()

            await at(67)  # 5 h before the 3-day deadline
            seen.expect(("feedback", "due_soon", False))
            # A restart in the middle, the feedback step still open: what was sent is
            # in the database, so nothing is sent again.
            await node.stop()
            await node.start()
            await at(68)
            seen.expect()
            await at(72)  # the 3-day deadline passes without feedback
            seen.expect(("feedback", "overdue", False))
            head = await api_for(session, node, "env_head")
            await at(73)
            await head.post(f"/api/v1/items/{item}/feedback",
                            {"text": "已排查排污口", "progress": 40})
            await at(100)
            seen.expect()

            # Down when the 7-day deadline's reminder (24 h before) falls due.
            clock.set(T0 + 5 * 24 * HOUR)
            await node.stop()
            clock.set(T0 + 6 * 24 * HOUR + 2 * HOUR)
            await node.start()
            await tick(node)
            seen.expect(("resolve", "due_soon", True))
            late = channels.sms.accepted[-1]["text"]
            assert late.startswith("[补发]【督办提醒】") and "2026-03-09 09:00" in late

            await at(6 * 24 + 3)
            operator = await api_for(session, node, "env_op")
            await operator.post(f"/api/v1/items/{item}/resolve", {"text": "排污口已全部封堵"})
            sup = await api_for(session, node, "sup")
            await sup.post(f"/api/v1/items/{item}/review", {"outcome": "accept"})
            await sup.post(f"/api/v1/items/{item}/close", {"note": "销号"})
            await at(8 * 24)  # past the 7-day deadline: closed, so nothing
            await at(40 * 24)
            seen.expect()

            # The message log: 4 reminders x (2 SMS + 2 emails + 1 webhook), all sent once.
            log = await sup.get(f"/api/v1/items/{item}/messages")
            rows = [(r["deadline"], r["kind"], r["late"], r["outcome"]) for r in log["reminders"]]
            assert rows == [
                ("deploy", "due_soon", False, "queued"),
                ("feedback", "due_soon", False, "queued"),
                ("feedback", "overdue", False, "queued"),
                ("resolve", "due_soon", True, "queued"),
            ]
            messages = log["messages"]
            assert len(messages) == 20
            assert {m["status"] for m in messages} == {"sent"}
            assert {m["attempts"] for m in messages} == {1}
            assert {m["person"] for m in messages} == {"env_head", "env_op", ""}
            assert sum(m["late"] for m in messages) == 5
            assert len({m["id"] for m in messages}) == 20
            to_operator = {(m["channel"], m["recipient"]) for m in messages
                           if m["person"] == "env_op"}
            assert to_operator == {("sms", "13800000002"), ("email", "env_op@example.gov.cn")}
            hooks = {m["recipient"] for m in messages if m["channel"] == "webhook"}
            assert hooks == {channels.webhook.url}
            # Nobody else heard anything.
            phones = {e["phone"] for e in channels.sms.accepted}
            assert phones == {ENV_HEAD[3], ENV_OP[3]}
            assert len(channels.sms.requests) == 8 and len(channels.mail.accepted) == 8
            status = await sup.get("/api/v1/notifications/status")
            assert status["channels"]["sms"] | {"oldest_pending": None} == {
                "enabled": True, "pending": 0, "retrying": 0, "failed": 0, "sent": 8,
                "cancelled": 0, "oldest_pending": None, "last_error": None,
            }
            assert status["reminders"] == {"queued": 4, "superseded": 0, "no_recipient": 0}
    finally:
        await fed.stop()


async def test_failures_are_retried_with_backoff_until_delivered(
    tmp_path: Path, channels: Channels
) -> None:
    clock = ManualClock(T0)
    fed = await build(tmp_path, clock, ROOT, extra=channels.settings())
    node = fed["14"]
    channels.sms.failures[ENV_HEAD[3]] = ["500", "503", "timeout"]
    channels.mail.failures[ENV_OP[4]] = ["451 4.3.0 Mailbox busy, try later"]
    channels.webhook.failures["webhook"] = ["502"]
    try:
        await add_people(node, ENV_HEAD, ENV_OP, SUP)
        async with aiohttp.ClientSession() as session:
            sup = await api_for(session, node, "sup")
            item = (await sup.post("/api/v1/items", {"title": TITLE, "assignee": "env"},
                                   expect=201))["id"]
            clock.set(T0 + 19 * HOUR)
            report = await tick(node)
            assert (report.queued, report.sent, report.retrying) == (5, 2, 3)

            status = await sup.get("/api/v1/notifications/status")
            assert status["channels"]["sms"]["retrying"] == 1
            assert "HTTP 500" in status["channels"]["sms"]["last_error"]
            assert "451" in status["channels"]["email"]["last_error"]
            assert "HTTP 502" in status["channels"]["webhook"]["last_error"]

            async def pending() -> dict[str, dict[str, Any]]:
                log = await sup.get(f"/api/v1/items/{item}/messages")
                return {f"{m['channel']}:{m['person']}": m for m in log["messages"]
                        if m["status"] == "pending"}

            def wait_s(message: dict[str, Any]) -> float:
                due = datetime.fromisoformat(message["next_attempt_at"]).timestamp()
                return due - clock.now_ms() / 1000

            waiting = await pending()
            assert set(waiting) == {"sms:env_head", "email:env_op", "webhook:"}
            assert all(30 <= wait_s(m) <= 60 for m in waiting.values())  # 60 s, equal jitter

            assert (await tick(node)).sent == 0  # not yet time: nothing is tried
            assert len(channels.sms.requests) == 2

            clock.advance(seconds=60)
            report = await tick(node)
            assert (report.sent, report.retrying) == (2, 1)  # mail and webhook go through
            sms = (await pending())["sms:env_head"]
            assert sms["attempts"] == 2 and "HTTP 503" in sms["last_error"]
            assert 60 <= wait_s(sms) <= 120

            clock.advance(seconds=120)
            assert (await tick(node)).retrying == 1
            sms = (await pending())["sms:env_head"]
            assert sms["attempts"] == 3 and "no answer within 0.5s" in sms["last_error"]
            assert 120 <= wait_s(sms) <= 240

            clock.advance(seconds=240)
            assert (await tick(node)).sent == 1
            clock.advance(hours=1)
            assert (await tick(node)).sent == 0
            assert await pending() == {}

            # Every attempt of one message carried the same id; each arrived once.
            head_tries = [b for b, _ in channels.sms.requests if b["phone"] == ENV_HEAD[3]]
            assert len(head_tries) == 4 and len({b["id"] for b in head_tries}) == 1
            assert Counter(e["phone"] for e in channels.sms.accepted) == {
                ENV_HEAD[3]: 1, ENV_OP[3]: 1}
            assert Counter(e["to"] for e in channels.mail.accepted) == {
                ENV_HEAD[4]: 1, ENV_OP[4]: 1}
            assert channels.mail.refused == 1
            assert len(channels.webhook.requests) == 2 and len(channels.webhook.accepted) == 1
            hook = channels.webhook.accepted[0]
            assert hook["_headers"]["X-Duban-Signature"].startswith("sha256=")
            assert hook["_headers"]["Idempotency-Key"] == hook["message_id"]
            log = await sup.get(f"/api/v1/items/{item}/messages")
            assert {m["status"] for m in log["messages"]} == {"sent"}
            status = await sup.get("/api/v1/notifications/status")
            assert [status["channels"][c]["sent"] for c in ("sms", "email", "webhook")] == [
                2, 2, 1]
    finally:
        await fed.stop()


async def test_done_steps_cancel_pending_messages_and_failures_give_up_visibly(
    tmp_path: Path, channels: Channels
) -> None:
    clock = ManualClock(T0)
    settings = channels.settings(reminders__max_attempts=2, smtp__enabled=False,
                                 webhook__enabled=False)
    fed = await build(tmp_path, clock, ROOT, extra=settings)
    node = fed["14"]
    channels.sms.failures[ENV_HEAD[3]] = ["500"] * 10
    channels.sms.failures[ENV_OP[3]] = ["500"]
    try:
        await add_people(node, ENV_HEAD, ENV_OP, SUP)
        async with aiohttp.ClientSession() as session:
            sup = await api_for(session, node, "sup")
            item = (await sup.post("/api/v1/items", {"title": TITLE, "assignee": "env"},
                                   expect=201))["id"]
            clock.set(T0 + 19 * HOUR)
            assert (await tick(node)).retrying == 2
            # The unit deploys while both SMS wait for their retry: both are cancelled.
            operator = await api_for(session, node, "env_op")
            await operator.post(f"/api/v1/items/{item}/deploy", {})
            clock.advance(hours=1)
            report = await tick(node)
            assert (report.cancelled, report.sent, report.failed) == (2, 0, 0)
            assert len(channels.sms.requests) == 2 and channels.sms.accepted == []

            clock.set(T0 + 67 * HOUR)
            assert (await tick(node)).sent == 1  # the operator's; the head's fails
            clock.set(T0 + 72 * HOUR)
            report = await tick(node)  # the head's 2nd try fails for good; overdue notice
            assert (report.failed, report.sent, report.retrying) == (1, 1, 1)
            await operator.post(f"/api/v1/items/{item}/feedback",
                                {"text": "进行中", "progress": 10})
            clock.set(T0 + 6 * 24 * HOUR)
            report = await tick(node)  # feedback given: the head's overdue retry is cancelled
            assert (report.cancelled, report.recorded, report.sent) == (1, 1, 1)

            # The unit asks for an extension and the assigner approves it: the old
            # reminder's retry is cancelled, no overdue notice for the old deadline, a new
            # reminder for the new one.
            clock.set(T0 + 6 * 24 * HOUR + HOUR)
            new_deadline = T0 + 10 * 24 * HOUR
            await operator.post(f"/api/v1/items/{item}/request_extension", {
                "text": "需协调上游", "deadline": new_deadline, "progress": "已完成一半",
            })
            await sup.post(f"/api/v1/items/{item}/decide_extension", {"approve": True})
            clock.set(T0 + 7 * 24 * HOUR + HOUR)
            report = await tick(node)
            assert (report.cancelled, report.recorded) == (1, 0)
            clock.set(T0 + 9 * 24 * HOUR)
            report = await tick(node)
            assert report.recorded == 1
            clock.advance(hours=2)
            assert (await tick(node)).failed == 1

            log = await sup.get(f"/api/v1/items/{item}/messages")
            assert [(r["deadline"], r["kind"], r["due"][:10]) for r in log["reminders"]] == [
                ("deploy", "due_soon", "2026-03-03"),
                ("feedback", "due_soon", "2026-03-05"),
                ("feedback", "overdue", "2026-03-05"),
                ("resolve", "due_soon", "2026-03-09"),
                ("resolve", "due_soon", "2026-03-12"),
            ]
            by_status = Counter((m["person"], m["status"]) for m in log["messages"])
            assert by_status == {
                ("env_head", "cancelled"): 3, ("env_head", "failed"): 2,
                ("env_op", "cancelled"): 1, ("env_op", "sent"): 4,
            }
            failed = next(m for m in log["messages"] if m["status"] == "failed")
            assert failed["attempts"] == 2 and "HTTP 500" in failed["last_error"]
            cancelled = [m["last_error"] for m in log["messages"] if m["status"] == "cancelled"]
            assert set(cancelled) == {"step done"}
            status = await sup.get("/api/v1/notifications/status")
            assert status["channels"]["sms"]["failed"] == 2
            assert status["channels"]["sms"]["cancelled"] == 4
            assert status["channels"]["email"]["enabled"] is False
    finally:
        await fed.stop()


async def test_the_handling_node_reminds_its_office_and_a_missed_window_is_superseded(
    tmp_path: Path, channels: Channels
) -> None:
    """Province 14 assigns to city 1401 as a whole: the city's office is reminded,
    nobody at the province; the city was down across the whole deploy window, so
    on start it sends the overdue notice late and records the due-soon as superseded."""
    clock = ManualClock(T0)
    fed = await build(tmp_path, clock, TREE, extra=channels.settings())
    province, city = fed["14"], fed["1401"]
    try:
        await add_people(province, ENV_HEAD, SUP)
        await add_people(city, OFFICE_HEAD, FIN_HEAD, ("city_sup", "supervisor", None, "", ""))
        async with aiohttp.ClientSession() as session:
            sup = await api_for(session, province, "sup")
            item = (await sup.post("/api/v1/items", {"title": TITLE, "assignee": "1401"},
                                   expect=201))["id"]
            city_api = await api_for(session, city, "city_sup")

            async def arrived() -> bool:
                data = await city_api.call("GET", f"/api/v1/items/{item}", expect=None)
                return data.get("status") == "assigned"

            await eventually(arrived, what="the item at the city")
            clock.set(T0 + 2 * HOUR)
            await tick(city)
            await tick(province)
            Ledger(channels).expect()

            await city.stop()
            clock.set(T0 + 26 * HOUR)  # past the deploy window and the deadline itself
            await city.start()
            await tick(city)
            assert (await tick(province)).recorded == 0
            seen = Ledger(channels)
            seen.expect(("deploy", "overdue", True), people=(OFFICE_HEAD,))
            log = await city_api.get(f"/api/v1/items/{item}/messages")
            assert [(r["kind"], r["outcome"], r["late"]) for r in log["reminders"]] == [
                ("due_soon", "superseded", True), ("overdue", "queued", True)]
            assert {m["person"] for m in log["messages"]} == {"office_head", ""}
            assert all(m["text"].startswith("[补发]") for m in log["messages"])
            # The assigning province holds the item too, but it is not the one reminding.
            upper = await sup.get(f"/api/v1/items/{item}/messages")
            assert upper["reminders"] == [] and upper["messages"] == []
    finally:
        await fed.stop()


async def test_people_set_their_own_contact_details(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    fed = await build(tmp_path, clock, ROOT)
    node = fed["14"]
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, node, await person(node, "op", "operator", "env"))
            data = await api.post("/api/v1/me/contact",
                                  {"phone": "+86 138-0000-0009", "email": "op@example.gov.cn"})
            assert (data["phone"], data["email"]) == ("+8613800000009", "op@example.gov.cn")
            data = await api.post("/api/v1/me/contact", {"email": ""})
            assert (data["phone"], data["email"]) == ("+8613800000009", None)
            assert await api.refused("POST", "/api/v1/me/contact", {"phone": "call me"},
                                     400) == "bad_field"
            assert await api.refused("POST", "/api/v1/me/contact", {}, 400) == "missing_field"
            status = await api.get("/api/v1/notifications/status")
            assert status["enabled"] is True
            assert {c["enabled"] for c in status["channels"].values()} == {False}
            anonymous = Api(session, node, "nope")
            anonymous.headers = {}
            await anonymous.refused("GET", "/api/v1/notifications/status", None, 401)
            await api.refused("GET", "/api/v1/items/14-000001/messages", None, 404)
    finally:
        await fed.stop()


def test_cli_sets_contact_details(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from node.cli import main

    data = str(tmp_path / "14")
    assert main(["init", "--data", data, "--id", "14", "--name", "山西省"]) == 0
    assert main(["unit", "add", "--data", data, "--code", "env", "--name", "生态环境局"]) == 0
    assert main(["user", "add", "--data", data, "--name", "h", "--role", "unit_head",
                 "--unit", "env", "--phone", "138 0000 0001", "--email", "h@example.gov.cn"]) == 0
    assert main(["user", "set", "--data", data, "--name", "h", "--phone", "13900000002"]) == 0
    capsys.readouterr()
    assert main(["user", "list", "--data", data]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("h "))
    assert "13900000002" in line and "h@example.gov.cn" in line
    assert main(["user", "set", "--data", data, "--name", "h", "--email", "not-an-address"]) == 2
    assert "bad_email" in capsys.readouterr().err
    assert main(["user", "set", "--data", data, "--name", "nobody", "--phone", "12345"]) == 2
