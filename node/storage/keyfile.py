"""The node's private key on disk: the raw 32-byte seed, hex, readable by its owner only."""

from __future__ import annotations

import os
from pathlib import Path

from node.errors import NodeError
from protocol.keys import SigningKey


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
