"""Who is asking: bearer tokens for scripts, session cookies for pages.

``Authorization: Bearer <token>`` (from ``duban token``) or the ``duban_session``
cookie set by ``POST /api/v1/login``.

Failed sign-ins are limited three ways in one sliding window
(``signin.*`` settings): per client address and name (``MAX_FAILURES``), per
name from any address (guessing spread over many addresses, counted for
unknown names too, so a refusal tells nothing about a name) and per address
for any names (one address trying many names). Past a limit the answer is 429
``too_many_attempts`` with ``Retry-After``, whatever the password, and the
detail says which limit. The client's address is the peer's, or behind a
trusted proxy the one it forwards (:mod:`node.http.clients`); an IPv6 client
counts as its /64, which one home line or host holds whole.

An attempt counts before its password is checked, and the right password gives
its slot back: guesses sent at once (an Argon2 check takes a fraction of a
second) meet the limits as guesses sent one after another do.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque

from aiohttp import web

from node.config import Config
from node.errors import TooMany, Unauthenticated
from node.http import clients, forgery
from node.http.api.bodies import SMALL_JSON_BYTES, Login
from node.http.api.validate import read_body
from node.http.services import ACCOUNTS, CLOCK, CONFIG, TREE
from node.storage.accounts import SESSION_MS, User

logger = logging.getLogger(__name__)

COOKIE = "duban_session"
MAX_FAILURES = 5
MAX_ACCOUNT_FAILURES = 20
MAX_ADDRESS_FAILURES = 50
WINDOW_MS = 15 * 60 * 1000
USER_KEY = web.RequestKey("duban_user", User)

_SCOPES = {
    "pair": "for this name from this address",
    "account": "for this account from any address",
    "address": "from this address",
}


class LoginLimiter:
    """Failed attempts per (address, name), per name and per address in a sliding
    window; bounded memory (the oldest keys are forgotten past ``capacity``)."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        max_account_failures: int = MAX_ACCOUNT_FAILURES,
        max_address_failures: int = MAX_ADDRESS_FAILURES,
        window_ms: int = WINDOW_MS,
        capacity: int = 50_000,
    ) -> None:
        self.limits = {
            "pair": max_failures,
            "account": max_account_failures,
            "address": max_address_failures,
        }
        self.window_ms = window_ms
        self.capacity = capacity
        self._failures: OrderedDict[tuple[str, ...], deque[int]] = OrderedDict()

    @classmethod
    def from_config(cls, config: Config) -> LoginLimiter:
        return cls(
            max_failures=int(config["signin.max_failures"]),
            max_account_failures=int(config["signin.max_account_failures"]),
            max_address_failures=int(config["signin.max_address_failures"]),
            window_ms=int(config["signin.window_seconds"]) * 1000,
        )

    @staticmethod
    def _keys(address: str, name: str) -> dict[str, tuple[str, ...]]:
        return {
            "pair": ("pair", address, name),
            "account": ("account", name),
            "address": ("address", address),
        }

    def retry_after(self, address: str, name: str, now: int) -> tuple[int, str]:
        """(seconds to wait, which limit), or (0, "") when an attempt is allowed."""
        worst = (0, "")
        for scope, key in self._keys(address, name).items():
            times = self._failures.get(key)
            if not times:
                continue
            while times and times[0] <= now - self.window_ms:
                times.popleft()
            limit = self.limits[scope]
            if len(times) >= limit:
                wait = max(1, (times[-limit] + self.window_ms - now + 999) // 1000)
                worst = max(worst, (wait, scope))
        return worst

    def attempt(self, address: str, name: str, now: int) -> tuple[int, str]:
        """Count an attempt before its password is checked, unless a limit is reached
        already: (0, "") when it may go on, else what :meth:`retry_after` says."""
        wait = self.retry_after(address, name, now)
        if not wait[0]:
            self.failed(address, name, now)
        return wait

    def failed(self, address: str, name: str, now: int) -> None:
        for key in self._keys(address, name).values():
            times = self._failures.setdefault(key, deque())
            self._failures.move_to_end(key)
            times.append(now)
            while len(times) > max(self.limits.values()):
                times.popleft()
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)

    def succeeded(self, address: str, name: str, now: int) -> None:
        """The right password from this address clears only this (address, name) and
        gives back the slot its attempt took (at ``now``): guesses at the account from
        elsewhere keep counting."""
        keys = self._keys(address, name)
        self._failures.pop(keys.pop("pair"), None)
        for key in keys.values():
            times = self._failures.get(key)
            if times is not None and now in times:
                times.remove(now)


