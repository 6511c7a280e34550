"""The pass-down page (转办 / 任务分解): ``GET`` and ``POST /items/{id}/decompose``.

The handling node splits an item into parts for its children and its own
departments. Each part names a lead unit and co-units picked from lists: a
child's units as it published them up the tree (``node_units``,
docs/hierarchy.md), this node's from its units table. "全部下级" and "全部部门"
add one part per child or per department in one step.

It works without JavaScript: every button posts the whole form back (``op``
says which), and the page comes back with the rows as typed, one more or one
fewer. ``op=submit`` checks every part (the form's own rules here, then
``Workflow.decompose_problems``) and shows every error at once beside its field;
only a form without errors is signed (``Workflow.decompose``), all parts in one
batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from hierarchy.errors import HierarchyError
from hierarchy.permissions import check
from hierarchy.roles import Action
from hierarchy.tree import Tree
from node.clock import parse_moment
from node.errors import KINDS, Invalid, NodeError, Unauthenticated
from node.http.api.bodies import MAX_PARTS
from node.http.api.items import item_id_of
from node.http.errors import status_of
from node.http.services import ACCOUNTS, DB
from node.http.web.render import form_of, node_name, page, render, translator, workflow
from node.storage import unit_lists
from node.storage.accounts import User
from node.workflow.actions import actor_of, scope_of
from protocol.events import MAX_TEXT, MAX_TITLE, UNIT_RE
from protocol.fold import ItemState
from protocol.rules import CHINA_TZ

OPS = ("children", "units", "add", "submit")


def may_decompose(me: str, tree: Tree, user: User, state: ItemState) -> bool:
    """Whether the item page links here: the item is open and this person may pass it
    down (the same check ``Workflow.decompose`` makes)."""
    if state.done:
        return False
    try:
        return check(tree, actor_of(me, user), Action.DECOMPOSE, scope_of(state)) is None
    except HierarchyError:
        return False


@dataclass(slots=True)
class Row:
    """One part as the form holds it: everything as typed."""

    target: str  # a unit code of this node, or a child's node id
    title: str = ""
    description: str = ""
    lead_unit: str = ""
    co_units: list[str] = field(default_factory=list)
    deadline: str = ""


@dataclass(slots=True)
class Targets:
    """Whom parts may go to: this node's units and its children, with their units."""

    units: list[tuple[str, str, bool]]  # (code, name, office) of this node
    children: list[tuple[str, str]]  # (node id, name)
    child_units: dict[str, list[tuple[str, str]]]  # a child's published (code, name)

    def is_unit(self, target: str) -> bool:
        return any(code == target for code, _n, _o in self.units)

    def known(self, target: str) -> bool:
        return self.is_unit(target) or any(c == target for c, _n in self.children)


async def _targets(request: web.Request) -> Targets:
    wf = workflow(request)
    children = [(c, node_name(wf.tree, c)) for c in wf.known.children()]
    held = await unit_lists.held(request.app[DB], [c for c, _ in children])
    return Targets(
        units=await request.app[ACCOUNTS].unit_rows(),
        children=children,
        child_units={n: [(u.code, u.name) for u in h.units] for n, h in held.items()},
    )


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, CHINA_TZ).date().isoformat()


def rows_of(form: MultiDictProxy[Any]) -> list[Row]:
    """The parts in the posted form, in order (``p{i}_target`` marks a row)."""
    rows = []
    for i in range(MAX_PARTS + len(OPS)):
        target = form.get(f"p{i}_target")
        if not isinstance(target, str) or not target:
            continue

        def text(name: str, i: int = i) -> str:
            value = form.get(f"p{i}_{name}")
            return value if isinstance(value, str) else ""

        rows.append(Row(
            target=target,
            title=text("title"),
            description=text("description"),
            lead_unit=text("lead_unit").strip(),
            co_units=[v for v in form.getall(f"p{i}_co", []) if isinstance(v, str) and v],
            deadline=text("deadline").strip(),
        ))
    return rows


def _new_row(target: str, state: ItemState) -> Row:
    return Row(target=target, title=state.title, description=state.description)


