"""Shared fixtures: real databases for storage tests.

``db_url`` runs a test on both backends Duban supports: an SQLite file in the
test's tmp dir, and a fresh database on a real PostgreSQL server started once per
session from the system's binaries (``/usr/lib/postgresql/*/bin``). No mocks: the
engine layer is only worth testing against the real thing.

Without PostgreSQL binaries the PostgreSQL variants are skipped locally and
fail in CI (``CI=true``), both with the command that installs them.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL_HINT = (
    "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
    "run `apt-get update && apt-get install -y postgresql`"
)
PG_SUPERUSER = "duban"


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresServer:
    """A throwaway PostgreSQL server on loopback, trusting local connections."""

    bindir: Path
    host: str
    port: int
    run_as: list[str]

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run one statement with psql as the superuser (outside any transaction)."""
        result = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", self.host, "-p", str(self.port), "-U", PG_SUPERUSER,
                "-d", database, "-c", sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout.strip()

    def create_database(self) -> str:
        """A new empty database; returns its asyncpg URL."""
        name = f"test_{uuid.uuid4().hex}"
        self.psql(f'CREATE DATABASE "{name}"')
        return f"postgresql+asyncpg://{PG_SUPERUSER}@{self.host}:{self.port}/{name}"


def _find_bindir() -> Path | None:
    def version(path: str) -> float:
        try:
            return float(Path(path).parent.parent.name)
        except ValueError:
            return 0.0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_as_prefix(workdir: Path) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its binaries as ``postgres``."""
    if os.geteuid() != 0:
        return []
    try:
        import pwd

        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root needs a `postgres` user to run the server: " + INSTALL_HINT)
    os.chown(workdir, entry.pw_uid, entry.pw_gid)
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--"]
    return ["su", "postgres", "-s", "/bin/sh", "-c", '"$0" "$@"']


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start a real PostgreSQL for the session; stop it and delete its files at the end."""
    bindir = _find_bindir()
    if bindir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(INSTALL_HINT, pytrace=False)
        pytest.skip(INSTALL_HINT)
    # Not under pytest's tmp dir: that is private to root, and the server may
    # run as `postgres`.
    workdir = Path(tempfile.mkdtemp(prefix="duban-pg-"))
    data, sockets, log = workdir / "data", workdir / "sock", workdir / "server.log"
    run_as = _run_as_prefix(workdir)

    def run(*args: str) -> None:
        result = subprocess.run(
            [*run_as, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            server_log = log.read_text(errors="replace") if log.exists() else ""
            pytest.fail(
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n"
                f"{result.stderr}\n{server_log}",
                pytrace=False,
            )

    run(str(bindir / "initdb"), "-D", str(data), "-U", PG_SUPERUSER, "--auth=trust",
        "-E", "UTF8", "--locale=C", "--no-sync")
    run("mkdir", "-p", str(sockets))
    port = 0
    for attempt in range(3):
        port = _free_port()
        options = (
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        result = subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log),
             "-o", options, "-w", "-t", "60", "start"],
            capture_output=True, text=True, timeout=120, check=False,
        )
        if result.returncode == 0:
            break
        if attempt == 2:
            pytest.fail(
                f"PostgreSQL did not start:\n{result.stdout}\n{result.stderr}\n"
                + (log.read_text(errors="replace") if log.exists() else ""),
                pytrace=False,
            )
        time.sleep(0.2)
    server = PostgresServer(bindir=bindir, host="127.0.0.1", port=port, run_as=run_as)
    try:
        server.psql("SELECT 1")
        yield server
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, timeout=60, check=False,
        )
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database, once on SQLite (a real file) and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'node.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()