LIMITER = web.AppKey("login_limiter", LoginLimiter)


def _secret(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if "Authorization" in request.headers:
        # A present header is the credential, even empty: never the cookie then, which
        # the origin check (node/http/forgery.py) let through for this header.
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("bad_credentials", "use 'Authorization: Bearer <token>'")
        return value.strip()
    return request.cookies.get(COOKIE)


async def current_user(request: web.Request) -> User:
    """The authenticated person, or 401 with the reason."""
    cached: User | None = request.get(USER_KEY)
    if cached is not None:
        return cached
    secret = _secret(request)
    if not secret:
        raise Unauthenticated("auth_required", "sign in or send a bearer token")
    user, reason = await request.app[ACCOUNTS].resolve(secret, request.app[CLOCK].now_ms())
    if user is None:
        raise Unauthenticated(reason, "sign in again")
    request[USER_KEY] = user
    return user


async def authenticate(request: web.Request, name: str, password: str) -> tuple[User, str]:
    """Check a name and password under the login limiter; (user, new session id).

    Raises ``TooMany`` ``too_many_attempts`` (``retry_after`` seconds on the error)
    or ``Unauthenticated`` ``bad_credentials``. The JSON login and the sign-in page both use this.
    """
    accounts = request.app[ACCOUNTS]
    now = request.app[CLOCK].now_ms()
    address = clients.client_address(request)
    counted = clients.limit_key(address)
    limiter = request.app[LIMITER]
    wait, scope = limiter.attempt(counted, name, now)
    if wait:
        raise TooMany(
            "too_many_attempts",
            f"too many failed sign-ins {_SCOPES[scope]}; try again in {wait}s",
            retry_after=wait,
        )
    user = await accounts.sign_in(name, password)
    if user is None:
        logger.warning("failed sign-in for %r from %s", name, address)
        raise Unauthenticated("bad_credentials", "wrong name or password")
    limiter.succeeded(counted, name, now)
    session = await accounts.issue(user, kind="session", now=now, ttl_ms=SESSION_MS)
    return user, session


def set_session_cookie(response: web.StreamResponse, session: str) -> None:
    response.set_cookie(
        COOKIE, session, httponly=True, samesite="Lax", max_age=SESSION_MS // 1000, path="/"
    )


async def end_session(request: web.Request, response: web.StreamResponse) -> None:
    """Revoke the session of the cookie (if any) and clear the cookie."""
    secret = request.cookies.get(COOKIE)
    if secret:
        await request.app[ACCOUNTS].revoke(secret)
    response.del_cookie(COOKIE, path="/")


async def login(request: web.Request) -> web.Response:
    body = await read_body(request, Login, max_bytes=SMALL_JSON_BYTES)
    user, session = await authenticate(request, body.name, body.password)
    response = web.json_response({"user": user.to_dict(), "node": request.app[TREE].me})
    set_session_cookie(response, session)
    return response


async def logout(request: web.Request) -> web.Response:
    response = web.json_response({"ok": True})
    await end_session(request, response)
    return response


async def me(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"user": user.to_dict(), "node": request.app[TREE].me})


def add_routes(app: web.Application) -> None:
    app[LIMITER] = LoginLimiter()
    clients.setup(app)
    # Inside error_middleware (registered first), so a refusal is the API's JSON.
    app.middlewares.append(forgery.middleware(COOKIE))

    async def configure(app: web.Application) -> None:
        app[LIMITER] = LoginLimiter.from_config(app[CONFIG])

    app.on_startup.append(configure)
    app.router.add_post("/api/v1/login", login)
    app.router.add_post("/api/v1/logout", logout)
    app.router.add_get("/api/v1/me", me)