async def _page(
    request: web.Request,
    user: User,
    item: str,
    rows: list[Row],
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    wf = workflow(request)
    state = await wf.readable(user, item)
    targets = await _targets(request)
    t = translator(request)
    errors = errors or {}
    return await render(
        request,
        "decompose.html",
        status=status,
        user=user,
        nav="ledger",
        s=state,
        item_id=item,
        due_day=_day(state.resolve.due),
        rows=rows,
        targets=targets,
        unit_names={code: name for code, name, _o in targets.units},
        child_names=dict(targets.children),
        has_departments=any(not office for _c, _n, office in targets.units),
        errors=errors,
        error=t("decompose.errors", n=len(errors)) if errors else None,
        max_parts=MAX_PARTS,
    )


@page
async def decompose_page(request: web.Request, user: User) -> web.StreamResponse:
    item = item_id_of(request)
    await workflow(request).permitted(user, item, Action.DECOMPOSE)
    return await _page(request, user, item, [])


def _parts(
    rows: list[Row], targets: Targets, due: int, errors: dict[str, str], t: Any
) -> list[dict[str, Any]]:
    """The workflow's parts from the rows; the form's own errors go to ``errors``
    (by field, ``parts[1].title``), and a part with one is still checked for the rest."""

    def fail(exc: NodeError, name: str) -> None:
        errors.setdefault(exc.field or name, t.error(exc.reason, name))

    parts = []
    due_day = _day(due)
    for i, row in enumerate(rows):
        at = f"parts[{i}]."
        title = row.title.strip()
        if not title:
            fail(Invalid("missing_field", "", f"{at}title"), "title")
        elif len(title) > MAX_TITLE:
            fail(Invalid("bad_field", "", f"{at}title"), "title")
        if len(row.description) > MAX_TEXT:
            fail(Invalid("bad_field", "", f"{at}description"), "description")
        part: dict[str, Any] = {
            "assignee": row.target,
            "title": title or "-",
            "description": row.description.strip(),
            "co_units": tuple(dict.fromkeys(row.co_units)),
            "class": "inherit",
        }
        if not targets.is_unit(row.target) and row.lead_unit:
            part["lead_unit"] = row.lead_unit
            if not UNIT_RE.match(row.lead_unit):  # typed: the child's list is not here
                fail(Invalid("bad_field", "", f"{at}lead_unit"), "lead_unit")
        if row.deadline:
            try:
                # A date alone is the end of that day; on the item's own last day it
                # means the item's own deadline, not a moment after it.
                moment = due if row.deadline == due_day else parse_moment(
                    row.deadline, f"{at}deadline"
                )
                part["class"], part["deadline"] = "explicit", moment
            except Invalid as exc:
                fail(exc, "deadline")
        parts.append(part)
    return parts


@page
async def decompose_submit(request: web.Request, user: User) -> web.StreamResponse:
    wf = workflow(request)
    item = item_id_of(request)
    await wf.permitted(user, item, Action.DECOMPOSE)
    form = await form_of(request)
    rows = rows_of(form)
    op = form.get("op")
    state = await wf.readable(user, item)
    targets = await _targets(request)
    errors: dict[str, str] = {}
    if isinstance(op, str) and op.startswith("remove-"):
        index = op.removeprefix("remove-")
        if index.isdigit() and int(index) < len(rows):
            del rows[int(index)]
        return await _page(request, user, item, rows)
    if op in ("children", "units", "add"):
        if op == "children":
            added = [c for c, _n in targets.children]
        elif op == "units":
            added = [code for code, _n, office in targets.units if not office]
        else:
            chosen = form.get("new_target")
            added = [chosen] if isinstance(chosen, str) and targets.known(chosen) else []
        rows.extend(_new_row(target, state) for target in added)
        if len(rows) > MAX_PARTS:
            del rows[MAX_PARTS:]
            errors["parts"] = translator(request)("decompose.too_many", n=MAX_PARTS)
        return await _page(request, user, item, rows, errors=errors,
                           status=400 if errors else 200)
    t = translator(request)
    if not rows:
        errors["parts"] = t("decompose.none")
        return await _page(request, user, item, rows, errors=errors, status=400)
    parts = _parts(rows, targets, state.resolve.due, errors, t)
    try:
        for problem in await wf.decompose_problems(user, item, parts):
            name = (problem.field or "").rsplit(".", 1)[-1]
            errors.setdefault(problem.field or "parts", t.error(problem.reason, name))
        if not errors:
            await wf.decompose(user, item, parts)
    except KINDS as exc:
        if isinstance(exc, Unauthenticated) or status_of(exc) >= 500:
            raise
        name = (exc.field or "").rsplit(".", 1)[-1]
        errors.setdefault(exc.field or "parts", t.error(exc.reason, name or None))
    if errors:
        return await _page(request, user, item, rows, errors=_placed(errors, len(rows)),
                           status=400)
    raise web.HTTPSeeOther(f"/items/{item}?done=decompose#subs")


_SLOTS = ("assignee", "title", "description", "deadline", "class", "lead_unit", "co_units")


def _placed(errors: dict[str, str], count: int) -> dict[str, str]:
    """Every error where the page shows one: beside its part's field, or above the
    parts (``parts``) when it names no field the page has."""
    slots = {f"parts[{i}].{name}" for i in range(count) for name in _SLOTS}
    placed: dict[str, str] = {}
    for key, message in errors.items():
        if key in slots:
            placed[key] = message
        elif "parts" in placed:
            placed["parts"] += " " + message
        else:
            placed["parts"] = message
    return placed


def add_routes(router: web.UrlDispatcher) -> None:
    """Before the item actions' ``/items/{item}/{action}``, which would take the POST."""
    router.add_get("/items/{item}/decompose", decompose_page)
    router.add_post("/items/{item}/decompose", decompose_submit)

