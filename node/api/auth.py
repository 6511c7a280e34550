"""Who is asking: bearer tokens for scripts, session cookies for pages.

``Authorization: Bearer <token>`` (from ``duban token``) or the ``duban_session``
cookie set by ``POST /api/v1/login``. Failed logins are limited per client
address and account name: after ``MAX_FAILURES`` within the window the answer
is 429 ``too_many_attempts`` with ``Retry-After``, whatever the password.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque

from aiohttp import web

from node.accounts import SESSION_MS, User, check_password
from node.api.errors import ApiError
from node.api.validate import Body, read_json
from node.context import NodeContext
from node.sync.server import CTX

logger = logging.getLogger(__name__)

COOKIE = "duban_session"
MAX_FAILURES = 5
WINDOW_MS = 15 * 60 * 1000
USER_KEY = web.RequestKey("duban_user", User)


class LoginLimiter:
    """Failed attempts per (address, name) in a sliding window; bounded memory."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window_ms: int = WINDOW_MS,
        capacity: int = 50_000,
    ) -> None:
        self.max_failures = max_failures
        self.window_ms = window_ms
        self.capacity = capacity
        self._failures: OrderedDict[tuple[str, str], deque[int]] = OrderedDict()

    def retry_after(self, key: tuple[str, str], now: int) -> int:
        """Seconds to wait, or 0 when an attempt is allowed."""
        times = self._failures.get(key)
        if not times:
            return 0
        while times and times[0] <= now - self.window_ms:
            times.popleft()
        if len(times) < self.max_failures:
            return 0
        return max(1, (times[0] + self.window_ms - now) // 1000)

    def failed(self, key: tuple[str, str], now: int) -> None:
        times = self._failures.setdefault(key, deque())
        self._failures.move_to_end(key)
        times.append(now)
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)

    def succeeded(self, key: tuple[str, str]) -> None:
        self._failures.pop(key, None)


LIMITER = web.AppKey("login_limiter", LoginLimiter)


def _secret(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "bad_credentials", "use 'Authorization: Bearer <token>'")
        return value.strip()
    return request.cookies.get(COOKIE)


async def current_user(request: web.Request) -> User:
    """The authenticated person, or 401 with the reason."""
    cached = request.get(USER_KEY)
    if cached is not None:
        return cached
    secret = _secret(request)
    if not secret:
        raise ApiError(401, "auth_required", "sign in or send a bearer token")
    ctx = request.app[CTX]
    user, reason = await ctx.accounts.resolve(secret, ctx.clock.now_ms())
    if user is None:
        raise ApiError(401, reason, "sign in again")
    request[USER_KEY] = user
    return user


def context(request: web.Request) -> NodeContext:
    return request.app[CTX]


async def authenticate(request: web.Request, name: str, password: str) -> tuple[User, str]:
    """Check a name and password under the login limiter; (user, new session id).

    Raises 429 ``too_many_attempts`` (``retry_after`` seconds on the error) or
    401 ``bad_credentials``. The JSON login and the sign-in page both use this.
    """
    ctx = context(request)
    now = ctx.clock.now_ms()
    key = (request.remote or "?", name)
    limiter = request.app[LIMITER]
    wait = limiter.retry_after(key, now)
    if wait:
        error = ApiError(429, "too_many_attempts", f"too many failed sign-ins; wait {wait}s")
        error.retry_after = wait
        raise error
    found = await ctx.accounts.user_by_name(name)
    ok = found is not None and not found[0].disabled and await check_password(found[1], password)
    if not ok or found is None:
        limiter.failed(key, now)
        logger.warning("failed sign-in for %r from %s", name, request.remote)
        raise ApiError(401, "bad_credentials", "wrong name or password")
    limiter.succeeded(key)
    user = found[0]
    session = await ctx.accounts.issue(user, kind="session", now=now, ttl_ms=SESSION_MS)
    return user, session


def set_session_cookie(response: web.StreamResponse, session: str) -> None:
    response.set_cookie(
        COOKIE, session, httponly=True, samesite="Lax", max_age=SESSION_MS // 1000, path="/"
    )


async def end_session(request: web.Request, response: web.StreamResponse) -> None:
    """Revoke the session of the cookie (if any) and clear the cookie."""
    secret = request.cookies.get(COOKIE)
    if secret:
        await context(request).accounts.revoke(secret)
    response.del_cookie(COOKIE, path="/")


async def login(request: web.Request) -> web.Response:
    ctx = context(request)
    body: Body = await read_json(request, max_bytes=4096)
    name = body.text("name", max_len=64)
    password = body.text("password", max_len=1024, strip=False)
    body.finish()
    user, session = await authenticate(request, name, password)
    response = web.json_response({"user": user.to_dict(), "node": ctx.me})
    set_session_cookie(response, session)
    return response


async def logout(request: web.Request) -> web.Response:
    response = web.json_response({"ok": True})
    await end_session(request, response)
    return response


async def me(request: web.Request) -> web.Response:
    user = await current_user(request)
    ctx = context(request)
    return web.json_response({"user": user.to_dict(), "node": ctx.me})


def add_routes(app: web.Application) -> None:
    app[LIMITER] = LoginLimiter()
    app.router.add_post("/api/v1/login", login)
    app.router.add_post("/api/v1/logout", logout)
    app.router.add_get("/api/v1/me", me)
