"""People of a node: accounts, roles, units, passwords, tokens and sessions.

Passwords are hashed with Argon2id (``argon2-cffi``). Bearer tokens and session
ids are 256-bit random strings; only their SHA-256 is stored, so a copy of the
database gives no way in. Hashing runs on a worker thread: Argon2 is slow on
purpose and must not stall the event loop.

:meth:`Accounts.sign_in` does the same work whatever the name: an unknown name,
a disabled account or one without a password is checked against a dummy hash
of the same cost, so the answer's time does not tell which names exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select, update

from hierarchy.roles import Role
from node.errors import Invalid
from node.storage import schema as t
from node.storage.db import Database
from node.storage.unit_lists import UnitPublisher
from protocol.events import LINE_CONTROLS
from protocol.units import MAX_UNIT_NAME

NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}\Z")
UNIT_RE = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
PHONE_RE = re.compile(r"\+?[0-9]{5,20}\Z")
EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\Z")
TOKEN_PREFIX = "dbn_"
SESSION_MS = 12 * 3600 * 1000
MIN_PASSWORD = 8
_LINE_CONTROLS = re.compile(f"[{LINE_CONTROLS}]")


class AccountError(Invalid):
    """An account, unit or contact change that cannot be made, with its reason
    (``bad_name``, ``user_exists``, ``unknown_user``...)."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    display_name: str
    role: Role
    unit: str | None
    disabled: bool
    phone: str | None = None
    email: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "role": str(self.role),
            "unit": self.unit,
        }


def _user(row: object) -> User:
    m = row._mapping  # type: ignore[attr-defined]
    return User(
        id=int(m["id"]),
        name=m["name"],
        display_name=m["display_name"],
        role=Role(m["role"]),
        unit=m["unit"],
        disabled=bool(m["disabled"]),
        phone=m["phone"],
        email=m["email"],
    )


def check_contact(phone: str | None, email: str | None) -> tuple[str | None, str | None]:
    """Normalised (phone, email) for reminders; "" clears one, None leaves it unset."""
    if phone:
        phone = re.sub(r"[\s-]", "", phone)
        if not PHONE_RE.match(phone):
            raise AccountError("bad_phone", "5-20 digits, optionally after +")
    if email:
        email = email.strip()
        if not EMAIL_RE.match(email):
            raise AccountError("bad_email", "an address like name@example.gov.cn")
    return phone, email


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


