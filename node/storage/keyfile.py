"""The node's private key on disk: the raw 32-byte seed, hex, readable by its owner only.

A key rotation replaces the file (:func:`pending_path`, :func:`install`): the new
key is written beside the old one before anyone is asked to certify it, and the
old one is kept under another name afterwards, so no crash loses either.

:func:`hold` is the data directory's lock: a running node holds it shared (so
several processes may serve one node), a command that changes the node's key or
certificates holds it exclusively, and each refuses while the other holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from node.errors import NodeError
from protocol.keys import SigningKey

LOCK_NAME = "node.lock"
PENDING_SUFFIX = ".new"


class KeyFileError(NodeError):
    """A node key file that cannot be created or read (reason ``bad_key_file``);
    ``str()`` is the message."""

    def __init__(self, message: str) -> None:
        super().__init__('bad_key_file', message)

    def __str__(self) -> str:
        return self.detail


def create(path: Path) -> SigningKey:
    if path.exists():
        raise KeyFileError(f"{path} already exists: refusing to overwrite a node key")
    key = SigningKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.seed().hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    _sync_dir(path.parent)
    return key


def load(path: Path) -> SigningKey:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise KeyFileError(f"{path} not found: this data directory holds no node") from None
    try:
        seed = bytes.fromhex(text)
        return SigningKey.from_seed(seed)
    except ValueError:
        raise KeyFileError(f"{path} is not a node key (64 hex characters)") from None


def pending_path(path: Path) -> Path:
    """Where a rotation keeps the next key until it is certified and installed."""
    return path.with_name(path.name + PENDING_SUFFIX)


def retired_path(path: Path, key: SigningKey, day: str) -> Path:
    """Where a rotated-out key is kept: ``node.key.old-20261207-1a2b3c4d``."""
    return path.with_name(f"{path.name}.old-{day}-{key.key_id.hex()[:8]}")


def install(path: Path, pending: Path, keep_as: Path) -> None:
    """Make the key in ``pending`` the node's key, keeping the old one as ``keep_as``.

    Each step leaves a state a second run finishes: the old key is linked to its
    new name first (both names then hold it), then the new one is renamed over
    ``path`` atomically."""
    if not keep_as.exists():
        os.link(path, keep_as)
    os.replace(pending, path)
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    """Make the directory's entries (a new file, a rename) durable."""
    with contextlib.suppress(OSError):  # not every file system lets a directory be synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def hold(data_dir: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the data directory's lock (``flock``): shared while a node runs,
    exclusive while a command changes its key or certificates."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            if exclusive:
                raise KeyFileError(
                    f"the node in {data_dir} is running (or another duban command is "
                    "changing it): stop it first"
                ) from None
            raise KeyFileError(
                f"a duban command is changing the key or certificates of the node in "
                f"{data_dir}: start it once that has finished"
            ) from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def running(data_dir: Path, path: Path) -> Iterator[None]:
    """What a node holds while it runs: the lock, shared. A node whose key rotation
    was cut short (``pending_path`` exists) does not start: its parent may have
    certified the new key already, and the old one would sign events refused
    everywhere."""
    with hold(data_dir, exclusive=False):
        if pending_path(path).exists():
            raise KeyFileError(
                f"a key rotation of the node in {data_dir} did not finish "
                f"({pending_path(path).name} exists): run `duban key rotate --data "
                f"{data_dir}` again to finish it"
            )
        yield
