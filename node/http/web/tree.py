"""The tree page: this node's subtree down to every township, with counts and freshness."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from node.errors import Forbidden, NotFound
from node.http.services import CLOCK, FIGURES, LEDGER, TREE
from node.http.web.i18n import I18n
from node.http.web.render import node_name, page, render, translator
from node.queries import figures
from node.storage.accounts import User

OPEN_LEVELS = 3  # province, city, county open: every township shows


def _ms(iso_text: str | None) -> int | None:
    return None if not iso_text else int(datetime.fromisoformat(iso_text).timestamp() * 1000)


class _Ago:
    """``t.ago`` of ISO instants, each worked out once per page (many nodes share one)."""

    def __init__(self, t: I18n, now: int) -> None:
        self.t, self.now = t, now
        self.known: dict[str | None, str] = {}

    def __call__(self, iso_text: str | None) -> str:
        text = self.known.get(iso_text)
        if text is None:
            text = self.known[iso_text] = self.t.ago(_ms(iso_text), self.now)
        return text


@dataclass(slots=True)
class Row:
    """One node of the page (an object, not a dict: the template reads its fields as
    attributes, and a province draws 1,552 of them)."""

    id: str
    name: str
    level_name: str
    depth: int
    counts: figures.Counts
    colour: str
    colour_name: str
    heard: str
    error: str | None
    children: list[Row] = field(default_factory=list)


def _heard(t: I18n, info: dict[str, Any], ago: _Ago) -> str:
    """How fresh this node's mirror of a node is, in words (its error aside)."""
    if info.get("live"):
        return t("common.live")
    text = f"{t('tree.synced')} {ago(info.get('as_of'))}"
    if info.get("received_at"):
        text += f" · {t('tree.heard')} {ago(info['received_at'])}"
    if info.get("pending"):
        text += f" · {t('tree.pending', n=info['pending'])}"
    return text


@page
async def tree_page(request: web.Request, user: User) -> web.StreamResponse:
    me = request.app[TREE].me
    tree = request.app[TREE].tree
    top = request.query.get("node") or me
    if top not in tree:
        raise NotFound("unknown_node", f"no node {top[:80]!r} is known here", "node")
    if not tree.in_subtree(me, top):
        raise Forbidden("not_in_scope", f"{top} is outside {me}'s subtree", "node")
    nodes = list(tree.subtree(top))
    own = await request.app[FIGURES].counts_by_node(top)
    totals = figures.roll_up(own, nodes, {n: tree.parent(n) for n in nodes})
    fresh = await request.app[LEDGER].freshness(set(nodes))
    base = tree.depth(top)
    t = translator(request)
    ago = _Ago(t, request.app[CLOCK].now_ms())
    rows: list[Row] = []
    by_id: dict[str, Row] = {}
    for n in nodes:
        info = fresh.get(n, {})
        node = tree.node(n)
        counts = totals[n]
        live = bool(info.get("live"))
        row = Row(
            id=n,
            name=node.name,
            level_name=t.level(node.level),
            depth=tree.depth(n) - base,
            counts=counts,
            colour=counts.colour,
            colour_name=t.node_colour(counts.colour),
            heard=_heard(t, info, ago),
            error=None if live else info.get("last_error"),
        )
        rows.append(row)
        by_id[n] = row
        up = tree.parent(n)
        if n != top and up in by_id:
            by_id[up].children.append(row)
    breadcrumb = []
    current: str | None = top
    while current is not None:
        breadcrumb.append((current, node_name(tree, current)))
        if current == me:
            break
        current = tree.parent(current)
    breadcrumb.reverse()
    return await render(
        request,
        "tree.html",
        user=user,
        nav="tree",
        top=top,
        root=rows[0],
        count=len(rows),
        breadcrumb=breadcrumb,
        open_levels=OPEN_LEVELS,
    )
