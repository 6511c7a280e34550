"""The ledger (台账): items in scope, filtered, sorted and paged in SQL.

Scope is a subtree: every item row carries its assignee's path from the root
("14/1401/140101/"), so "everything under 1401" is one index range. Colour is
filtered in SQL too: each row stores the instants it turns yellow and red if
nothing more happens (``protocol.rules.colour_thresholds``).

A province's mirror holds about a million items, so each answer reads an index
chosen for it (:class:`Access`) and a table row only for the items on the page;
the total is counted up to :data:`COUNT_CAP` and then given as a lower bound
(``"total_exact": false``). Text search (``q``) is a substring scan of the
rows in scope: correct, but not fast on a wide scope. docs/performance.md
("Ledger") has the figures and the query plans.

Every answer says, for each node it drew on, how fresh this node's mirror of it
is: when its newest event reached us, and the state of the link it comes over.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, Protocol

from sqlalchemy import ColumnElement, and_, func, literal, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select, operators
from sqlalchemy.sql.expression import UnaryExpression

from node.clock import Clock, iso, parse_moment
from node.config import Config
from node.errors import Forbidden, NotFound, bad
from node.items.projection import item_events
from node.queries.scores import RULES, ScoreRules, event_lines, number, walk
from node.storage import schema as t
from node.storage.db import Database
from node.storage.events import PARENT
from node.sync.routing import KnownTree
from protocol import rules
from protocol.events import BOARDS
from protocol.fold import DONE, Status

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


class Columns(Protocol):
    """The item table's columns by name: ``t.items.c`` or :func:`columns`' choice."""

    def __getitem__(self, name: str, /) -> ColumnElement[Any]: ...
"""The items columns as a WHERE clause names them (see :func:`columns`)."""


def _opaque(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """``+column``: the same value, but SQLite will not use an index for a term on it."""
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


def columns(indexed: Collection[str] | None = None) -> Columns:
    """The items columns; with ``indexed``, every other one written opaque for SQLite.

    SQLite has no statistics on ranges, so it always prefers the assignee path
    range, even when that range is the whole mirror and walking the sort
    column's index would find a page after a few hundred rows. Writing a
    column as ``+column`` is SQLite's documented way to take a term out of the
    planner's choice (sqlite.org/optoverview.html), leaving the index we chose.
    """
    if indexed is None:
        return t.items.c
    return {c.name: c if c.name in indexed else _opaque(c) for c in t.items.c}


def colour_clause(colour: str, now: int, c: Columns = t.items.c) -> ColumnElement[bool]:
    red = and_(c["done"].is_(False), c["red_from"].is_not(None), c["red_from"] <= now)
    if colour == "grey":
        return c["done"].is_(True)
    if colour == "red":
        return red
    yellow = and_(
        c["done"].is_(False),
        c["yellow_from"].is_not(None),
        c["yellow_from"] <= now,
        or_(c["red_from"].is_(None), c["red_from"] > now),
    )
    if colour == "yellow":
        return yellow
    return and_(
        c["done"].is_(False),
        or_(c["yellow_from"].is_(None), c["yellow_from"] > now),
        or_(c["red_from"].is_(None), c["red_from"] > now),
    )


def where_clauses(
    query: Query, scope_path: str, now: int, c: Columns = t.items.c
) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if query.only_node:
        out.append(c["assignee"] == query.scope)
    else:
        out.extend(scope_range(scope_path, c))
    if query.statuses:
        out.append(c["status"].in_(query.statuses))
        # Implied (row_of writes done = status in DONE), and it lets open or done
        # items be walked in deadline order on their own (ix_items_open).
        done = {s in DONE for s in query.statuses}
        if len(done) == 1:
            out.append(c["done"].is_(done.pop()))
    if query.colours:
        out.append(or_(*(colour_clause(col, now, c) for col in query.colours)))
        greys = {col == "grey" for col in query.colours}
        if len(greys) == 1:  # implied, for the same reason as with statuses
            out.append(c["done"].is_(greys.pop()))
    if query.boards:
        out.append(c["board"].in_(query.boards))
    if query.unit:
        out.append(or_(c["lead_unit"] == query.unit, c["assignee_unit"] == query.unit))
    if query.overdue is True:
        out.append(colour_clause("red", now, c))
    elif query.overdue is False:
        out.append(~colour_clause("red", now, c))
    if query.due_from is not None:
        out.append(c["resolve_due"] >= query.due_from)
    if query.due_to is not None:
        out.append(c["resolve_due"] <= query.due_to)
    if query.q:
        escaped = query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        out.append(c["search_text"].like(f"%{escaped}%", escape="\\"))
    if query.assigner:
        out.append(c["assigner"] == query.assigner)
    if query.assignee:
        out.append(c["assignee"] == query.assignee)
    if query.parent_item:
        out.append(c["parent_item"] == query.parent_item)
    return out


def scope_range(scope_path: str, c: Columns = t.items.c) -> list[ColumnElement[bool]]:
    """Rows whose assignee path starts with ``scope_path``.

    Paths end with "/" and "0" follows "/" in byte order, so the prefix is this
    range, and a sibling whose id extends ours (14010 beside 1401) is outside it.
    """
    return [c["assignee_path"] >= scope_path, c["assignee_path"] < scope_path[:-1] + "0"]


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
    t.items.c.urges,
    t.items.c.last_urged_at,
    t.items.c.last_urged_by,
    t.items.c.grade,
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
        "urges": {
            "count": row.urges,
            "last_at": None if row.last_urged_at is None else iso(row.last_urged_at),
            "last_by": row.last_urged_by,
        },
        "grade": row.grade,
    }


EVENT_RULES: Final = tuple(rule for rule in RULES if rule != "unfinished")
"""The rules whose lines an item's own events earn (the item's points)."""


async def points_of(
    conn: AsyncConnection, ids: Sequence[str], rules: ScoreRules
) -> dict[str, Decimal | None]:
    """Each item's points (积分): the sum of the point lines its events earned, every
    quarter together (docs/reports.md; ``unfinished``, a quarter's judgement of the
    handling unit, is not an item's). Read from the keeper's counts (``score_rows``);
    an item written since it was last scored (``score_exceptions``) is replayed from
    its events here. None only for an item with no stored event."""
    out: dict[str, Decimal | None] = {}
    s, e = t.score_rows.c, t.score_exceptions.c
    for i in range(0, len(ids), _POINTS_CHUNK):
        chunk = list(ids[i : i + _POINTS_CHUNK])
        for item in chunk:
            out[item] = Decimal(0)
        sums = select(s.item_id, *(func.sum(s[r]).label(r) for r in EVENT_RULES)).where(
            s.item_id.in_(chunk)
        ).group_by(s.item_id)
        for row in await conn.execute(sums):
            out[row.item_id] = sum(
                (rules.points(r) * int(row._mapping[r] or 0) for r in EVENT_RULES), Decimal(0)
            )
        dirty = [item for (item,) in await conn.execute(
            select(e.item_id).where(e.item_id.in_(chunk))
        )]
        grouped = await item_events(conn, dirty) if dirty else {}
        for item in dirty:
            pairs = grouped.get(item)
            out[item] = None if not pairs else sum(
                (line.points for line in event_lines(walk(pairs), rules)), Decimal(0)
            )
    return out


_POINTS_CHUNK: Final = 500


class Access(StrEnum):
    """How the page's rows are reached (on SQLite; PostgreSQL's planner has statistics).

    - ``key``: an equality on the assignee or the parent item picks few rows:
      the planner takes that column's index, as it should.
    - ``narrow``: a subtree holding fewer than :data:`WIDE_SCOPE` items: its
      assignee path range in ``ix_items_path``, which carries the filter
      columns, then the matching ids are sorted.
    - ``wide``: a larger subtree (a province's whole mirror, a city): the sort
      column's index in order, every filter checked on the way (the index
      carries them), stopping when the page is full.
    """

    KEY = "key"
    NARROW = "narrow"
    WIDE = "wide"


WIDE_SCOPE = 10_000
"""Items in a subtree from which it is walked in sort order rather than by path range."""
COUNT_CAP = 1_000
"""Matching items counted at most (beyond the current page): past this the total is a
lower bound and the answer says ``"total_exact": false``."""


def keyed(query: Query) -> bool:
    """Whether an equality on the assignee or the parent item narrows the query."""
    return query.only_node or query.assignee is not None or query.parent_item is not None


def probe_needed(query: Query, me: str) -> bool:
    """Whether the access path depends on the scope's size (:func:`scope_probe`)."""
    return not keyed(query) and query.scope != me


