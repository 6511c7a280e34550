"""A small filesystem of its own for one node's data directory: a loop-mounted
ext4 image (root only), or a sized tmpfs when loop devices are not available."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FILLER = "filler.bin"


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


@contextlib.contextmanager
def small_filesystem(mountpoint: Path, size_mb: int = 32) -> Iterator[str]:
    """Mount a ``size_mb`` filesystem at ``mountpoint``; yields its kind. Skips the
    test (with the reason) when this process may not mount; always unmounts."""
    if os.geteuid() != 0:
        pytest.skip("the disk-full run mounts a small filesystem: it needs root (CI is root)")
    mountpoint.mkdir(parents=True, exist_ok=True)
    image = mountpoint.parent / f"{mountpoint.name}.img"
    kind = "ext4"
    mounted = False
    try:
        made = shutil.which("mkfs.ext4") is not None
        if made:
            with image.open("wb") as f:
                f.truncate(size_mb * 1024 * 1024)
            made = _run("mkfs.ext4", "-q", "-m", "0", str(image)).returncode == 0
        if made:
            mounted = _run("mount", "-o", "loop", str(image), str(mountpoint)).returncode == 0
        if not mounted:
            kind = "tmpfs"
            done = _run("mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                        str(mountpoint))
            if done.returncode != 0:
                pytest.skip(f"cannot mount a small filesystem here: {done.stderr.strip()}")
            mounted = True
        yield kind
    finally:
        if mounted and _run("umount", str(mountpoint)).returncode != 0:
            _run("umount", "-l", str(mountpoint))
        image.unlink(missing_ok=True)


def fill(mountpoint: Path) -> int:
    """Write a filler file until the filesystem is full; returns its size in bytes."""
    written = 0
    block = b"\0" * (256 * 1024)
    with (mountpoint / FILLER).open("wb", buffering=0) as f:
        while True:
            try:
                written += f.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                # Take the last few blocks too, a smaller write at a time.
                for size in (65536, 4096, 512, 1):
                    while True:
                        try:
                            written += f.write(b"\0" * size)
                        except OSError:
                            break
                break
        with contextlib.suppress(OSError):
            os.fsync(f.fileno())
    return written


def free(mountpoint: Path) -> None:
    (mountpoint / FILLER).unlink(missing_ok=True)


def available(mountpoint: Path) -> int:
    st = os.statvfs(mountpoint)
    return st.f_bavail * st.f_frsize
