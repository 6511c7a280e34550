"""The pages every node serves (zh-CN by default, English with ``?lang=en``).

``add_routes(app)`` registers them with their templates and stylesheet;
docs/pages.md describes each page, the i18n layer, CSRF and the charts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from node.http.web import board, decompose, item, ledger, links, messages, signin, todo, tree
from node.http.web.render import STATIC_URL, storage_full_page

HERE = Path(__file__).parent
STATIC = HERE / "static"


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/ledger")


def add_routes(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(("html",), default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["min"] = min
    env.globals["max"] = max
    app[STATIC_URL] = {
        key: f"/static/{name}?v={hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]}"
        for key, name in (("css", "duban.css"), ("upload_js", "upload.js"))
    }
    # Innermost: the API's error middleware answers JSON to whatever this lets by.
    app.middlewares.append(storage_full_page)
    r = app.router
    r.add_get("/", home)
    r.add_get("/login", signin.login_page)
    r.add_post("/login", signin.login_submit)
    r.add_get("/logout", signin.logout_page)
    r.add_post("/logout", signin.logout_submit)
    r.add_get("/ledger", ledger.ledger_page)
    r.add_get("/items/new", item.new_page)
    r.add_post("/items/new", item.new_submit)
    r.add_get("/items/{item}", item.item_page)
    decompose.add_routes(r)  # before /items/{item}/{action}
    r.add_post("/items/{item}/pass_down", item.item_pass_down)  # before {action}
    r.add_post("/items/{item}/{action}", item.item_action)
    r.add_get("/tree", tree.tree_page)
    r.add_get("/board", board.board_page)
    r.add_get("/links", links.links_page)
    r.add_get("/todo", todo.todo_page)
    r.add_get(messages.PATH, messages.messages_page)
    r.add_post(messages.PATH + "/read", messages.messages_read)
    r.add_static("/static/", STATIC, append_version=False)