def access_for(query: Query, me: str, scope_items: int | None = None) -> Access:
    """``scope_items``: what :func:`scope_probe` counted, None when not probed.

    The node's own subtree is its whole mirror: walked in order without asking.
    """
    if keyed(query):
        return Access.KEY
    if scope_items is None or query.scope == me:
        return Access.WIDE
    return Access.WIDE if scope_items >= WIDE_SCOPE else Access.NARROW


def scope_probe(scope_path: str) -> Select[Any]:
    """How many items the subtree holds, counted up to :data:`WIDE_SCOPE` (index only)."""
    inner = select(literal(1)).where(*scope_range(scope_path)).limit(WIDE_SCOPE).subquery()
    return select(func.count()).select_from(inner)


@dataclass(frozen=True, slots=True)
class Plan:
    """The statements of one ledger answer: its page, and its total when the page
    does not tell it (a full page, or an empty page past the end).

    The count stops at ``count_limit`` rows: ``total`` is then a lower bound
    (``total_exact`` false) that still says whether a next page exists.
    """

    rows: Select[Any]
    count: Select[Any]
    count_limit: int
    limit: int
    offset: int

    def total_from_page(self, n_rows: int) -> int | None:
        if n_rows < self.limit and (n_rows > 0 or self.offset == 0):
            return self.offset + n_rows
        return None

    def needs_count(self, n_rows: int) -> bool:
        return self.total_from_page(n_rows) is None

    def total(self, n_rows: int, counted: int | None) -> tuple[int, bool]:
        """(total, exact) from the page's size and, when it was needed, the count."""
        known = self.total_from_page(n_rows)
        if known is not None:
            return known, True
        assert counted is not None, "needs_count() was true: run the count"
        return counted, counted < self.count_limit


