"""Attachments: files kept by their SHA-256, checked before they are kept, within quotas.

A file arrives with feedback or a resolution (multipart, the API or the item
page) or alone (``POST /api/v1/attachments``). It is read into memory (each at
most ``api.max_attachment_bytes``) and stored only once everything else says
yes: the person may act (checked before the body is read), the item's state
allows it and the event is valid — the files are written in the very
transaction that signs the event (:meth:`node.workflow.actions.Workflow.act`), so a
refusal at any step leaves nothing behind.

Quotas, in the same transaction: the bytes a person's uploads stored
(``api.attachment_quota_user_bytes``, ``quota_exceeded``) and all the bytes of
this node's files (``api.attachment_quota_node_bytes``, ``node_quota_exceeded``),
both :class:`node.errors.TooLarge`. A file already held (the same hash) costs
nothing again; it stays counted for whoever stored it first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from node.config import Config
from node.errors import TooLarge
from node.storage import schema as t
from node.storage.accounts import User

_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,63}/[a-z0-9!#$&^_.+-]{1,63}\Z")


@dataclass(frozen=True, slots=True)
class NewFile:
    """A file received but not stored yet. The media type and name come from request
    headers, which may hold anything: an odd type becomes application/octet-stream and
    bytes that are not UTF-8 (surrogates here) U+FFFD."""

    data: bytes
    content_type: str
    name: str
    digest: bytes = field(init=False)

    def __post_init__(self) -> None:
        content_type = self.content_type.strip().lower()
        if not _MEDIA_TYPE.match(content_type):
            content_type = "application/octet-stream"
        name = self.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace") or "file"
        object.__setattr__(self, "content_type", content_type[:128])
        object.__setattr__(self, "name", name[:200])
        object.__setattr__(self, "digest", hashlib.sha256(self.data).digest())


@dataclass(frozen=True, slots=True)
class Quotas:
    """The bytes a person's uploads may take (``api.attachment_quota_user_bytes``) and
    all of this node's files (``api.attachment_quota_node_bytes``)."""

    user_bytes: int
    node_bytes: int

    @classmethod
    def from_config(cls, config: Config) -> Quotas:
        return cls(
            user_bytes=int(config["api.attachment_quota_user_bytes"]),
            node_bytes=int(config["api.attachment_quota_node_bytes"]),
        )


async def store(
    conn: AsyncConnection, quotas: Quotas, user: User, files: Sequence[NewFile], now: int
) -> None:
    """Keep ``files`` in the caller's write transaction, or refuse them all (TooLarge)."""
    digest = t.attachments.c.digest
    held = set(
        (await conn.execute(select(digest).where(digest.in_({f.digest for f in files}))))
        .scalars()
    )
    new: dict[bytes, NewFile] = {}
    for file in files:
        if file.digest not in held:
            new.setdefault(file.digest, file)
    if not new:
        return
    adding = sum(len(f.data) for f in new.values())
    await _check_quotas(conn, quotas, user, adding)
    await conn.execute(
        t.attachments.insert(),
        [
            {
                "digest": f.digest,
                "size": len(f.data),
                "content_type": f.content_type,
                "filename": f.name,
                "created_at": now,
                "data": f.data,
                "uploaded_by": user.id,
            }
            for f in new.values()
        ],
    )


async def _check_quotas(conn: AsyncConnection, quotas: Quotas, user: User, adding: int) -> None:
    size = t.attachments.c.size
    mine = int(
        await conn.scalar(
            select(func.coalesce(func.sum(size), 0)).where(
                t.attachments.c.uploaded_by == user.id
            )
        )
        or 0
    )
    limit = quotas.user_bytes
    if mine + adding > limit:
        raise TooLarge(
            "quota_exceeded",
            f"attachments: your files would take {mine + adding} bytes; "
            f"your quota is {limit} bytes (api.attachment_quota_user_bytes)",
            "attachments",
        )
    held = int(await conn.scalar(select(func.coalesce(func.sum(size), 0))) or 0)
    limit = quotas.node_bytes
    if held + adding > limit:
        raise TooLarge(
            "node_quota_exceeded",
            f"attachments: this node's files would take {held + adding} bytes; "
            f"its quota is {limit} bytes (api.attachment_quota_node_bytes): "
            "ask the node's administrator",
            "attachments",
        )
