"""The ledger (台账): items in scope, filtered, sorted and paged in SQL.

Scope is a subtree: every item row carries its assignee's path from the root
("14/1401/140101/"), so "everything under 1401" is one index range. Colour is
filtered in SQL too: each row stores the instants it turns yellow and red if
nothing more happens (``protocol.rules.colour_thresholds``).

Every answer says, for each node it drew on, how fresh this node's mirror of it
is: when its newest event reached us, and the state of the link it comes over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.sql import Select

from node.api.errors import ApiError, bad
from node.api.validate import iso, parse_moment
from node.context import NodeContext
from node.storage import schema as t
from node.store import PARENT
from protocol import rules
from protocol.events import BOARDS
from protocol.fold import Status

SORTS = {
    "resolve_due": t.items.c.resolve_due,
    "assigned_at": t.items.c.assigned_at,
    "updated_at": t.items.c.updated_at,
    "progress": t.items.c.progress,
    "id": t.items.c.item_id,
}
COLOURS = ("green", "yellow", "red", "grey")
MAX_LIMIT = 200
_KNOWN = {
    "scope",
    "depth",
    "status",
    "colour",
    "board",
    "unit",
    "overdue",
    "due_from",
    "due_to",
    "q",
    "assigner",
    "assignee",
    "parent_item",
    "sort",
    "limit",
    "offset",
}


@dataclass(frozen=True, slots=True)
class Query:
    scope: str
    only_node: bool
    statuses: tuple[str, ...]
    colours: tuple[str, ...]
    boards: tuple[str, ...]
    unit: str | None
    overdue: bool | None
    due_from: int | None
    due_to: int | None
    q: str | None
    assigner: str | None
    assignee: str | None
    parent_item: str | None
    sort: str
    descending: bool
    limit: int
    offset: int


def _list(value: str | None, field: str, allowed: tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    parts = tuple(p.strip() for p in value.split(",") if p.strip())
    if allowed is not None:
        for p in parts:
            if p not in allowed:
                raise bad(field, f"{p!r} is not one of {', '.join(allowed)}")
    return parts


def _int(params: Any, field: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(field)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(field, "must be an integer") from None
    if not lo <= value <= hi:
        raise bad(field, f"must be between {lo} and {hi}")
    return value


def parse_query(params: Any, me: str, boards: tuple[str, ...]) -> Query:
    unknown = sorted(set(params) - _KNOWN)
    if unknown:
        raise bad(unknown[0], "is not a known filter", "unknown_field")
    sort = params.get("sort", "resolve_due")
    descending = sort.startswith("-")
    if sort.lstrip("-") not in SORTS:
        raise bad("sort", f"one of {', '.join(SORTS)} (prefix - for descending)")
    overdue_raw = params.get("overdue")
    if overdue_raw not in (None, "true", "false", "1", "0"):
        raise bad("overdue", "must be true or false")
    depth = params.get("depth", "subtree")
    if depth not in ("subtree", "node"):
        raise bad("depth", "must be subtree or node")
    q = params.get("q")
    if q is not None and len(q) > 100:
        raise bad("q", "at most 100 characters")
    return Query(
        scope=params.get("scope") or me,
        only_node=depth == "node",
        statuses=_list(params.get("status"), "status", tuple(s.value for s in Status)),
        colours=_list(params.get("colour"), "colour", COLOURS),
        boards=_list(params.get("board"), "board", boards),
        unit=params.get("unit") or None,
        overdue=None if overdue_raw is None else overdue_raw in ("true", "1"),
        due_from=parse_moment(params["due_from"], "due_from") if "due_from" in params else None,
        due_to=parse_moment(params["due_to"], "due_to") if "due_to" in params else None,
        q=q.strip().lower() if q and q.strip() else None,
        assigner=params.get("assigner") or None,
        assignee=params.get("assignee") or None,
        parent_item=params.get("parent_item") or None,
        sort=sort.lstrip("-"),
        descending=descending,
        limit=_int(params, "limit", 50, 1, MAX_LIMIT),
        offset=_int(params, "offset", 0, 0, 10_000_000),
    )


def colour_clause(colour: str, now: int) -> ColumnElement[bool]:
    c = t.items.c
    red = and_(c.done.is_(False), c.red_from.is_not(None), c.red_from <= now)
    if colour == "grey":
        return c.done.is_(True)
    if colour == "red":
        return red
    yellow = and_(
        c.done.is_(False),
        c.yellow_from.is_not(None),
        c.yellow_from <= now,
        or_(c.red_from.is_(None), c.red_from > now),
    )
    if colour == "yellow":
        return yellow
    return and_(
        c.done.is_(False),
        or_(c.yellow_from.is_(None), c.yellow_from > now),
        or_(c.red_from.is_(None), c.red_from > now),
    )


def where_clauses(query: Query, scope_path: str, now: int) -> list[ColumnElement[bool]]:
    c = t.items.c
    out: list[ColumnElement[bool]] = []
    if query.only_node:
        out.append(c.assignee == query.scope)
    else:
        # Paths end with "/"; "0" follows "/" in byte order, so this is the prefix range.
        out.append(c.assignee_path >= scope_path)
        out.append(c.assignee_path < scope_path[:-1] + "0")
    if query.statuses:
        out.append(c.status.in_(query.statuses))
    if query.colours:
        out.append(or_(*(colour_clause(col, now) for col in query.colours)))
    if query.boards:
        out.append(c.board.in_(query.boards))
    if query.unit:
        out.append(or_(c.lead_unit == query.unit, c.assignee_unit == query.unit))
    if query.overdue is True:
        out.append(colour_clause("red", now))
    elif query.overdue is False:
        out.append(~colour_clause("red", now))
    if query.due_from is not None:
        out.append(c.resolve_due >= query.due_from)
    if query.due_to is not None:
        out.append(c.resolve_due <= query.due_to)
    if query.q:
        escaped = query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        out.append(c.search_text.like(f"%{escaped}%", escape="\\"))
    if query.assigner:
        out.append(c.assigner == query.assigner)
    if query.assignee:
        out.append(c.assignee == query.assignee)
    if query.parent_item:
        out.append(c.parent_item == query.parent_item)
    return out


LIST_COLUMNS = (
    t.items.c.item_id,
    t.items.c.title,
    t.items.c.board,
    t.items.c["class"],
    t.items.c.status,
    t.items.c.assigner,
    t.items.c.assignee,
    t.items.c.assignee_unit,
    t.items.c.lead_unit,
    t.items.c.parent_item,
    t.items.c.progress,
    t.items.c.deploy_due,
    t.items.c.feedback_due,
    t.items.c.resolve_due,
    t.items.c.assigned_at,
    t.items.c.updated_at,
    t.items.c.done,
    t.items.c.yellow_from,
    t.items.c.red_from,
)


def summary(row: Any, now: int) -> dict[str, Any]:
    colour = rules.colour_at(row.done, row.yellow_from, row.red_from, now)
    return {
        "id": row.item_id,
        "title": row.title,
        "board": row.board,
        "class": row._mapping["class"],
        "status": row.status,
        "colour": str(colour),
        "overdue": colour is rules.Colour.RED,
        "assigner": row.assigner,
        "assignee": row.assignee,
        "assignee_unit": row.assignee_unit,
        "lead_unit": row.lead_unit,
        "parent_item": row.parent_item,
        "progress": row.progress,
        "deadlines": {
            "deploy": iso(row.deploy_due),
            "feedback": iso(row.feedback_due),
            "resolve": iso(row.resolve_due),
        },
        "resolve_in_s": None if row.done else (row.resolve_due - now) // 1000,
        "assigned_at": iso(row.assigned_at),
        "updated_at": iso(row.updated_at),
    }


def build_select(query: Query, scope_path: str, now: int) -> tuple[Select[Any], Select[Any]]:
    where = where_clauses(query, scope_path, now)
    order = SORTS[query.sort]
    ordering = [order.desc() if query.descending else order.asc(), t.items.c.item_id.asc()]
    rows = (
        select(*LIST_COLUMNS)
        .where(*where)
        .order_by(*ordering)
        .limit(query.limit)
        .offset(query.offset)
    )
    count = select(func.count()).select_from(t.items).where(*where)
    return rows, count


@dataclass(frozen=True, slots=True)
class Plan:
    rows: Select[Any]
    count: Select[Any]

    def needs_count(self, n_rows: int) -> bool:
        return True


def statements(query: Query, scope_path: str, now: int) -> Plan:
    rows, count = build_select(query, scope_path, now)
    return Plan(rows, count)


async def freshness(ctx: NodeContext, nodes: set[str]) -> dict[str, dict[str, Any]]:
    """For each node: when its newest event reached us, over which link, that link's lag."""
    now = ctx.clock.now_ms()
    view = ctx.store.view
    out: dict[str, dict[str, Any]] = {}
    async with ctx.db.read() as conn:
        seen = {
            r.node: r
            for r in await conn.execute(
                select(t.node_seen).where(t.node_seen.c.node.in_(sorted(nodes)))
            )
        }
        links = {r.link: r for r in await conn.execute(select(t.links))}
    for node in sorted(nodes):
        if node == ctx.me:
            out[node] = {"as_of": iso(now), "via": None, "live": True}
            continue
        via = view.child_toward(node) or (PARENT if ctx.parent else None)
        link = links.get(via) if via else None
        row = seen.get(node)
        connected = via is not None and via in ctx.listening
        out[node] = {
            "as_of": iso(now) if connected else (
                iso(link.last_contact) if link is not None else None
            ),
            "connected": connected,
            "last_event_at": iso(row.last_event_at) if row is not None else None,
            "received_at": iso(row.last_received_at) if row is not None else None,
            "via": via,
            "pending": link.peer_pending if link is not None else None,
            "last_error": link.last_error if link is not None else None,
            "live": False,
        }
    return out


async def list_items(
    ctx: NodeContext, params: Any, boards: tuple[str, ...], tree_has: Any
) -> dict[str, Any]:
    query = parse_query(params, ctx.me, boards)
    if not tree_has(query.scope):
        raise ApiError(
            404, "unknown_node", f"scope: no node {query.scope!r} is known here", "scope"
        )
    if not ctx.store.view.in_subtree(query.scope, ctx.me):
        raise ApiError(
            403, "not_in_scope", f"scope: {query.scope} is outside {ctx.me}'s subtree", "scope"
        )
    now = ctx.clock.now_ms()
    rows_q, count_q = build_select(query, ctx.store.path_of(query.scope), now)
    async with ctx.db.read() as conn:
        rows = (await conn.execute(rows_q)).all()
        total = int(await conn.scalar(count_q) or 0)
    items = [summary(r, now) for r in rows]
    nodes = {i["assignee"] for i in items} | {query.scope}
    return {
        "items": items,
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
        "now": iso(now),
        "nodes": await freshness(ctx, nodes),
    }


def known_boards(extra: str) -> tuple[str, ...]:
    more = tuple(b.strip() for b in extra.split(",") if b.strip())
    return tuple(dict.fromkeys((*BOARDS, *more)))
