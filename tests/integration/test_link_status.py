"""Per-link lag is visible: GET /api/v1/status and `duban status` (text and --json).

Province 14 -> city 1401 -> county 140101 on loopback, one ManualClock started
three hours in the past (so the CLI, which reads the real time, sees the same
events as hours old). Each end of a link shows what it still has to send over
it: the city's link to the county counts events waiting to go down while the
county is offline, and the county's link to its parent the reports it wrote
offline; both drain when it is back. While the province is down, the city's
parent link shows the error, the failures and the events piling up; the error
clears when the province returns.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from node.clock import ManualClock
from node.context import open_node
from node.demo.localtree import LocalTree, RunningNode, Shape
from node.storage.events import PARENT
from node.workflow.drafts import act, assign
from protocol.events import Deployed
from tests.federation import build, eventually

SHAPE: Shape = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140101", "1401", "小店区", "county"),
]
PROVINCE, CITY, COUNTY = "14", "1401", "140101"
REPO = Path(__file__).resolve().parents[2]
HOUR_MS = 3600_000


async def http_status(node: RunningNode) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(node.url + "/api/v1/status") as r:
        assert r.status == 200
        payload: dict[str, Any] = await r.json()
    return payload


async def cli_status(node: RunningNode, *, as_json: bool) -> Any:
    """Run `python -m node.cli status --data DIR [--json]` as a separate process."""
    args = [sys.executable, "-m", "node.cli", "status", "--data", str(node.data)]
    proc = await asyncio.create_subprocess_exec(
        *([*args, "--json"] if as_json else args), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    return json.loads(text) if as_json else text


def link(payload: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [entry for entry in payload["links"] if entry["link"] == name]
    return found


def text_row(text: str, name: str) -> list[str]:
    """The `duban status` table row of one link, split on blanks."""
    [row] = [line for line in text.splitlines() if line.split()[:1] == [name]]
    return row.split()


async def drained(*nodes: RunningNode) -> bool:
    for node in nodes:
        if node.runner is None:
            return False
        for entry in (await http_status(node))["links"]:
            if entry["pending_out"] or entry["last_error"]:
                return False
    return True


async def test_pending_and_errors_per_link_over_http_and_cli(tmp_path: Path) -> None:
    clock = ManualClock(time.time_ns() // 1_000_000 - 3 * HOUR_MS)
    fed: LocalTree = await build(tmp_path, clock, SHAPE)
    try:
        province, city, county = fed[PROVINCE], fed[CITY], fed[COUNTY]
        await eventually(lambda: drained(province, city, county), what="the tree to settle")
        status = await http_status(city)
        assert status["node"]["id"] == CITY
        assert [entry["link"] for entry in status["links"]] == [PARENT, COUNTY]
        assert link(status, COUNTY)["oldest_pending_age_s"] is None

        # The county goes offline; work for it piles up at the city, hour after hour.
        await county.stop()
        stopped_at = clock.now_ms()
        first = await city.ctx.store.append_own(
            [assign(me=CITY, assignee=COUNTY, title=f"市交办{i}") for i in range(3)]
        )
        clock.advance(hours=2)
        await city.ctx.store.append_own(
            [assign(me=CITY, assignee=COUNTY, title=f"市再交办{i}") for i in range(2)]
        )
        await province.ctx.store.append_own(
            [assign(me=PROVINCE, assignee=COUNTY, title=f"省交办{i}") for i in range(2)]
        )

        async def piled_up() -> bool:
            # Seven wait for the county; the city's own five went up to the province.
            status = await http_status(city)
            return link(status, COUNTY)["pending_out"] == 7 and \
                link(status, PARENT)["pending_out"] == 0

        await eventually(piled_up, what="7 events waiting at the city for the county")
        status = await http_status(city)
        down = link(status, COUNTY)
        assert down["oldest_pending_age_s"] == 2 * 3600
        assert down["last_contact"] is not None and down["last_contact"] <= stopped_at
        assert status["now"] - down["last_contact"] >= 2 * HOUR_MS
        assert link(status, PARENT)["pending_out"] == 0

        # The county writes offline: its own outbox to the city grows.
        ctx = await open_node(county.config, clock)
        try:
            await ctx.store.append_own(
                [act(Deployed, me=COUNTY, item=ev.item, to=CITY, note="已部署")
                 for ev, _ in first]
            )
        finally:
            await ctx.close()

        # The same figures from the CLI, on the running city and on the stopped county.
        city_json = await cli_status(city, as_json=True)
        assert link(city_json, COUNTY)["pending_out"] == 7
        # The CLI reads the real time: the oldest event is three hours old there.
        assert link(city_json, COUNTY)["oldest_pending_age_s"] >= 3 * 3600 - 60
        county_json = await cli_status(county, as_json=True)
        assert county_json["node"]["id"] == COUNTY
        assert link(county_json, PARENT)["pending_out"] == 3
        assert link(county_json, PARENT)["last_error"] is None
        row = text_row(await cli_status(city, as_json=False), COUNTY)
        assert row[1] == "7" and row[2].endswith("s")
        assert text_row(await cli_status(county, as_json=False), PARENT)[1] == "3"

        # Back online: both directions drain and the contact is fresh.
        restarted = clock.now_ms()
        await county.start()
        await eventually(lambda: drained(city, county), what="the county to catch up")
        down = link(await http_status(city), COUNTY)
        assert down["oldest_pending_age_s"] is None
        assert down["last_contact"] >= restarted
        up = link(await http_status(county), PARENT)
        assert (up["pending_out"], up["last_error"], up["failures"]) == (0, None, 0)
        assert link(await cli_status(county, as_json=True), PARENT)["pending_out"] == 0

        # The province goes down: the city's parent link shows the error and the backlog.
        await province.stop()
        await city.ctx.store.append_own(
            [assign(me=CITY, assignee=COUNTY, title=f"省停机时交办{i}") for i in range(4)]
        )

        async def failing() -> bool:
            up = link(await http_status(city), PARENT)
            return up["last_error"] is not None and up["failures"] >= 2

        await eventually(failing, what="the city to record its parent's failure")
        up = link(await http_status(city), PARENT)
        assert up["pending_out"] == 4
        assert up["last_error_at"] is not None
        assert "hello" in up["last_error"]  # the reconnect attempt that failed
        city_json = await cli_status(city, as_json=True)
        assert link(city_json, PARENT)["last_error"] is not None
        assert link(city_json, PARENT)["pending_out"] == 4
        row = text_row(await cli_status(city, as_json=False), PARENT)
        assert row[1] == "4" and "hello" in " ".join(row[3:])
        # The county still syncs with the city meanwhile.
        await eventually(lambda: drained(county), what="the county to sync with the city")
        assert link(await http_status(city), COUNTY)["pending_out"] == 0

        await province.start()
        await eventually(lambda: drained(province, city, county), what="the province back")
        up = link(await http_status(city), PARENT)
        assert (up["pending_out"], up["last_error"], up["failures"]) == (0, None, 0)
        assert link(await cli_status(city, as_json=True), PARENT)["last_error"] is None
    finally:
        await fed.stop()
