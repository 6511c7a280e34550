"""A 1 MiB attachment up a slow link: a township and its county as ``duban run`` processes,
the township's link to the county through a throttling proxy (loopback only).

A county leader assigns an item to the township, the township deploys it and
reports feedback with one file attached (posted to the township directly: the
operator's form is local; the link to the county is what is slow). Then the
file goes up behind the feedback in chunks of ``sync.blob_chunk_bytes``, through
the proxy, which passes at most ``--rate`` bytes per second in each direction
(one bucket per direction, shared by every connection of the link, like a real
narrow line).

Printed:

- ``held_s``: from the feedback's 201 until the county holds the whole file;
- the progress the county's item page shows (its "正在上传（已到 N%）" text,
  sampled every ``--poll`` seconds) when 25, 50 and 75 % of the file's bytes have
  passed the proxy, and when each figure first appeared;
- the CPU seconds of each node process and of this process (the proxy and the
  polling) during the upload.

The bench never fails on a time. Ports: ``--base-port`` (county), +1 (township),
+2 (the proxy); 9510 by default.

Run: python bench/upload.py [--rate 20480] [--size 1048576] [--chunk 65536]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/protocol.py is named like the package: keep bench/ off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shutil
import tempfile
import time
from typing import Any

import aiohttp

from node import config as cfg
from node.clock import SystemClock
from node.context import open_node
from tests.faults.procs import NodeProcess, enroll, kill_all

COUNTY, TOWN = "140105", "140105001"
TREE: dict[str, str | None] = {COUNTY: None, TOWN: COUNTY}
NAMES = {COUNTY: ("小店区", "county"), TOWN: ("小店区第1镇", "township")}
SETTINGS: dict[str, Any] = {
    "sync.long_poll_seconds": 20,
    "sync.retry_initial_seconds": 0.2,
    "sync.retry_max_seconds": 2.0,
}
PAGE_RE = re.compile(r"正在上传（已到 (\d+)%）")
READ = 1024
"""Bytes the proxy forwards at a time: 20 reads a second at 20 KiB/s."""


class Bucket:
    """One direction of a narrow link: ``rate`` bytes per second, first come first served."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.free_at = 0.0
        self.bytes = 0

    async def take(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self.free_at)
        self.free_at = start + n / self.rate
        self.bytes += n
        await asyncio.sleep(self.free_at - now)


class ThrottlingProxy:
    """``127.0.0.1:port`` → ``127.0.0.1:target`` at ``rate`` bytes/s each way (the idea of
    tests/faults/proxy.py, with a bandwidth in place of faults)."""

    def __init__(self, port: int, target: int, rate: float) -> None:
        self.port, self.target = port, target
        self.up, self.down = Bucket(rate), Bucket(rate)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream = None
        try:
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target)
            await asyncio.gather(
                self._pipe(reader, upstream, self.up), self._pipe(up_reader, writer, self.down)
            )
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    w.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bucket: Bucket
    ) -> None:
        while data := await reader.read(READ):
            await bucket.take(len(data))
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def add_person(node: NodeProcess, name: str, role: str) -> str:
    """A person with a bearer token at ``node`` (stopped)."""
    ctx = await open_node(cfg.load(node.data), SystemClock())
    try:
        now = ctx.clock.now_ms()
        await ctx.accounts.add_user(name, role=role, unit="office", password="password-123",
                                    now=now)
        return await ctx.accounts.token_for(name, now)
    finally:
        await ctx.close()


async def call(
    session: aiohttp.ClientSession, node: NodeProcess, method: str, path: str,
    token: str | None = None, **kw: Any,
) -> Any:
    headers = {"Authorization": f"Bearer {token or node.token}"}
    async with session.request(method, node.url + path, headers=headers, **kw) as resp:
        if resp.status >= 300:
            raise SystemExit(f"{method} {path} at {node.id}: {resp.status} {await resp.text()}")
        return await resp.json()


