"""``duban tree import`` as a user runs it, on a node of a real tree on loopback.

Province 14 -> city 1401 -> county 140101 (real servers, SQLite files). The city
imports the province's published tree: a bad file is refused with every problem
and its line, and changes nothing; a good one re-certifies the county under its
new name — the certificate reaches the county and the province — and lists the
city's children not enrolled yet.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from node.clock import SystemClock
from node.context import open_node
from node.demo.localtree import RunningNode, Shape
from tests.federation import build, eventually, settled

ROOT = Path(__file__).resolve().parents[2]
SHAPE: Shape = [
    ("14", None, "山西省", "province"),
    ("1401", "14", "太原市", "city"),
    ("140101", "1401", "小店区", "county"),
]
HEADER = "code,name,parent_code,level\n"
GOOD = (
    HEADER
    + "14,山西省,,province\n"
    + "1401,太原市人民政府,14,city\n"  # renamed: the province certifies the city
    + "140101,小店区人民政府,1401,county\n"  # renamed: the city certifies the county
    + "140102,迎泽区,1401,county\n"  # not enrolled yet
)
BAD = (
    HEADER
    + "14,山西省,,province\n"
    + "1401,太原市,14,city\n"
    + "140101,小店区,14,county\n"  # line 4: another parent than its certificate's
    + "140102,迎泽区,1401,township\n"
    + "140102,迎泽区,1401,county\n"  # line 6: the code again
)


async def duban(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "node.cli", *args], cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )


async def trust_records(node: RunningNode) -> list[bytes]:
    ctx = await open_node(node.config, node.clock)
    try:
        return ctx.trust.export()
    finally:
        await ctx.close()


async def test_a_published_tree_is_checked_and_renames_the_children(tmp_path: Path) -> None:
    fed = await build(tmp_path / "tree", SystemClock(), SHAPE)
    try:
        await eventually(lambda: settled(fed, len(SHAPE)), what="the tree to settle")
        city, county, province = fed["1401"], fed["140101"], fed["14"]
        good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
        good.write_text(GOOD, encoding="utf-8-sig")  # as Excel saves it
        bad.write_text(BAD, encoding="utf-8")
        data = str(city.data)

        running = await duban("tree", "import", str(good), "--data", data)
        assert running.returncode == 2 and "is running" in running.stderr
        checked = await duban("tree", "import", str(good), "--data", data, "--dry-run")
        assert checked.returncode == 0, checked.stderr
        assert "would be certified again" in checked.stdout

        await city.stop()
        before = await trust_records(city)
        refused = await duban("tree", "import", str(bad), "--data", data)
        assert refused.returncode == 2
        lines = refused.stderr.splitlines()
        assert f"{bad}: line 4: parent_differs (140101: parent 14 in the file, 1401 in its " \
            "certificate)" in lines
        assert f"{bad}: line 6: duplicate_code (140102 already on line 5)" in lines
        assert lines[-1] == f"duban: 2 problems in {bad}: nothing changed"
        assert "Traceback" not in refused.stderr
        assert await trust_records(city) == before

        done = await duban("tree", "import", str(good), "--data", data)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "  140101  小店区 -> 小店区人民政府" in out
        assert "  1401  太原市 -> 太原市人民政府" in out  # left to the province
        assert f"duban invite --data {data} --child 140102 --name 迎泽区 --level county" in out
        after = await trust_records(city)
        assert after[: len(before)] == before and len(after) == len(before) + 1

        await city.start()

        async def renamed() -> bool:
            return all(
                n.ctx.trust.current("140101").name == "小店区人民政府"
                for n in (city, county, province)
            )

        await eventually(renamed, what="the new name at the county and the province")
        cert = province.ctx.trust.current("140101")
        assert (cert.version, cert.key_id) == (2, county.ctx.key.key_id)
        assert province.ctx.trust.current("1401").name == "太原市"  # the province's to rename
    finally:
        await fed.stop()
