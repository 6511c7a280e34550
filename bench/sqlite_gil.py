"""What a busy event loop does to SQLite writes on another thread.

Python's ``sqlite3`` releases the GIL around every step of a statement, so a
1,000-row ``executemany`` hands the GIL over 1,000 times. While another thread
runs Python (the node's event loop preparing the next batch), each hand-over
waits up to the interpreter's switch interval (5 ms) to get it back. This
inserts 1,000 event-sized rows in one transaction, three ways, on a thread, alone
and while another thread spins: ``executemany``, one statement with many
``VALUES`` rows (``node.storage.events.insert_many``), and reading 1,000 rows back.

Run: python bench/sqlite_gil.py [--rows 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

Rows = list[tuple[bytes, str, int, bytes]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.rows
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "t.db", isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE ev (pos INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB UNIQUE,"
            " a TEXT, b INTEGER, raw BLOB)"
        )

        def many(rows: Rows) -> None:
            conn.executemany("INSERT INTO ev (id, a, b, raw) VALUES (?, ?, ?, ?)", rows)

        def one_statement(rows: Rows) -> None:
            marks = ", ".join(["(?, ?, ?, ?)"] * len(rows))
            values = [v for r in rows for v in r]
            conn.execute(f"INSERT INTO ev (id, a, b, raw) VALUES {marks}", values)

        def read_back(_rows: Rows) -> None:
            conn.execute("SELECT id, pos FROM ev ORDER BY pos DESC LIMIT ?", (n,)).fetchall()

        ways: dict[str, Callable[[Rows], None]] = {
            "executemany": many,
            "one statement": one_statement,
            "read 1,000 rows": read_back,
        }
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}

        def run_all(setting: str) -> None:
            for _ in range(args.rounds):
                for name, way in ways.items():
                    rows = [(os.urandom(32), "x" * 10, i, os.urandom(900)) for i in range(n)]
                    wall, cpu = time.perf_counter(), time.thread_time()
                    conn.execute("BEGIN IMMEDIATE")
                    way(rows)
                    conn.execute("COMMIT")
                    results.setdefault((setting, name), []).append(
                        (time.perf_counter() - wall, time.thread_time() - cpu)
                    )

        def on_thread(setting: str) -> None:
            worker = threading.Thread(target=run_all, args=(setting,))
            worker.start()
            worker.join()

        on_thread("alone")
        stop = threading.Event()

        def spin() -> None:
            x = 0
            while not stop.is_set():
                for i in range(1000):
                    x += i

        busy = threading.Thread(target=spin)
        busy.start()
        try:
            on_thread("loop busy")
        finally:
            stop.set()
            busy.join()
        conn.close()

    print(f"{n} rows per transaction, median of {args.rounds} (wall ms / CPU ms of the thread)")
    for name in ways:
        alone = statistics.median(w for w, _ in results["alone", name])
        busy_wall = statistics.median(w for w, _ in results["loop busy", name])
        busy_cpu = statistics.median(c for _, c in results["loop busy", name])
        print(
            f"  {name:<16} alone {alone * 1e3:7.1f}   loop busy {busy_wall * 1e3:8.1f} / "
            f"{busy_cpu * 1e3:6.1f}   ratio busy/alone {busy_wall / alone:6.1f}x"
        )


if __name__ == "__main__":
    main()