async def until(check: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def run(args: argparse.Namespace, root: Path) -> None:
    county = NodeProcess(COUNTY, root / COUNTY, args.base_port)
    town = NodeProcess(TOWN, root / TOWN, args.base_port + 1)
    nodes = {COUNTY: county, TOWN: town}
    proxy = ThrottlingProxy(args.base_port + 2, county.port, args.rate)
    await proxy.start()
    try:
        settings = {**SETTINGS, "sync.blob_chunk_bytes": args.chunk}
        await enroll(nodes, TREE, NAMES, settings, parent_url={TOWN: proxy.url})
        # The township's reports are a supervisor's (a leader may not report): stop it,
        # add one, start it again.
        assert town.proc is not None
        town.proc.terminate()
        town.proc.wait(30)
        town.proc = None
        reporter = await add_person(town, "clerk", "supervisor")
        town.start()
        town.wait_ready()
        async with aiohttp.ClientSession() as session:
            created = await call(session, county, "POST", "/api/v1/items", json={
                "title": "燃气安全排查", "assignee": TOWN, "board": "daily",
                "source": "executive"})
            item = created["id"]

            async def arrived() -> bool:
                async with session.get(town.url + f"/api/v1/items/{item}", headers={
                        "Authorization": f"Bearer {town.token}"}) as resp:
                    return resp.status == 200

            await until(arrived, 60, "the item at the township")
            await call(session, town, "POST", f"/api/v1/items/{item}/deploy", reporter,
                       json={"note": "已部署"})
            data = b"%PDF-1.4\n" + os.urandom(args.size - 16) + b"\n%%EOF\n"
            form = aiohttp.FormData(quote_fields=False)
            form.add_field("text", "已完成排查，报告见附件")
            form.add_field("progress", "60")
            form.add_field("attachments", data, filename="排查报告.pdf",
                           content_type="application/pdf")
            cpu0 = {n: cpu_seconds(p.proc.pid) for n, p in nodes.items() if p.proc}
            own0, up0 = own_cpu(), proxy.up.bytes
            await call(session, town, "POST", f"/api/v1/items/{item}/feedback", reporter,
                       data=form)
            t0 = time.monotonic()
            samples: list[tuple[float, int, str]] = []
            held_s = None
            while held_s is None and time.monotonic() - t0 < args.timeout:
                async with session.get(county.url + f"/items/{item}", headers={
                        "Authorization": f"Bearer {county.token}"}) as resp:
                    page = await resp.text()
                now = time.monotonic() - t0
                through = proxy.up.bytes - up0
                found = PAGE_RE.search(page)
                if found:
                    shown = f"{found.group(1)}%"
                elif "等待下级上传" in page:
                    shown = "waiting"
                elif "排查报告.pdf" in page and (await call(
                        session, county, "GET", f"/api/v1/items/{item}"))["files"][0][
                        "status"] == "held":
                    shown = "held"
                    held_s = now
                else:
                    shown = "no report"
                samples.append((now, through, shown))
                if held_s is None:
                    await asyncio.sleep(args.poll)
            cpu1 = {n: cpu_seconds(p.proc.pid) for n, p in nodes.items() if p.proc}
            own1 = own_cpu()
    finally:
        await proxy.close()
        kill_all(nodes)

    print(f"file {args.size} B, chunk {args.chunk} B, link {args.rate / 1024:g} KiB/s each way "
          f"(ideal {args.size / args.rate:.1f} s), county page polled every {args.poll:g} s")
    print("bytes through the proxy -> the county's page showed")
    for share in (0.25, 0.5, 0.75):
        at = next((s for s in samples if s[1] >= share * args.size), None)
        if at is not None:
            print(f"  {share:4.0%} at {at[0]:5.1f} s: {at[2]}")
    print("first time the page showed each figure")
    first: dict[str, float] = {}
    for t, _, shown in samples:
        first.setdefault(shown, t)
    for shown, t in first.items():
        print(f"  {shown:>9} at {t:5.1f} s")
    used = {n: cpu1[n] - cpu0[n] for n in cpu1}
    print(f"CPU during the upload: county {used[COUNTY]:.2f} s, township {used[TOWN]:.2f} s, "
          f"bench (proxy and polling) {own1 - own0:.2f} s")
    held = "none" if held_s is None else f"{held_s:.1f}"
    print(f"upload size={args.size} rate={args.rate} chunk={args.chunk} held_s={held} "
          f"county_cpu_s={used[COUNTY]:.2f} township_cpu_s={used[TOWN]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20 * 1024, help="bytes/s each way")
    parser.add_argument("--size", type=int, default=1024 * 1024)
    parser.add_argument("--chunk", type=int, default=65_536, help="sync.blob_chunk_bytes")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between page reads")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--base-port", type=int, default=9510)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="duban-upload-"))
    try:
        asyncio.run(run(args, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
