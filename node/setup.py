"""Creating nodes: a root from nothing, a child by enrolling under its parent.

The CLI, the demo and the tests all create nodes through these two functions.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from hierarchy.enrollment import complete_join, make_join_request
from node import config as cfg
from node.clock import Clock
from node.context import open_node
from node.errors import NodeError
from node.storage import keyfile
from node.storage.db import open_database
from node.storage.events import SELF
from protocol.certs import issue_certificate

logger = logging.getLogger(__name__)

TEN_YEARS_MS = 3650 * 86400 * 1000


class SetupError(NodeError):
    """A node that cannot be created or enrolled (reason ``setup_failed``); ``str()``
    is the message, which says why."""

    def __init__(self, message: str) -> None:
        super().__init__('setup_failed', message)

    def __str__(self) -> str:
        return self.detail


def _fresh(data: Path) -> None:
    if (data / cfg.CONFIG_NAME).exists():
        raise SetupError(f"{data} already holds a node ({cfg.CONFIG_NAME} exists)")


async def init_root(
    data: Path,
    *,
    node: str,
    name: str,
    level: str,
    clock: Clock,
    extra: dict[str, Any] | None = None,
) -> cfg.Config:
    """A new root node: its key, configuration, database and self-signed certificate."""
    _fresh(data)
    key = keyfile.create(data / cfg.KEY_NAME)
    now = clock.now_ms()
    values: dict[str, Any] = {
        "node.id": node,
        "node.name": name,
        "node.level": level,
        "node.root_fingerprint": key.verify_key.fingerprint,
        **(extra or {}),
    }
    config = cfg.write(data, values)
    cert = issue_certificate(
        key,
        node=node,
        name=name,
        level=level,
        parent=None,
        public_key=key.public_key,
        version=1,
        not_before=now - 60_000,
        not_after=now + TEN_YEARS_MS,
    )
    await _create_db_with_records(config, clock, [cert.raw])
    return config


@dataclass(frozen=True, slots=True)
class Invitation:
    parent: str
    node: str
    name: str
    level: str
    root_fingerprint: str


async def lookup_code(session: aiohttp.ClientSession, parent_url: str, code: str) -> Invitation:
    async with session.post(f"{parent_url}/enroll/v1/lookup", data=code.encode()) as r:
        info = await r.json(content_type=None)
        if r.status != 200:
            raise SetupError(
                f"the parent refused the code: {info.get('error')} ({info.get('detail')})"
            )
    return Invitation(
        info["parent"], info["node"], info["name"], info["level"], info["root_fingerprint"]
    )


async def join_parent(
    data: Path,
    *,
    parent_url: str,
    code: str,
    root: str | None,
    clock: Clock,
    extra: dict[str, Any] | None = None,
) -> cfg.Config:
    """Enroll a new node under ``parent_url`` with a one-time ``code``.

    ``root`` is the fingerprint to pin; without it the parent's word is taken
    (trust on first use) and a warning logged.
    """
    _fresh(data)
    parent_url = parent_url.rstrip("/")
    async with aiohttp.ClientSession() as session:
        info = await lookup_code(session, parent_url, code)
        if root is None:
            logger.warning(
                "pinning root fingerprint %s as told by the parent; compare it "
                "with the one the province published",
                info.root_fingerprint,
            )
            root = info.root_fingerprint
        elif root.lower() != info.root_fingerprint:
            raise SetupError("the parent's root fingerprint differs from the pinned one")
        key = keyfile.create(data / cfg.KEY_NAME)
        request = make_join_request(
            key, parent=info.parent, node=info.node, code=code, now=clock.now_ms()
        )
        async with session.post(f"{parent_url}/enroll/v1/join", data=request) as r:
            body = await r.read()
            if r.status != 200:
                (data / cfg.KEY_NAME).unlink()
                raise SetupError(f"join refused: {body.decode('utf-8', 'replace')}")
    trust = complete_join(body, key=key, node=info.node, root_fingerprint=root, now=clock.now_ms())
    values: dict[str, Any] = {
        "node.id": info.node,
        "node.name": info.name,
        "node.level": info.level,
        "node.parent_url": parent_url,
        "node.root_fingerprint": root,
        **(extra or {}),
    }
    config = cfg.write(data, values)
    await _create_db_with_records(config, clock, trust.export())
    return config


async def first_admin(
    config: cfg.Config, clock: Clock, *, name: str = "admin", password: str | None = None
) -> tuple[str, str]:
    """The node's general office unit and its first administrator (supervisor role).

    Returns (name, password); the password is generated unless given, shown once."""
    password = password or secrets.token_urlsafe(12)
    ctx = await open_node(config, clock)
    try:
        now = clock.now_ms()
        if "office" not in await ctx.accounts.units():
            await ctx.accounts.add_unit("office", "办公室", office=True, now=now)
        await ctx.accounts.add_user(
            name, role="supervisor", unit="office", password=password,
            display_name="督查室管理员", now=now,
        )
    finally:
        await ctx.close()
    return name, password


async def _create_db_with_records(config: cfg.Config, clock: Clock, records: list[bytes]) -> None:
    db = await open_database(config.database_url, create=True)
    await db.close()
    ctx = await open_node(config, clock)
    try:
        now = clock.now_ms()
        for raw in records:
            ctx.trust.add(raw, now)
        await ctx.store.store_trust_records(records, SELF)
    finally:
        await ctx.close()
