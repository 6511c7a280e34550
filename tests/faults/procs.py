"""Real ``duban run`` processes for fault tests: start, wait, SIGKILL, enroll.

Each node has its own data directory and SQLite file and listens on an ephemeral
loopback port; its log (stdout and stderr, every start) is ``<id>.log`` beside
its data directory. The fixture that makes them kills them all, pass or fail.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node import config as cfg
from node.clock import SystemClock
from node.context import open_node
from node.http.enroll import issue_code
from node.setup import init_root, join_parent
from tests.faults.checker import Tree, Write

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """An ephemeral loopback port (the kernel's range, never the 8400s of a real node)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NodeProcess:
    """One node: its data directory, port, and the ``duban run`` process while it runs."""

    id: str
    data: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.id}.log"

    @property
    def db(self) -> Path:
        return self.data / cfg.DB_NAME

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running
        with self.log.open("ab") as log:
            log.write(f"---- start {self.starts} ----\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "run", "--data", str(self.data),
                 "--listen", f"127.0.0.1:{self.port}"],
                cwd=ROOT, stdout=log, stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.starts += 1

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.running, f"{self.id} died; see {self.log}"
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/status", timeout=2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{self.id} did not come up")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, exactly like a power cut of the process."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/api/v1/status", timeout=5) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def post_item(self, to: str, title: str, timeout: float = 10.0) -> tuple[int | None, Any]:
        """``POST /api/v1/items`` as this node's leader: (status or None, answer)."""
        body = {"title": title, "description": "按照会议部署研究落实。",
                "assignee": "office" if to == self.id else to, "board": "daily",
                "source": "executive", "class": "general"}
        request = urllib.request.Request(
            f"{self.url}/api/v1/items", data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, None
        except (OSError, ValueError):
            return None, None

    def write(self, to: str, title: str) -> Write | None:
        status, answer = self.post_item(to, title)
        return Write(self.id, answer["id"], to) if status == 201 else None

    def pid_rss_fds(self) -> tuple[int, int]:
        """Resident memory (kB) and open file descriptors of the node process."""
        assert self.proc is not None
        pid = self.proc.pid
        rss = next(int(line.split()[1]) for line in
                   Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
        return rss, len(os.listdir(f"/proc/{pid}/fd"))


def make_nodes(root: Path, tree: Tree) -> dict[str, NodeProcess]:
    return {n: NodeProcess(n, root / n, free_port()) for n in tree}


def kill_all(nodes: dict[str, NodeProcess]) -> None:
    for node in nodes.values():
        node.kill()


async def add_leader(node: NodeProcess) -> None:
    """A leader with a bearer token and an ``office`` unit (the node is stopped)."""
    ctx = await open_node(cfg.load(node.data), SystemClock())
    try:
        now = ctx.clock.now_ms()
        await ctx.accounts.add_unit("office", "办公室", office=True, now=now)
        await ctx.accounts.add_user("leader", role="leader", unit="office",
                                    password="password-123", now=now)
        node.token = await ctx.accounts.token_for("leader", now)
    finally:
        await ctx.close()


async def enroll(
    nodes: dict[str, NodeProcess], tree: Tree, names: dict[str, tuple[str, str]],
    settings: dict[str, Any], *, parent_url: dict[str, str] | None = None,
) -> None:
    """The root by ``init``; each child enrolled over HTTP with a one-time code (its
    parent running), then started. ``parent_url[child]`` replaces the parent's own
    URL (a proxy). Every node gets a leader with a token first. The code is issued
    as ``duban invite`` does: straight into the running parent's database."""
    clock = SystemClock()
    for node_id, parent in tree.items():
        node = nodes[node_id]
        name, level = names[node_id]
        extra = {**settings, "server.listen": f"127.0.0.1:{node.port}"}
        if parent is None:
            await init_root(node.data, node=node_id, name=name, level=level, clock=clock,
                            extra=extra)
        else:
            up = nodes[parent]
            ctx = await open_node(cfg.load(up.data), clock)
            try:
                code = await issue_code(
                    ctx.db, ctx.me, ctx.clock, ctx.config, child=node_id, name=name, level=level
                )
                fingerprint = ctx.trust.root_fingerprint
            finally:
                await ctx.close()
            url = (parent_url or {}).get(node_id, up.url)
            await join_parent(node.data, parent_url=url, code=code, root=fingerprint,
                              clock=clock, extra=extra)
        await add_leader(node)
        node.start()
        node.wait_ready()


def logs(nodes: dict[str, NodeProcess], tail: int = 6000) -> str:
    out = []
    for node in nodes.values():
        text = node.log.read_text(errors="replace") if node.log.exists() else ""
        out.append(f"==== {node.id} ({node.starts} starts) ====\n{text[-tail:]}")
    return "\n".join(out)
