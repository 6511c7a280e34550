"""A node's unit list, signed by the node itself and published up the tree.

A parent passing an item down (转办 / 任务分解) names a lead unit and co-units of
the child that will handle it: it needs the child's units. Each node signs its
own list as a ``node.units`` envelope and sends it up; every ancestor keeps the
newest version per node (docs/hierarchy.md, "Unit lists up the tree").

Body (a strict msgpack map, every field required, no other)::

    node     the node whose units these are; it alone signs its list
    version  an integer that only goes up (>= 1); a receiver keeps the highest
    at       unix milliseconds UTC, the signer's clock
    units    [{"code": unit code, "name": display name, "office": bool}, ...]
             at most MAX_UNITS, codes distinct

The record is signed alone (never in a Merkle batch) and carries no origin
sequence: like a trust record it is not an item event, and it is checked by the
signer's key (:func:`verify_units`): the key's certificate must name ``node``
and be current (not retired, not revoked, its path in date). Whether it came
from the right link and whether its version is new are the receiver's checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from protocol import codec, envelope, errors
from protocol.certs import TrustStore
from protocol.envelope import Envelope
from protocol.errors import ProtocolError
from protocol.events import LINE_CONTROLS, MAX_COUNTER, MAX_MS, NODE_ID_RE, UNIT_RE
from protocol.keys import SigningKey

UNITS_TYPE: Final = "node.units"
MAX_UNITS: Final = 256
MAX_UNIT_NAME: Final = 100

BAD_UNIT_LIST: Final = "bad_unit_list"
"""A unit list that does not decode or validate (the detail names the field)."""

UNITS_LIMITS: Final = codec.Limits(
    max_size=64 * 1024,
    max_str=4 * MAX_UNIT_NAME,
    max_bin=1,
    max_array=MAX_UNITS,
    max_map=8,
    max_depth=3,
)
"""Decoding caps for one body: 256 units of 100-character names fit with room."""

_FIELDS: Final = frozenset({"node", "version", "at", "units"})
_UNIT_FIELDS: Final = frozenset({"code", "name", "office"})
_BAD_NAME: Final = re.compile(f"[{LINE_CONTROLS}]")


def _bad(detail: str) -> ProtocolError:
    return ProtocolError(BAD_UNIT_LIST, detail)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """One unit of a node: its general office or a department."""

    code: str
    name: str
    office: bool = False

    def __post_init__(self) -> None:
        if type(self.code) is not str or not UNIT_RE.match(self.code):
            raise _bad("units.code: not a unit code")
        if type(self.name) is not str or not 1 <= len(self.name) <= MAX_UNIT_NAME:
            raise _bad(f"units.name: length must be 1..{MAX_UNIT_NAME}")
        if _BAD_NAME.search(self.name) or self.name != self.name.strip():
            raise _bad("units.name: control character or padding")
        if type(self.office) is not bool:
            raise _bad("units.office: must be a boolean")

    def to_value(self) -> dict[str, codec.Value]:
        return {"code": self.code, "name": self.name, "office": self.office}


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitList:
    """What one node says its units are, as of ``version``."""

    node: str
    version: int
    at: int
    units: tuple[Unit, ...]

    def __post_init__(self) -> None:
        if type(self.node) is not str or not NODE_ID_RE.match(self.node):
            raise _bad("node: not a node id")
        if type(self.version) is not int or not 1 <= self.version <= MAX_COUNTER:
            raise _bad(f"version: must be an integer in 1..{MAX_COUNTER}")
        if type(self.at) is not int or not 0 <= self.at <= MAX_MS:
            raise _bad(f"at: must be an integer in 0..{MAX_MS}")
        if type(self.units) is not tuple or len(self.units) > MAX_UNITS:
            raise _bad(f"units: at most {MAX_UNITS}")
        codes = set()
        for unit in self.units:
            if type(unit) is not Unit:
                raise _bad("units: not a unit")
            if unit.code in codes:
                raise _bad(f"units: {unit.code} is listed twice")
            codes.add(unit.code)

    def to_value(self) -> dict[str, codec.Value]:
        return {
            "node": self.node,
            "version": self.version,
            "at": self.at,
            "units": [u.to_value() for u in self.units],
        }

    def by_code(self) -> dict[str, Unit]:
        return {u.code: u for u in self.units}


def encode_units(listed: UnitList) -> bytes:
    return codec.encode(listed.to_value())


def decode_units(body: bytes) -> UnitList:
    """The list in ``body``; ``bad_unit_list`` (and nothing else) if it is not one."""
    try:
        value = codec.decode(body, UNITS_LIMITS)
    except ProtocolError as exc:
        raise _bad(f"body: {exc.reason}") from None
    if type(value) is not dict:
        raise _bad("body is not a map")
    _exact(value, _FIELDS, "")
    raw_units = value["units"]
    if type(raw_units) is not list:
        raise _bad("units: must be a list")
    units = []
    for entry in raw_units:
        if type(entry) is not dict:
            raise _bad("units: each unit is a map")
        _exact(entry, _UNIT_FIELDS, "units.")
        units.append(Unit(code=entry["code"], name=entry["name"], office=entry["office"]))  # type: ignore[arg-type]
    return UnitList(
        node=value["node"],  # type: ignore[arg-type]
        version=value["version"],  # type: ignore[arg-type]
        at=value["at"],  # type: ignore[arg-type]
        units=tuple(units),
    )


def _exact(value: dict[str, codec.Value], fields: frozenset[str], at: str) -> None:
    missing, extra = fields - value.keys(), value.keys() - fields
    if missing:
        raise _bad(f"{at}missing fields {sorted(missing)}")
    if extra:
        raise _bad(f"{at}unknown fields {sorted(extra)[:8]}")


def sign_units(key: SigningKey, listed: UnitList) -> Envelope:
    """The node's own signing step: its list in, a ``node.units`` envelope out."""
    return envelope.sign(key, UNITS_TYPE, encode_units(listed))


def verify_units(env: Envelope, trust: TrustStore, now: int) -> UnitList:
    """The list ``env`` carries, if its signer's current key signed it for its own node.

    Refuses with ``bad_type``, ``bad_envelope`` (signed in a batch),
    ``unknown_key``, ``key_retired``, ``key_revoked``, an expired path's reason,
    ``bad_signature``, ``bad_unit_list`` or ``signer_mismatch`` (another node's key
    signed it)."""
    if env.type != UNITS_TYPE:
        raise ProtocolError(errors.BAD_TYPE, f"{env.type!r} is not {UNITS_TYPE!r}")
    if env.proof is not None:
        raise ProtocolError(errors.BAD_ENVELOPE, "a unit list is signed alone, never in a batch")
    # Verify before decoding (DESIGN.md, section 4): the key is found by its id alone.
    certificate = trust.check_key(env.key_id, now)
    env.verify(trust.key_for(env.key_id))
    listed = decode_units(env.body)
    if certificate.node != listed.node:
        raise ProtocolError(
            errors.SIGNER_MISMATCH,
            f"key of {certificate.node} signed the unit list of {listed.node}",
        )
    return listed
