"""The command line as a user runs it: init, run, invite, join, status, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def duban(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"duban {args} failed: {proc.stdout}{proc.stderr}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def serve(data: Path, port: int, procs: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "run", "--data", str(data), "--listen",
         f"127.0.0.1:{port}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    procs.append(p)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=2):
                return p
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"node at {port} did not come up")


def status(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status", timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def test_init_invite_join_run_status_and_clean_stop(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    province, city = tmp_path / "province", tmp_path / "city"
    out = duban("init", "--data", str(province), "--id", "14", "--name", "山西省").stdout
    [line] = [x for x in out.splitlines() if x.startswith("root fingerprint")]
    fingerprint = line.split()[-1]
    assert "first administrator: admin" in out

    again = duban("init", "--data", str(province), "--id", "14", "--name", "x", check=False)
    assert again.returncode == 2 and "already holds a node" in again.stderr
    assert "Traceback" not in again.stderr

    p_port, c_port = free_port(), free_port()
    parent = serve(province, p_port, processes)
    invite = duban("invite", "--data", str(province), "--child", "1401", "--name", "太原市",
                   "--level", "city")
    code = invite.stdout.strip()
    assert "duban join" in invite.stderr

    wrong = duban("join", "--data", str(city), "--parent", f"http://127.0.0.1:{p_port}",
                  "--code", "AAAA-BBBB", "--root", fingerprint, check=False)
    assert wrong.returncode == 2 and "code_unknown" in wrong.stderr
    assert not (city / "duban.toml").exists()

    duban("join", "--data", str(city), "--parent", f"http://127.0.0.1:{p_port}",
          "--code", code, "--root", fingerprint)
    reuse = duban("join", "--data", str(tmp_path / "other"), "--parent",
                  f"http://127.0.0.1:{p_port}", "--code", code, "--root", fingerprint,
                  check=False)
    assert reuse.returncode == 2 and "code_used" in reuse.stderr

    child = serve(city, c_port, processes)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        links = {link["link"]: link for link in status(c_port)["links"]}  # type: ignore[attr-defined]
        if links.get("parent", {}).get("last_contact"):
            break
        time.sleep(0.1)
    assert links["parent"]["last_error"] is None
    parent_status = status(p_port)
    assert [link["link"] for link in parent_status["links"]] == ["1401"]  # type: ignore[index]

    text = duban("status", "--data", str(city)).stdout
    assert "1401" in text and "parent" in text
    as_json = json.loads(duban("status", "--data", str(city), "--json").stdout)
    assert as_json["node"]["parent"] == "14"

    for proc in (child, parent):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        output = proc.stdout.read() if proc.stdout else ""
        assert "Traceback" not in output