class Accounts:
    """Named transactions over users, credentials and units.

    ``hasher`` is argon2's :class:`PasswordHasher` (its default parameters unless
    one is given); ``publisher`` signs the node's unit list whenever its units
    change, in the same transaction (node/storage/unit_lists.py; None: a node
    opened without its key, which publishes nothing).
    """

    def __init__(
        self,
        db: Database,
        hasher: PasswordHasher | None = None,
        *,
        publisher: UnitPublisher | None = None,
    ) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()
        self.publisher = publisher
        self._dummy: str | None = None

    # ---------------------------------------------------------- passwords

    async def hash_password(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def check_password(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; with no stored hash, the same work
        against a dummy hash, and False."""
        target = stored or await self._dummy_hash()

        def verify() -> bool:
            try:
                return self.hasher.verify(target, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(verify) and bool(stored)

    async def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = await self.hash_password(secrets.token_urlsafe(24))
        return self._dummy

    async def sign_in(self, name: str, password: str) -> User | None:
        """The person of ``name`` if the password is theirs and the account is enabled.

        One Argon2 verification whatever the outcome (see the module's docstring).
        """
        found = await self.user_by_name(name)
        user, stored = found if found is not None else (None, None)
        ok = await self.check_password(stored, password)
        if user is None or user.disabled or not ok:
            return None
        return user

    # -------------------------------------------------------------- units

    async def add_unit(self, code: str, name: str, *, office: bool, now: int) -> None:
        """Add a unit; the node's unit list is signed again in the same transaction
        and goes up the tree (``publisher``)."""
        if not UNIT_RE.match(code):
            raise AccountError("bad_unit", "unit codes are lowercase letters, digits and _")
        name = name.strip()
        if not name:
            raise AccountError("bad_unit", "a unit needs a name")
        if len(name) > MAX_UNIT_NAME or _LINE_CONTROLS.search(name):
            raise AccountError(
                "bad_unit", f"a unit's name is one line of at most {MAX_UNIT_NAME} characters"
            )
        stored = None
        async with self.db.write() as conn:
            if await conn.scalar(select(t.units.c.code).where(t.units.c.code == code)):
                raise AccountError("unit_exists", code)
            await conn.execute(
                t.units.insert().values(code=code, name=name, office=office, created_at=now)
            )
            if self.publisher is not None:
                stored = await self.publisher.store(conn, now)
        if stored is not None and self.publisher is not None:
            await self.publisher.announce(stored)

    async def publish_units_if_stale(self, now: int) -> bool:
        """At start: sign the node's unit list if it has units and no current list of
        its own (``UnitPublisher.publish_if_stale``). Returns whether it signed one."""
        if self.publisher is None:
            return False
        return await self.publisher.publish_if_stale(self.db, now)

    async def units(self) -> dict[str, str]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(t.units.c.code, t.units.c.name).order_by(t.units.c.code)
            )
            return {r[0]: r[1] for r in rows}

    async def unit_rows(self) -> list[tuple[str, str, bool]]:
        """Every unit as (code, name, whether it is the general office), by code."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(t.units.c.code, t.units.c.name, t.units.c.office).order_by(t.units.c.code)
            )
            return [(r[0], r[1], bool(r[2])) for r in rows]

    # -------------------------------------------------------------- users

    async def add_user(
        self,
        name: str,
        *,
        role: str,
        unit: str | None,
        password: str | None,
        display_name: str = "",
        now: int,
        phone: str | None = None,
        email: str | None = None,
    ) -> User:
        if not NAME_RE.match(name):
            raise AccountError("bad_name", "1-64 letters, digits or _.@-")
        try:
            parsed = Role(role)
        except ValueError:
            raise AccountError(
                "unknown_role", f"{role!r}: one of {', '.join(r.value for r in Role)}"
            ) from None
        if parsed in (Role.UNIT_HEAD, Role.OPERATOR) and not unit:
            raise AccountError("unit_required", f"a {parsed} acts for one unit: give --unit")
        if password is not None and len(password) < MIN_PASSWORD:
            raise AccountError("weak_password", f"at least {MIN_PASSWORD} characters")
        phone, email = check_contact(phone, email)
        hashed = await self.hash_password(password) if password is not None else None
        async with self.db.write() as conn:
            if unit is not None and not await conn.scalar(
                select(t.units.c.code).where(t.units.c.code == unit)
            ):
                raise AccountError("unknown_unit", f"{unit!r}: add it with `duban unit add`")
            if await conn.scalar(select(t.users.c.id).where(t.users.c.name == name)):
                raise AccountError("user_exists", name)
            await conn.execute(
                t.users.insert().values(
                    name=name,
                    display_name=display_name or name,
                    role=str(parsed),
                    unit=unit,
                    password_hash=hashed,
                    created_at=now,
                    disabled=False,
                    phone=phone or None,
                    email=email or None,
                )
            )
            row = (await conn.execute(select(t.users).where(t.users.c.name == name))).first()
        return _user(row)

    async def set_password(self, name: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise AccountError("weak_password", f"at least {MIN_PASSWORD} characters")
        hashed = await self.hash_password(password)
        async with self.db.write() as conn:
            done = await conn.execute(
                update(t.users).where(t.users.c.name == name).values(password_hash=hashed)
            )
            if done.rowcount == 0:
                raise AccountError("unknown_user", name)

    async def set_contact(
        self, name: str, *, phone: str | None = None, email: str | None = None
    ) -> User:
        """Set (or with "" clear) a person's phone and email; None leaves one as it is."""
        phone, email = check_contact(phone, email)
        values = {
            key: value or None
            for key, value in (("phone", phone), ("email", email))
            if value is not None
        }
        async with self.db.write() as conn:
            if values:
                await conn.execute(update(t.users).where(t.users.c.name == name).values(**values))
            row = (await conn.execute(select(t.users).where(t.users.c.name == name))).first()
        if row is None:
            raise AccountError("unknown_user", name)
        return _user(row)

    async def user_by_name(self, name: str) -> tuple[User, str | None] | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(t.users).where(t.users.c.name == name))).first()
        if row is None:
            return None
        return _user(row), row.password_hash

    async def users(self) -> list[User]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(t.users).order_by(t.users.c.name))
            return [_user(r) for r in rows]

    # --------------------------------------------------------- credentials

    async def issue(self, user: User, *, kind: str, now: int, ttl_ms: int | None) -> str:
        """A new bearer token (kind "token") or session id (kind "session")."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.db.write() as conn:
            await conn.execute(
                t.credentials.insert().values(
                    token_hash=token_hash(secret),
                    user_id=user.id,
                    kind=kind,
                    created_at=now,
                    expires_at=None if ttl_ms is None else now + ttl_ms,
                    last_used_at=None,
                )
            )
        return secret

    async def token_for(self, name: str, now: int) -> str:
        found = await self.user_by_name(name)
        if found is None:
            raise AccountError("unknown_user", name)
        return await self.issue(found[0], kind="token", now=now, ttl_ms=None)

    async def resolve(self, secret: str, now: int) -> tuple[User | None, str]:
        """(user, "") for a valid credential, else (None, reason)."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(t.credentials, t.users)
                    .join(t.users, t.users.c.id == t.credentials.c.user_id)
                    .where(t.credentials.c.token_hash == token_hash(secret))
                )
            ).first()
        if row is None:
            return None, "bad_credentials"
        if row.expires_at is not None and row.expires_at <= now:
            return None, "session_expired"
        if row.disabled:
            return None, "account_disabled"
        return _user(row), ""

    async def revoke(self, secret: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                delete(t.credentials).where(t.credentials.c.token_hash == token_hash(secret))
            )