def statements(
    query: Query,
    scope_path: str,
    now: int,
    *,
    access: Access,
    dialect: str = "sqlite",
    count_cap: int = COUNT_CAP,
) -> Plan:
    """The page and count statements for ``query``, reached the way ``access`` says.

    On SQLite every column but the ones the access path seeks on is written
    opaque (see :func:`columns`): ``narrow`` seeks the path range, ``wide``
    walks the sort column (and, for the deadline order, ``done``: open items
    in deadline order are ``ix_items_open``), and its count follows the same
    walk, so it stops after ``count_limit`` rows found where the page found
    its own. PostgreSQL plans with its statistics; its count follows the page's
    order too.
    """
    sort = SORTS[query.sort]
    ordering: list[ColumnElement[Any]] = [
        sort.desc() if query.descending else sort.asc(), t.items.c.item_id.asc()
    ]
    cols = columns()
    # The count follows the page's walk, so it stops where the page found its rows
    # (on PostgreSQL too: unordered, it may scan the heap, whose order is arrival
    # order, and the newest items come last).
    count_order: list[ColumnElement[Any]] = [] if dialect == "sqlite" else ordering
    if dialect == "sqlite" and access is Access.NARROW:
        cols = columns({"assignee_path"})
    elif dialect == "sqlite" and access is Access.WIDE:
        cols = columns({sort.name, "done"} if sort.name == "resolve_due" else {sort.name})
        count_order = ordering
    # The page's ids first (sorting and skipping ids, from the index when it carries
    # the filters), then only the page's rows are read whole.
    page = (
        select(t.items.c.item_id)
        .where(*where_clauses(query, scope_path, now, cols))
        .order_by(*ordering)
        .limit(query.limit)
        .offset(query.offset)
    )
    rows = select(*LIST_COLUMNS).where(t.items.c.item_id.in_(page)).order_by(*ordering)
    count_limit = max(count_cap, query.offset + query.limit) + 1
    matching = (
        select(literal(1))
        .where(*where_clauses(query, scope_path, now, cols))
        .order_by(*count_order)
        .limit(count_limit)
        .subquery()
    )
    count = select(func.count()).select_from(matching)
    return Plan(rows, count, count_limit, query.limit, query.offset)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of rows, the total (a lower bound unless exact), and how it was read."""

    rows: list[Any]
    total: int
    total_exact: bool
    access: Access


async def fetch_page(
    conn: AsyncConnection,
    query: Query,
    scope_path: str,
    now: int,
    *,
    me: str,
    dialect: str,
    count_cap: int = COUNT_CAP,
) -> Page:
    """One page of the ledger and its total, in the read transaction ``conn``."""
    if dialect == "postgresql":
        # asyncpg prepares statements, and after five runs PostgreSQL may switch to a
        # generic plan that ignores the values of now and the path, many times slower
        # on a million items (docs/performance.md, "Figures behind the code").
        await conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    probed = None
    if dialect == "sqlite" and probe_needed(query, me):
        probed = int(await conn.scalar(scope_probe(scope_path)) or 0)
    access = access_for(query, me, probed)
    plan = statements(
        query, scope_path, now, access=access, dialect=dialect, count_cap=count_cap
    )
    rows = list((await conn.execute(plan.rows)).all())
    counted = None
    if plan.needs_count(len(rows)):
        counted = int(await conn.scalar(plan.count) or 0)
    total, exact = plan.total(len(rows), counted)
    return Page(rows, total, exact, access)


class Ledger:
    """The ledger as this node answers it: items in scope (:meth:`list_items`) and how
    fresh its mirror of each node is (:meth:`freshness`).

    ``connected``: whether a child holds a sync request open right now
    (``Presence.connected``); ``boards``: this node's boards (:func:`boards_of`).
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        tree: KnownTree,
        connected: Callable[[str], bool],
        boards: tuple[str, ...],
        rules: ScoreRules | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.tree = tree
        self.connected = connected
        self.boards = boards
        self.rules = rules or ScoreRules()

    async def freshness(
        self, nodes: set[str], conn: AsyncConnection | None = None
    ) -> dict[str, dict[str, Any]]:
        """For each node: when its newest event reached us, over which link, that link's lag.

        ``conn``: a read transaction to use (the ledger's own); else one is opened.
        """
        if conn is None:
            async with self.db.read() as own:
                return await self.freshness(nodes, own)
        me = self.tree.me
        now = self.clock.now_ms()
        out: dict[str, dict[str, Any]] = {}
        seen = {
            r.node: r
            for r in await conn.execute(
                select(t.node_seen).where(t.node_seen.c.node.in_(sorted(nodes)))
            )
        }
        links = {r.link: r for r in await conn.execute(select(t.links))}
        for node in sorted(nodes):
            if node == me:
                out[node] = {"as_of": iso(now), "via": None, "live": True}
                continue
            has_parent = self.tree.trust.current(me).parent is not None
            via = self.tree.child_toward(node) or (PARENT if has_parent else None)
            link = links.get(via) if via else None
            row = seen.get(node)
            connected = via is not None and self.connected(via)
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

    async def points(self, item: str) -> int | float | None:
        """One item's points (:func:`points_of`), as a JSON number."""
        async with self.db.read() as conn:
            value = (await points_of(conn, [item], self.rules))[item]
        return None if value is None else number(value)

    async def list_items(self, params: Any) -> dict[str, Any]:
        """One page of the ledger for the query ``params`` (``GET /api/v1/items``):
        NotFound for an unknown scope, Forbidden for one outside this node's subtree."""
        me = self.tree.me
        query = parse_query(params, me, self.boards)
        if not self.tree.trust.has_node(query.scope):
            raise NotFound(
                "unknown_node", f"scope: no node {query.scope!r} is known here", "scope"
            )
        if not self.tree.in_subtree(me, query.scope):
            raise Forbidden(
                "not_in_scope", f"scope: {query.scope} is outside {me}'s subtree", "scope"
            )
        now = self.clock.now_ms()
        path = self.tree.path_of(query.scope)
        async with self.db.read() as conn:
            page = await fetch_page(conn, query, path, now, me=me, dialect=self.db.dialect)
            items = [summary(r, now) for r in page.rows]
            points = await points_of(conn, [i["id"] for i in items], self.rules)
            for entry in items:
                value = points[entry["id"]]
                entry["points"] = None if value is None else number(value)
            nodes = await self.freshness({i["assignee"] for i in items} | {query.scope}, conn)
        return {
            "items": items,
            "total": page.total,
            "total_exact": page.total_exact,
            "limit": query.limit,
            "offset": query.offset,
            "now": iso(now),
            "nodes": nodes,
        }


def known_boards(extra: str) -> tuple[str, ...]:
    more = tuple(b.strip() for b in extra.split(",") if b.strip())
    return tuple(dict.fromkeys((*BOARDS, *more)))


def boards_of(config: Config) -> tuple[str, ...]:
    """This node's boards: the 1+5 and the configured extra ones ("1+X")."""
    return known_boards(str(config["workflow.extra_boards"]))
