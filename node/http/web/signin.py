"""Sign in and sign out: the API's authentication (limiter included) behind a form."""

from __future__ import annotations

from aiohttp import web

from node.errors import KINDS, Invalid
from node.http.api.auth import authenticate, end_session, set_session_cookie
from node.http.errors import seconds, status_of
from node.http.web import csrf
from node.http.web.render import error_message, form_of, render, safe_next, signed_in, translator

LOGIN_CSRF_S = 3600


async def login_page(request: web.Request) -> web.StreamResponse:
    nxt = safe_next(request.query.get("next"))
    if await signed_in(request) is not None:
        raise web.HTTPSeeOther(nxt)
    notice = translator(request)("logout.done") if request.query.get("bye") else None
    return await _form(request, nxt, name="", error=None, notice=notice)


async def _form(
    request: web.Request,
    nxt: str,
    *,
    name: str,
    error: str | None,
    notice: str | None = None,
    status: int = 200,
) -> web.Response:
    token = request.cookies.get(csrf.LOGIN_COOKIE) or csrf.new_login_token()
    response = await render(
        request,
        "login.html",
        status=status,
        nav="login",
        next=nxt,
        name=name,
        login_token=token,
        error=error,
        notice=notice,
    )
    response.set_cookie(
        csrf.LOGIN_COOKIE, token, max_age=LOGIN_CSRF_S, httponly=True, samesite="Lax", path="/"
    )
    return response


async def login_submit(request: web.Request) -> web.StreamResponse:
    t = translator(request)
    nxt = safe_next(request.query.get("next"))
    name = ""
    try:
        form = await form_of(request, login=True)
        nxt = safe_next(str(form.get("next") or nxt))
        name = str(form.get("name") or "").strip()[:64]
        password = str(form.get("password") or "")
        if not name:
            raise Invalid("missing_field", "name: is required", "name")
        if not password:
            raise Invalid("missing_field", "password: is required", "password")
        _, session = await authenticate(request, name, password[:1024])
    except KINDS as exc:
        page = await _form(
            request, nxt, name=name, error=error_message(t, exc), status=status_of(exc)
        )
        if exc.retry_after is not None:
            page.headers["Retry-After"] = seconds(exc.retry_after)
        return page
    response = web.HTTPSeeOther(nxt)
    set_session_cookie(response, session)
    response.del_cookie(csrf.LOGIN_COOKIE, path="/")
    raise response


async def logout_page(request: web.Request) -> web.StreamResponse:
    user = await signed_in(request)
    if user is None:
        raise web.HTTPSeeOther("/login")
    return await render(request, "logout.html", user=user, nav="logout")


async def logout_submit(request: web.Request) -> web.StreamResponse:
    try:
        await form_of(request)
    except KINDS as exc:
        return await render(request, "error.html", status=status_of(exc), error=exc)
    response = web.HTTPSeeOther("/login?bye=1")
    await end_session(request, response)
    raise response
