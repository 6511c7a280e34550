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

The report names each file inside its signed bytes (``protocol.events.FileRef``:
digest, name, size, media type; :func:`refs_of`), so every ancestor knows what it
waits for before the bytes arrive (docs/sync.md, "Attachments"). Here a file is
``held`` (its bytes are here), ``receiving`` (some of its bytes came from a child:
``blob_parts``) or ``waiting`` (named by a report, not here yet): :func:`statuses`.
Who may open a file: anyone who may read an item naming it (``item_files``,
:func:`items_naming`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from node.config import Config
from node.errors import Invalid, TooLarge
from node.storage import schema as t
from node.storage.accounts import User
from node.sync.blobs import node_bytes
from protocol.events import LINE_CONTROLS, MAX_FILE_NAME, MEDIA_TYPE_RE, FileRef

_MEDIA_TYPE = MEDIA_TYPE_RE
_LINE_CONTROL = re.compile(f"[{LINE_CONTROLS}]")
OCTET = "application/octet-stream"


def clean_name(name: str) -> str:
    """A file name as a signed report may carry it: UTF-8 (surrogates become U+FFFD),
    no control characters (each becomes "_"), 1..MAX_FILE_NAME characters."""
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    name = _LINE_CONTROL.sub("_", name).strip()[:MAX_FILE_NAME]
    return name or "file"


def clean_type(content_type: str) -> str:
    """A media type as a report records it: lower case, no parameters, else
    application/octet-stream."""
    content_type = content_type.split(";", 1)[0].strip().lower()
    return content_type if _MEDIA_TYPE.match(content_type) else OCTET


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
        object.__setattr__(self, "content_type", clean_type(self.content_type))
        object.__setattr__(self, "name", clean_name(self.name))
        object.__setattr__(self, "digest", hashlib.sha256(self.data).digest())

    @property
    def ref(self) -> FileRef:
        """How a report names it (signed)."""
        return FileRef(
            digest=self.digest, name=self.name, size=len(self.data), type=self.content_type
        )


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
    held = await node_bytes(conn)
    limit = quotas.node_bytes
    if held + adding > limit:
        raise TooLarge(
            "node_quota_exceeded",
            f"attachments: this node's files would take {held + adding} bytes; "
            f"its quota is {limit} bytes (api.attachment_quota_node_bytes): "
            "ask the node's administrator",
            "attachments",
        )


async def cited(conn: AsyncConnection, digests: Sequence[bytes]) -> tuple[FileRef, ...]:
    """How a report names files uploaded before (``POST /api/v1/attachments``): each
    from its ``attachments`` row; one not held here is refused (``unknown_attachment``,
    with its index)."""
    found: dict[bytes, FileRef] = {}
    if digests:
        a = t.attachments.c
        rows = await conn.execute(
            select(a.digest, a.filename, a.size, a.content_type).where(
                a.digest.in_(set(digests))
            )
        )
        for digest, name, size, content_type in rows:
            found[digest] = FileRef(
                digest=digest, name=clean_name(name), size=size, type=clean_type(content_type)
            )
    out = []
    for i, digest in enumerate(digests):
        if digest not in found:
            raise Invalid(
                "unknown_attachment",
                f"attachments[{i}]: no such attachment: upload it first",
                f"attachments[{i}]",
            )
        out.append(found[digest])
    return tuple(out)


@dataclass(frozen=True, slots=True)
class FileStatus:
    """Where a named file is at this node: ``held``, ``receiving`` (``received`` of
    its bytes are here) or ``waiting``."""

    status: str
    received: int

    def percent(self, size: int) -> int:
        return min(100, self.received * 100 // size) if size else 100


async def statuses(conn: AsyncConnection, digests: Sequence[bytes]) -> dict[bytes, FileStatus]:
    """Each digest's :class:`FileStatus` here."""
    wanted = set(digests)
    if not wanted:
        return {}
    a, p = t.attachments.c, t.blob_parts.c
    held = {
        d: size
        for d, size in await conn.execute(
            select(a.digest, a.size).where(a.digest.in_(wanted))
        )
    }
    parts = {
        d: int(n or 0)
        for d, n in await conn.execute(
            select(p.digest, func.sum(func.length(p.data)))
            .where(p.digest.in_(wanted - set(held)))
            .group_by(p.digest)
        )
    }
    out = {}
    for d in wanted:
        if d in held:
            out[d] = FileStatus("held", int(held[d]))
        elif parts.get(d):
            out[d] = FileStatus("receiving", parts[d])
        else:
            out[d] = FileStatus("waiting", 0)
    return out


async def items_naming(conn: AsyncConnection, digest: bytes) -> list[str]:
    """The items here whose reports name ``digest`` (``item_files``)."""
    f = t.item_files.c
    return list((await conn.execute(select(f.item_id).where(f.digest == digest))).scalars())
