"""Unit lists of this node and its subtree (``node_units``), and publishing our own.

Each node signs its own unit list (``protocol.units``) whenever its units change
and sends it up; every ancestor keeps the newest version per node in
``node_units`` (the sync layer's ``Ingestor`` checks and stores received ones with
:func:`held_version` and :func:`keep`). The record itself is also stored as an
event without origin sequence, like a trust record, so it is routed up by the
outbox, kept for audit and recognised by its id everywhere.

Our own list is signed in the transaction that changes the units
(:meth:`UnitPublisher.store`), so a unit is never added without its list being
queued; :meth:`UnitPublisher.publish_if_stale` at start covers the nodes that had
units before lists were published, and a key rotated since the last list.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from node.storage import schema as t
from node.storage.db import Database
from node.storage.events import SELF, Accepted, EventLog, Stored
from protocol import envelope
from protocol.events import LINE_CONTROLS
from protocol.keys import SigningKey
from protocol.units import MAX_UNIT_NAME, Unit, UnitList, sign_units

logger = logging.getLogger(__name__)

_CONTROLS = re.compile(f"[{LINE_CONTROLS}]")


@dataclass(frozen=True, slots=True)
class HeldList:
    """A node's unit list as held here: the newest version that reached us."""

    node: str
    version: int
    signed_at: int
    received_at: int
    units: tuple[Unit, ...]
    key_id: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "version": self.version,
            "signed_at": self.signed_at,
            "received_at": self.received_at,
            "units": [{"code": u.code, "name": u.name, "office": u.office} for u in self.units],
        }


def _held(row: Any) -> HeldList:
    units = tuple(Unit(code=c, name=n, office=bool(o)) for c, n, o in json.loads(row.units))
    return HeldList(
        node=row.node,
        version=int(row.version),
        signed_at=int(row.signed_at),
        received_at=int(row.received_at),
        units=units,
        key_id=envelope.parse(bytes(row.raw)).key_id,
    )


def held_version(conn: Connection, node: str) -> int:
    """The version of ``node``'s list held here (0: none), inside a transaction."""
    value = conn.scalar(select(t.node_units.c.version).where(t.node_units.c.node == node))
    return int(value or 0)


def keep(conn: Connection, listed: UnitList, raw: bytes, now: int) -> None:
    """Hold ``listed`` (checked, and newer than what is held: the caller's part)."""
    values = {
        "version": listed.version,
        "units": json.dumps([[u.code, u.name, u.office] for u in listed.units],
                            ensure_ascii=False),
        "signed_at": listed.at,
        "received_at": now,
        "raw": raw,
    }
    done = conn.execute(
        update(t.node_units).where(t.node_units.c.node == listed.node).values(**values)
    )
    if done.rowcount == 0:
        conn.execute(t.node_units.insert().values(node=listed.node, **values))


async def held(db: Database, nodes: list[str]) -> dict[str, HeldList]:
    """The lists held for ``nodes`` (those with none are left out)."""
    if not nodes:
        return {}
    async with db.read() as conn:
        rows = await conn.execute(select(t.node_units).where(t.node_units.c.node.in_(nodes)))
        return {r.node: _held(r) for r in rows}


async def _own_units(conn: AsyncConnection) -> tuple[Unit, ...]:
    rows = await conn.execute(
        select(t.units.c.code, t.units.c.name, t.units.c.office).order_by(t.units.c.code)
    )
    return tuple(Unit(code=r.code, name=_shown(r.name), office=bool(r.office)) for r in rows)


def _shown(name: str) -> str:
    """A unit's name as its list carries it: ``Accounts.add_unit`` keeps names within
    the list's rules; one stored before that is cleaned and cut, never refused."""
    cleaned = " ".join(_CONTROLS.sub(" ", name).split())[:MAX_UNIT_NAME].strip()
    return cleaned or "-"


class UnitPublisher:
    """Signs and stores this node's own unit list, through the event ``log`` (which
    routes it up) with this node's ``key``."""

    def __init__(self, log: EventLog, key: SigningKey, me: str) -> None:
        self.log = log
        self.key = key
        self.me = me

    async def store(self, conn: AsyncConnection, now: int) -> Stored:
        """Sign the node's current units and store the record, inside the caller's
        write transaction; hand the result to :meth:`announce` once it commits.

        The version is the held one plus one, or the time in milliseconds if that is
        more: a node restored from an old backup still publishes above what its
        ancestors hold."""
        units = await _own_units(conn)
        before = await conn.run_sync(held_version, self.me)
        listed = UnitList(node=self.me, version=max(before + 1, now), at=now, units=units)
        env = sign_units(self.key, listed)
        stored = await self.log.insert_accepted(
            conn, [Accepted(env=env, event=None, origin=None, origin_seq=None)], SELF, now
        )
        await conn.run_sync(keep, listed, env.raw, now)
        logger.info("unit list version %d signed: %d units", listed.version, len(units))
        return stored

    async def announce(self, stored: Stored) -> None:
        """After the commit: the record is queued for the parent's link."""
        self.log.fold_later(stored)
        await self.log.router.queued(stored.links)

    async def publish_if_stale(self, db: Database, now: int) -> bool:
        """At start: sign the list if the node has units but holds no list of its own,
        one that differs from its units, or one signed by a key it no longer uses.
        Returns whether it signed one."""
        async with db.write() as conn:
            units = await _own_units(conn)
            row = (
                await conn.execute(select(t.node_units).where(t.node_units.c.node == self.me))
            ).first()
            current = _held(row) if row is not None else None
            if current is None and not units:
                return False
            if (
                current is not None
                and current.units == units
                and current.key_id == self.key.key_id
            ):
                return False
            stored = await self.store(conn, now)
        await self.announce(stored)
        return True
