"""What is waiting for me (待办), through real nodes on loopback and their API.

A province → city → county → township chain on an injected clock: an item the
province assigns to a township unit waits in that unit's operator's to-do (and
not in another unit's, nor a viewer's) until it is deployed; then it moves on
through every kind of work — first feedback, due soon, a plan the province's
leader approves, a resolution its supervision office reviews, a returned item
to redo — each appearing for exactly the people who do it, and leaving when done.
A county whose cascade policy is off lists a cascade item to pass down. Every
step also checks the navigation's count on a page, which is the same query.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from hierarchy.roles import Role
from node.clock import ManualClock
from node.demo.localtree import RunningNode
from node.http.services import TODO
from node.queries.todo import KIND_NAMES, KINDS, Who, kinds_for, page_statement, total_statement
from protocol.rules import DAY, add_month
from tests.api_client import Api, person
from tests.federation import build, eventually, folded

CHINA = timezone(timedelta(hours=8))
T0 = int(datetime(2026, 3, 2, 9, 0, tzinfo=CHINA).timestamp() * 1000)
CHAIN = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140105", "1401", "小店区", "county"),
    ("140105001", "140105", "坞城街道", "township"),
]
TOWN = "140105001"


async def kinds(api: Api) -> dict[str, list[str]]:
    """Kind → item ids in it, for the person of ``api``."""
    data = await api.get("/api/v1/todo")
    out = {k["kind"]: [i["id"] for i in k["items"]] for k in data["kinds"]}
    assert data["total"] == sum(k["count"] for k in data["kinds"])
    for k in data["kinds"]:
        assert k["count"] == len(k["items"])
    return out


async def nav_count(api: Api) -> int:
    """The to-do count the navigation shows on a page (0 when it shows none)."""
    async with api.session.get(api.node.url + "/ledger", headers=api.headers) as resp:
        assert resp.status == 200
        page = await resp.text()
    found = re.search(r'id="nav-todo"[^>]*>[^<]*<span class="count"[^>]*>(\d+)<', page)
    return int(found[1]) if found else 0


async def wait_status(api: Api, item: str, want: str) -> None:
    async def there() -> bool:
        data = await api.call("GET", f"/api/v1/items/{item}", expect=None)
        return data.get("status") == want

    await eventually(there, what=f"{item} {want} at {api.node.id}")


async def test_the_to_do_follows_an_item_through_its_life(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    fed = await build(tmp_path, clock, CHAIN)
    try:
        town, prov = fed[TOWN], fed["14"]
        async with aiohttp.ClientSession() as session:
            async def api(node: RunningNode, name: str, role: str, unit: str | None = None
                          ) -> Api:
                return Api(session, node, await person(node, name, role, unit))

            env_op = await api(town, "env_op", "operator", "env")
            env_head = await api(town, "env_head", "unit_head", "env")
            fin_op = await api(town, "fin_op", "operator", "fin")
            town_sup = await api(town, "town_sup", "supervisor")
            town_leader = await api(town, "town_leader", "leader")
            town_viewer = await api(town, "town_viewer", "viewer")
            gov = await api(prov, "governor", "leader")
            prov_sup = await api(prov, "prov_sup", "supervisor")
            prov_viewer = await api(prov, "prov_viewer", "viewer")

            created = await prov_sup.post("/api/v1/items", {
                "title": "整治汾河流域污染", "assignee": TOWN, "lead_unit": "env",
                "board": "daily", "source": "executive",
            }, expect=201)
            item = created["id"]
            await wait_status(env_op, item, "assigned")
            await folded(town)

            # Assigned: to deploy, for the env unit's people and the node's whole office.
            for who in (env_op, env_head, town_sup, town_leader):
                assert (await kinds(who)).get("deploy") == [item], who.node.id
            assert (await kinds(fin_op)).get("deploy") == []  # another unit's item
            viewer = await town_viewer.get("/api/v1/todo")
            assert viewer["kinds"] == [] and viewer["total"] == 0
            assert await nav_count(env_op) == 1
            assert await nav_count(fin_op) == 0
            assert await nav_count(town_viewer) == 0
            entry = (await env_op.get("/api/v1/todo"))["kinds"][0]["items"][0]
            assert entry["due"] == created["deadlines"]["deploy"]
            assert entry["colour"] == "green" and entry["kind"] == "deploy"
            # Nothing waits at the province yet: the item is the township's to do.
            assert sum(len(v) for v in (await kinds(prov_sup)).values()) == 0

            # Deployed: it leaves the deploy list; the first feedback is owed.
            await env_op.post(f"/api/v1/items/{item}/deploy", {"note": "已召开专题会议"})
            assert (await kinds(env_op)).get("deploy") == []
            assert (await kinds(env_op))["feedback"] == [item]
            assert (await kinds(town_sup))["feedback"] == [item]
            assert "feedback" not in await kinds(town_leader)  # a leader does not report
            assert await nav_count(env_op) == 1

            # Feedback given: nothing owed until the resolution comes near (yellow).
            await env_op.post(f"/api/v1/items/{item}/feedback",
                              {"text": "已完成排查", "progress": 40})
            assert sum(len(v) for v in (await kinds(env_op)).values()) == 0
            clock.advance(days=6, hours=12)  # inside the 24 h before the 7-day deadline
            assert (await kinds(env_op))["due_soon"] == [item]
            assert (await kinds(fin_op))["due_soon"] == []
            clock.advance(days=2)  # overdue: still due, now red
            late = (await env_op.get("/api/v1/todo"))["kinds"]
            due_soon = next(k for k in late if k["kind"] == "due_soon")
            assert due_soon["items"][0]["colour"] == "red"
            assert due_soon["items"][0]["due_in_s"] < 0

            # A plan: the province's leader approves plans; its office does not.
            soon = datetime.fromtimestamp(clock.now_ms() / 1000 + 20 * 86400, CHINA)
            later = soon + timedelta(days=30)
            await env_op.post(f"/api/v1/items/{item}/plan", {
                "milestones": [{"title": "完成清淤", "due": soon.date().isoformat()},
                               {"title": "通过验收", "due": later.date().isoformat()}],
                "note": "工程量大",
            })

            async def plan_waits() -> bool:
                return (await kinds(gov)).get("plan") == [item]

            await eventually(plan_waits, what="the plan in the governor's to-do")
            assert "plan" not in await kinds(prov_sup)
            assert (await prov_viewer.get("/api/v1/todo"))["kinds"] == []
            assert await nav_count(gov) == 1
            await gov.post(f"/api/v1/items/{item}/approve", {})
            assert (await kinds(gov))["plan"] == []

            # Resolved: the province's office (and leader) review it.
            await wait_status(env_op, item, "planned")
            await env_op.post(f"/api/v1/items/{item}/resolve", {"text": "已全部整治到位"})

            async def review_waits() -> bool:
                return (await kinds(prov_sup)).get("review") == [item]

            await eventually(review_waits, what="the review in the province office's to-do")
            assert (await kinds(gov))["review"] == [item]
            assert sum(len(v) for v in (await kinds(env_op)).values()) == 0

            # Returned: back in the unit's to-do to redo, out of the reviewers'.
            await prov_sup.post(f"/api/v1/items/{item}/review",
                                {"outcome": "return", "reason": "缺少验收材料"})
            await wait_status(env_op, item, "returned")
            assert (await kinds(env_op))["redo"] == [item]
            assert (await kinds(fin_op))["redo"] == []
            assert (await kinds(prov_sup))["review"] == []
    finally:
        await fed.stop()


async def test_a_cascade_item_waits_to_be_passed_down_when_the_policy_is_off(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    fed = await build(tmp_path, clock, CHAIN, extra_for={"140105": {"cascade.auto": False}})
    try:
        county = fed["140105"]
        async with aiohttp.ClientSession() as session:
            city = Api(session, fed["1401"], await person(fed["1401"], "city_sup", "supervisor"))
            sup = Api(session, county, await person(county, "county_sup", "supervisor"))
            op = Api(session, county, await person(county, "county_op", "operator", "env"))
            made = await city.post("/api/v1/items", {
                "title": "各乡镇开展燃气安全排查", "assignee": "140105",
                "cascade": "township",
            }, expect=201)
            item = made["id"]
            await wait_status(sup, item, "assigned")
            await folded(county)
            listed = await kinds(sup)
            assert listed["pass_down"] == [item]
            assert listed["deploy"] == []  # listed once: passing down deploys it
            assert "pass_down" not in await kinds(op)  # an operator does not pass down
            await sup.post(f"/api/v1/items/{item}/pass_down", {}, expect=201)
            after = await kinds(sup)
            assert after["pass_down"] == [] and after["deploy"] == []
    finally:
        await fed.stop()


async def test_the_to_do_reads_indexes_not_the_whole_table(tmp_path: Path) -> None:
    """SQLite's plan for every kind and for the count: each reaches ``items`` through
    an index (the province's mirror is never scanned)."""
    fed = await build(tmp_path, ManualClock(T0), CHAIN[:2])
    try:
        node = fed["14"]
        todo = node.app[TODO]
        scope = todo.scope()
        plans = []
        async with node.ctx.db.read() as conn:
            for role in Role:
                who = Who(name="x", role=role, unit="env")
                statements: list[Any] = [total_statement(who, scope)]
                assert {k.name for k in KINDS} == set(KIND_NAMES)
                statements += [page_statement(k, who, scope) for k in kinds_for(who, scope)]
                for statement in statements:
                    if not hasattr(statement, "compile"):
                        continue
                    compiled = statement.compile(
                        dialect=conn.dialect, compile_kwargs={"literal_binds": True}
                    )
                    sql = str(compiled)
                    if not sql.lstrip().upper().startswith("SELECT"):
                        sql = f"SELECT {sql}"
                    rows = (await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all()
                    plans.append(" | ".join(str(r[-1]) for r in rows))
        assert plans
        for plan in plans:
            assert "SCAN items" not in plan, plan  # nor a whole index of it
        # The assigner's kinds (plans, reviews, extensions) take the open items it
        # assigned, by status: ix_items_assigner, not the range of all it ever assigned.
        async with node.ctx.db.read() as conn:
            leader = Who(name="x", role=Role.LEADER, unit=None)
            for kind in kinds_for(leader, scope):
                if kind.side != "assigner":
                    continue
                sql = str(page_statement(kind, leader, scope).compile(
                    dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
                rows = (await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all()
                plan = " | ".join(str(r[-1]) for r in rows)
                used = "USING INDEX ix_items_assigner (assigner=? AND done=? AND status=?)"
                assert used in plan, (kind.name, plan)
    finally:
        await fed.stop()


async def test_the_to_do_on_each_database(tmp_path: Path, db_url: str) -> None:
    """The same kinds on SQLite and PostgreSQL: a unit's deploy, and a plan the province's
    leader approves (read from the folded state's JSON on both)."""
    fed = await build(tmp_path, ManualClock(T0), CHAIN[:2],
                      extra_for={"14": {"database.url": db_url}})
    try:
        prov, city = fed["14"], fed["1401"]
        assert prov.ctx.db.dialect == ("postgresql" if "postgres" in db_url else "sqlite")
        async with aiohttp.ClientSession() as session:
            sup = Api(session, prov, await person(prov, "prov_sup", "supervisor"))
            op = Api(session, prov, await person(prov, "env_op", "operator", "env"))
            gov = Api(session, prov, await person(prov, "governor", "leader"))
            city_sup = Api(session, city, await person(city, "city_sup", "supervisor"))
            own = (await sup.post("/api/v1/items", {"title": "本级事项", "assignee": "env"},
                                  expect=201))["id"]
            down = (await sup.post("/api/v1/items", {"title": "市级事项", "assignee": "1401"},
                                   expect=201))["id"]
            assert (await kinds(op))["deploy"] == [own]
            assert await nav_count(op) == 1
            await wait_status(city_sup, down, "assigned")
            await city_sup.post(f"/api/v1/items/{down}/deploy", {"note": "已部署"})
            day = datetime.fromtimestamp(T0 / 1000, CHINA) + timedelta(days=40)
            await city_sup.post(f"/api/v1/items/{down}/plan", {
                "milestones": [{"title": "完成", "due": day.date().isoformat()}]})

            async def plan_waits() -> bool:
                return (await kinds(gov)).get("plan") == [down]

            await eventually(plan_waits, what="the plan in the leader's to-do")
            assert await nav_count(gov) == 2  # the plan, and the own unit's item to deploy
            await gov.post(f"/api/v1/items/{down}/approve", {})
            assert (await kinds(gov))["plan"] == []
    finally:
        await fed.stop()


async def test_urges_instructions_and_extension_requests_wait_for_who_answers_them(
    tmp_path: Path,
) -> None:
    """The province urges and instructs on an item the county assigned to a township
    unit: both wait in that unit's to-do ("urged", "instruction"), not in another
    unit's; a feedback answering the instruction clears both. The township's extension
    request waits in the county's office ("extension") until decided; the province,
    which did not assign the item, never lists it."""
    clock = ManualClock(T0)
    fed = await build(tmp_path, clock, CHAIN)
    try:
        town, county, prov = fed[TOWN], fed["140105"], fed["14"]
        async with aiohttp.ClientSession() as session:
            async def api(node: RunningNode, name: str, role: str, unit: str | None = None
                          ) -> Api:
                return Api(session, node, await person(node, name, role, unit))

            env_op = await api(town, "env_op", "operator", "env")
            fin_op = await api(town, "fin_op", "operator", "fin")
            town_leader = await api(town, "town_leader", "leader")
            county_sup = await api(county, "county_sup", "supervisor")
            county_op = await api(county, "county_op", "operator", "env")
            prov_sup = await api(prov, "prov_sup", "supervisor")
            gov = await api(prov, "governor", "leader")

            item = (await county_sup.post("/api/v1/items", {
                "title": "背街小巷环境整治", "assignee": TOWN, "lead_unit": "env",
            }, expect=201))["id"]
            await wait_status(env_op, item, "assigned")
            await env_op.post(f"/api/v1/items/{item}/deploy", {"note": "已部署"})
            await wait_status(prov_sup, item, "deployed")

            # An urge: for the unit that handles the item, until its next feedback.
            await prov_sup.post(f"/api/v1/items/{item}/urge", {"text": "请加快进度"})

            async def urged_waits() -> bool:
                await folded(town)
                return (await kinds(env_op)).get("urged") == [item]

            await eventually(urged_waits, what="the urge in the unit's to-do")
            assert (await kinds(fin_op))["urged"] == []
            assert "urged" not in await kinds(town_leader)  # a leader does not report
            entry = next(k for k in (await env_op.get("/api/v1/todo"))["kinds"]
                         if k["kind"] == "urged")["items"][0]
            assert entry["waiting_since"] is not None

            # An instruction: until a feedback answers it (a feedback not answering it
            # clears the urge, not the instruction).
            await gov.post(f"/api/v1/items/{item}/instruct", {"text": "务必按期完成"})

            async def instruction_waits() -> bool:
                await folded(town)
                return (await kinds(env_op)).get("instruction") == [item]

            await eventually(instruction_waits, what="the instruction in the unit's to-do")
            assert (await kinds(fin_op))["instruction"] == []
            await env_op.post(f"/api/v1/items/{item}/feedback", {"text": "已排查", "progress": 20})
            after = await kinds(env_op)
            assert after["urged"] == [] and after["instruction"] == [item]
            got = await env_op.get(f"/api/v1/items/{item}")
            [instruction] = got["item"]["instructions"]
            assert (instruction["author"], instruction["by"]) == ("governor", "14")
            await env_op.post(f"/api/v1/items/{item}/feedback", {
                "text": "已落实批示", "progress": 40, "answers": instruction["event_id"]})
            assert (await kinds(env_op))["instruction"] == []
            assert await nav_count(env_op) == 0

            # An extension request: for the assigner's office, until it decides.
            day = datetime.fromtimestamp(T0 / 1000, CHINA) + timedelta(days=20)
            await env_op.post(f"/api/v1/items/{item}/request_extension", {
                "text": "施工受阻", "deadline": day.date().isoformat(), "progress": "完成一半"})

            async def extension_waits() -> bool:
                return (await kinds(county_sup)).get("extension") == [item]

            await eventually(extension_waits, what="the request in the county's to-do")
            assert "extension" not in await kinds(county_op)  # operators do not decide
            assert (await kinds(prov_sup))["extension"] == []  # not the assigner
            assert await nav_count(county_sup) == 1
            await county_sup.post(f"/api/v1/items/{item}/decide_extension",
                                  {"approve": False, "text": "理由不充分"})
            assert (await kinds(county_sup))["extension"] == []
    finally:
        await fed.stop()


async def test_a_monthly_report_is_due_under_an_approved_plan(tmp_path: Path) -> None:
    """The county approves the township's plan: a progress report is then owed monthly.
    Three days before the date it waits in the unit's to-do ("monthly") and the item is
    yellow at every node; a week after the date without one, red; the report
    (``POST /monthly_report``, a feedback signed ``monthly``) sets the next date a month
    on and the item is green again. Without an approved plan it is refused."""
    clock = ManualClock(T0)
    fed = await build(tmp_path, clock, CHAIN)
    try:
        town, county = fed[TOWN], fed["140105"]
        async with aiohttp.ClientSession() as session:
            env_op = Api(session, town, await person(town, "env_op", "operator", "env"))
            fin_op = Api(session, town, await person(town, "fin_op", "operator", "fin"))
            sup = Api(session, county, await person(county, "county_sup", "supervisor"))
            item = (await sup.post("/api/v1/items", {
                "title": "老旧管网改造", "assignee": TOWN, "lead_unit": "env", "class": "major",
            }, expect=201))["id"]
            await wait_status(env_op, item, "assigned")
            await env_op.post(f"/api/v1/items/{item}/deploy", {"note": "已部署"})
            await env_op.post(f"/api/v1/items/{item}/feedback", {"text": "已排查", "progress": 10})
            assert await env_op.refused("POST", f"/api/v1/items/{item}/monthly_report", {
                "text": "本月进展", "progress": 20}, 409) == "invalid_transition"
            finish = datetime.fromtimestamp(T0 / 1000, CHINA) + timedelta(days=150)
            await env_op.post(f"/api/v1/items/{item}/plan", {
                "milestones": [{"title": "完工", "due": finish.date().isoformat()}]})

            async def plan_arrived() -> bool:
                got = await sup.call("GET", f"/api/v1/items/{item}", expect=None)
                return bool(got.get("item", {}).get("plan"))

            await eventually(plan_arrived, what="the plan at the county")
            leader = Api(session, county, await person(county, "county_leader", "leader"))
            await leader.post(f"/api/v1/items/{item}/approve", {})
            await wait_status(env_op, item, "planned")
            await folded(town)
            got = await env_op.get(f"/api/v1/items/{item}")
            approved_at = got["item"]["approved_plan"]["decided_at"]
            due = add_month(approved_at, "natural")[0]
            assert got["colour"] == "green" and (await kinds(env_op))["monthly"] == []

            clock.set(due - 2 * DAY)  # inside the 3 days before: reminded, yellow, listed
            assert (await kinds(env_op))["monthly"] == [item]
            assert (await kinds(fin_op))["monthly"] == []
            entry = next(k for k in (await env_op.get("/api/v1/todo"))["kinds"]
                         if k["kind"] == "monthly")["items"][0]
            assert entry["due_in_s"] == 2 * DAY // 1000
            assert (await env_op.get(f"/api/v1/items/{item}"))["colour"] == "yellow"
            clock.set(due + 3 * DAY)  # missed: still yellow for a week
            assert (await env_op.get(f"/api/v1/items/{item}"))["colour"] == "yellow"
            clock.set(due + 8 * DAY)  # then red, here and at the assigner
            for api in (env_op, sup):
                assert (await api.get(f"/api/v1/items/{item}"))["colour"] == "red"
            red = await sup.get("/api/v1/items?colour=red")
            assert [r["id"] for r in red["items"]] == [item]

            done = await env_op.post(f"/api/v1/items/{item}/monthly_report", {
                "text": "本月完成管网铺设三公里", "progress": 35})
            assert done["event"] == "item.feedback"
            got = await env_op.get(f"/api/v1/items/{item}")
            assert got["item"]["feedback"][-1]["monthly"] is True
            assert got["colour"] == "green" and (await kinds(env_op))["monthly"] == []

            async def green_above() -> bool:
                return (await sup.get(f"/api/v1/items/{item}"))["colour"] == "green"

            await eventually(green_above, what="green again at the county")
    finally:
        await fed.stop()
