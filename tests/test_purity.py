"""protocol/ must stay pure: no asyncio, aiohttp or SQLAlchemy, directly or through imports."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

FORBIDDEN = {"asyncio", "aiohttp", "sqlalchemy", "aiosqlite", "asyncpg"}
ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_protocol_sources_do_not_import_io_frameworks() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(imported_modules(p) & FORBIDDEN)
        for p in (ROOT / "protocol").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_protocol_pulls_in_none_of_them() -> None:
    modules = [p.stem for p in (ROOT / "protocol").glob("*.py") if p.stem != "__init__"]
    code = (
        "import sys\n"
        + "".join(f"import protocol.{m}\n" for m in modules)
        + "import json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert loaded & FORBIDDEN == set()


def test_the_check_itself_catches_an_offender(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom sqlalchemy import select\n", encoding="utf-8")
    assert imported_modules(bad) & FORBIDDEN == {"asyncio", "sqlalchemy"}


def test_the_decoding_worker_loads_only_what_it_decodes_with() -> None:
    """The worker (node/sync/catchup/worker.py) only parses and decodes, and its start
    is on a catch-up's critical path: it loads neither the node's I/O frameworks
    (the packages on its way, node/ and node/sync/catchup/, import nothing) nor
    ``cryptography``, which protocol/ imports only where a key signs or checks."""
    code = (
        "import sys, json\nimport node.sync.catchup.worker\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    ).stdout
    loaded = set(json.loads(out))
    assert "msgspec" in loaded and "protocol" in loaded
    assert loaded & (FORBIDDEN | {"cryptography"}) == set()
