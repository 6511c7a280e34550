"""One item's page and its action forms; the assign form.

The page shows what ``GET /api/v1/items/{id}`` answers (the folded state, the
history with every signature checked again, sub-items, freshness) and offers
exactly the actions this person may take now: for each, the permission check
(``hierarchy.permissions.check``) and the fold's own state check
(``protocol.fold.can_apply``) run on a probe event, so the page never offers
what the API would refuse. Forms post to the page, which reads them with the
API's validators (``node.http.api.items.action_fields``) and acts through
``Workflow``; a refusal comes back as the page with the sentence in place.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict, MultiDictProxy
from sqlalchemy import select

from hierarchy.errors import HierarchyError
from hierarchy.permissions import check
from hierarchy.roles import Action, role_allows
from node.errors import (
    KINDS,
    Forbidden,
    Invalid,
    NodeError,
    NotFound,
    TooLarge,
    Unauthenticated,
)
from node.http.api import bodies
from node.http.api.items import (
    INLINE_TYPES,
    REPORTS,
    action_fields,
    assignment_fields,
    boards_of,
    files_of,
    item_id_of,
    media_type,
    sources_of,
    verified_history,
)
from node.http.api.validate import decode
from node.http.errors import seconds, status_of
from node.http.services import ACCOUNTS, CASCADE, CLOCK, CONFIG, DB, LEDGER, ROLLUP, TREE
from node.http.web import csrf
from node.http.web.decompose import may_decompose
from node.http.web.i18n import CATALOG, I18n
from node.http.web.render import (
    STATIC_URL,
    error_message,
    form_of,
    node_name,
    page,
    render,
    translator,
    workflow,
)
from node.queries.messages import sent_reminders
from node.storage import schema as t
from node.storage import unit_lists
from node.storage.accounts import User
from node.storage.db import Database
from node.workflow.actions import actor_of, scope_of
from node.workflow.attachments import NewFile
from protocol.errors import ProtocolError
from protocol.events import (
    CLASSES,
    MAX_ATTACHMENTS,
    Closed,
    Deployed,
    Event,
    ExtensionDecided,
    ExtensionRequested,
    Feedback,
    Instructed,
    Milestone,
    PlanDecided,
    PlanSubmitted,
    Resolved,
    Reviewed,
    Urged,
    Withdrawn,
)
from protocol.fold import ItemState, can_apply, default_grade
from protocol.ownership import Role, role_of

DAY_MS = 86_400_000
PLAN_ROWS = 4
_PROBE_SEQ = 2**62
_SPLIT = re.compile(r"[,，、;；\s]+")

# (form, permission step, event kind, probe fields) in the order the page shows them.
ACTIONS: tuple[tuple[str, Action, type[Event], dict[str, Any]], ...] = (
    ("deploy", Action.DEPLOY, Deployed, {"note": "-"}),
    ("feedback", Action.FEEDBACK, Feedback, {"text": "-", "progress": 0, "attachments": ()}),
    ("monthly_report", Action.FEEDBACK, Feedback,
     {"text": "-", "progress": 0, "attachments": (), "monthly": True}),
    ("plan", Action.PLAN, PlanSubmitted, {"note": ""}),
    ("decide", Action.DECIDE_PLAN, PlanDecided, {"approved": True, "reason": ""}),
    ("resolve", Action.RESOLVE, Resolved, {"text": "-", "attachments": ()}),
    ("review", Action.REVIEW, Reviewed, {"outcome": "accept", "reason": ""}),
    ("close", Action.CLOSE, Closed, {"note": "-"}),
    ("withdraw", Action.WITHDRAW, Withdrawn, {"reason": "-"}),
    ("urge", Action.URGE, Urged, {"author": "-", "text": "-"}),
    ("instruct", Action.INSTRUCT, Instructed, {"author": "-", "text": "-"}),
    ("request_extension", Action.REQUEST_EXTENSION, ExtensionRequested,
     {"reason": "-", "progress": "-"}),
    ("decide_extension", Action.DECIDE_EXTENSION, ExtensionDecided,
     {"approved": True, "reason": ""}),
)
# What the forms post to (decide posts to approve or reject).
POSTED = ("deploy", "feedback", "monthly_report", "plan", "approve", "reject", "resolve",
          "review", "close", "withdraw", "urge", "instruct", "request_extension",
          "decide_extension")
NUMERIC = ("progress", "milestone")


def allowed_actions(
    me: str, now: int, tree: Any, user: User, state: ItemState
) -> list[str]:
    """The forms to show: permitted to this person of node ``me``, and fitting the
    item's state at ``now``."""
    actor = actor_of(me, user)
    scope = scope_of(state)
    out = []
    for name, step, kind, fields in ACTIONS:
        supervising = role_of(kind.TYPE) is Role.SUPERVISOR
        to = state.assignee if me == state.assigner or supervising else state.assigner
        try:
            if check(tree, actor, step, scope) is not None:
                continue
            extra = dict(fields)
            if kind is PlanSubmitted:
                extra["milestones"] = (Milestone(title="-", due=now + DAY_MS),)
            elif kind is ExtensionRequested:
                extra["deadline"] = max(state.resolve.due, now) + DAY_MS
            elif kind is ExtensionDecided:
                pending = state.extension_pending
                extra["request"] = pending.event_id if pending is not None else "0" * 64
            probe = kind(
                item=state.item, origin=me, seq=_PROBE_SEQ, lamport=_PROBE_SEQ, at=now,
                to=to, **extra,
            )
        except (HierarchyError, ProtocolError):
            continue
        if can_apply(state, probe) is None:
            out.append(name)
    return out


def _ms(iso_text: str | None) -> int | None:
    if not iso_text:
        return None
    return int(datetime.fromisoformat(iso_text).timestamp() * 1000)


def timeline(state: ItemState, now: int) -> list[dict[str, Any]]:
    """The deadlines in time order, each pending / overdue / done on time / done late,
    with the urges (催办) and extension requests (延期申请, with the deadline before and
    the one asked) between them, at the time they were written (state ``act``)."""
    steps: list[dict[str, Any]] = [
        {"key": "assigned", "due": state.assigned_at, "done_at": state.assigned_at, "met": True}
    ]
    for key, deadline in (
        ("deploy", state.deploy),
        ("feedback", state.first_feedback),
        ("resolve", state.resolve),
    ):
        steps.append(
            {"key": key, "due": deadline.due, "done_at": deadline.done_at, "met": deadline.met}
        )
    plan = state.approved_plan
    if plan is not None:
        for index, milestone in enumerate(plan.milestones[:-1]):
            reached = index in state.milestones_reached
            steps.append(
                {
                    "key": "milestone",
                    "title": milestone.title,
                    "due": milestone.due,
                    "done_at": None,
                    "met": True if reached else None,
                    "reached": reached,
                }
            )
        if state.monthly_due is not None:
            # The next monthly progress report (docs/rules.md, "Monthly progress").
            steps.append({"key": "monthly", "due": state.monthly_due, "done_at": None,
                          "met": None})
    acts: list[dict[str, Any]] = [
        {"key": "urge", "due": u.at, "by": u.by, "author": u.author, "text": u.text,
         "state": "act"}
        for u in state.urges
    ]
    for x in state.extensions:
        acts.append({"key": "extension", "due": x.at, "deadline": x.deadline,
                     "old_due": x.old_due, "status": x.status.value, "text": x.reason,
                     "decision": x.decision, "decided_at": x.decided_at, "state": "act"})
    for step in steps:
        if step["met"] is True:
            step["state"] = "ok"
        elif step["met"] is False:
            step["state"] = "late"
        elif state.done:
            step["state"] = "skipped"
        else:
            step["state"] = "overdue" if step["due"] < now else "pending"
    return sorted([*steps, *acts], key=lambda s: (s["due"], s["key"] != "assigned"))


async def attachment_names(db: Database, digests: set[str]) -> dict[str, dict[str, Any]]:
    """Name and size of the attachments held here (for reports that named no files)."""
    if not digests:
        return {}
    async with db.read() as conn:
        rows = await conn.execute(
            select(t.attachments.c.digest, t.attachments.c.filename, t.attachments.c.size).where(
                t.attachments.c.digest.in_([bytes.fromhex(d) for d in digests])
            )
        )
        return {r.digest.hex(): {"name": r.filename, "size": r.size} for r in rows}


def size_text(size: int | None) -> str:
    """A file's size for people: 512 B, 40.2 KB, 1.3 MB."""
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


async def file_entries(db: Database, state: ItemState) -> dict[str, dict[str, Any]]:
    """Each file the item's reports name, by digest (hex), for ``item_files.html``: the
    signed name, size and type, and where it is here (``files_of``); a report that
    named no files shows the name of a file held here, else its digest."""
    entries = {e["digest"]: e for e in await files_of(db, state)}
    unnamed = {d for d, e in entries.items() if e["name"] is None}
    for digest, held in (await attachment_names(db, unnamed)).items():
        entries[digest]["name"], entries[digest]["size"] = held["name"], held["size"]
    for entry in entries.values():
        entry["size_text"] = size_text(entry["size"])
        entry["preview"] = preview_of(entry["type"]) if entry["status"] == "held" else None
        entry["url"] = f"/api/v1/attachments/{entry['digest']}"
    return entries


def preview_of(content_type: str | None) -> str | None:
    """How the page previews a file of this type: "image", "pdf" or not at all (the
    types the attachment answer serves inline, ``INLINE_TYPES``)."""
    kind = media_type(content_type)
    if kind not in INLINE_TYPES:
        return None
    return "pdf" if kind == "application/pdf" else "image"


def review_evidence(state: ItemState) -> list[dict[str, Any]]:
    """What the reviewer decides on, for the review form: the resolution (its text and
    files) and the latest feedback report, newest first; digests in hex."""
    out: list[dict[str, Any]] = []
    if state.resolution is not None or state.resolution_attachments:
        out.append({"key": "item.evidence.resolution", "text": state.resolution or "",
                    "at": None, "progress": None,
                    "digests": [d.hex() for d in state.resolution_attachments]})
    if state.feedback:
        report = state.feedback[-1]
        out.append({"key": "item.evidence.feedback", "text": report.text,
                    "progress": report.progress, "at": report.at,
                    "digests": [d.hex() for d in report.attachments]})
    return out


#: What static/upload.js says, in the page's language (placeholders filled there).
UPLOAD_MESSAGES = ("progress", "progress_start", "saving", "too_big", "too_many", "too_much",
                   "network", "refused", "server_error", "seconds", "minutes")


def upload_messages(t: I18n) -> dict[str, str]:
    return {key: t(f"upload.{key}") for key in UPLOAD_MESSAGES}


def upload_limits(config: Any) -> dict[str, Any]:
    """The limits a report form states beside its file input and its script checks
    before sending: bytes per file, files per report, bytes per form."""
    per_file = int(config["api.max_attachment_bytes"])
    together = int(config["api.max_upload_bytes"])
    return {
        "per_file": per_file,
        "together": together,
        "count": MAX_ATTACHMENTS,
        "per_file_text": size_text(per_file),
        "together_text": size_text(together),
    }


async def unit_names(
    request: web.Request, me: str, nodes: set[str]
) -> dict[str, dict[str, str]]:
    """Unit names by node and code: this node's own, and the lists other nodes of the
    subtree published up (``node_units``); a unit not found shows as its code."""
    out: dict[str, dict[str, str]] = {}
    if me in nodes:
        out[me] = await request.app[ACCOUNTS].units()
    held = await unit_lists.held(request.app[DB], sorted(nodes - {me}))
    for node, listed in held.items():
        out[node] = {u.code: u.name for u in listed.units}
    return out


async def _item_page(
    request: web.Request,
    user: User,
    item: str,
    *,
    error: NodeError | None = None,
    failed: str | None = None,
    values: dict[str, Any] | None = None,
    choose_again: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> web.Response:
    wf = workflow(request)
    tree = wf.tree
    me, db = wf.me, request.app[DB]
    state = await wf.readable(user, item)
    now = request.app[CLOCK].now_ms()
    history = await verified_history(db, request.app[TREE].trust, item)
    for entry in history:
        entry["at_ms"] = _ms(entry["at"])
        entry["received_ms"] = _ms(entry["received_at"])
    subs = await wf.sub_items(item)
    done = sum(1 for s in subs if s["status"] in ("accepted", "closed"))
    fresh = await request.app[LEDGER].freshness({state.assignee, state.assigner})
    other = state.assignee if state.assignee != me else state.assigner
    mirror = fresh.get(other, {}) if other != me else {}
    actions = allowed_actions(me, now, tree, user, state)
    pending = [(i, m) for i, m in state.pending_milestones()]
    done_msg = request.query.get("done")
    said: dict[str, Any] = {"error": error}
    if error is not None and failed is not None:
        said = {"error": act_error(translator(request), error, failed),
                "error_field": error.field, "error_detail": error.detail}
    return await render(
        request,
        "item.html",
        status=status,
        user=user,
        nav="ledger",
        s=state,
        item_id=item,
        colour=str(state.colour(now)),
        names={
            n: node_name(tree, n)
            for n in (state.assigner, state.assignee,
                      *(u.by for u in state.urges), *(i.by for i in state.instructions))
        },
        timeline=timeline(state, now),
        history=history,
        verified=all(h["verified"] for h in history),
        files=await file_entries(db, state),
        reminders_sent=await sent_reminders(db, item),
        evidence=review_evidence(state) if "review" in actions else [],
        default_grade=default_grade(state) if "review" in actions else None,
        points=await request.app[LEDGER].points(item),
        limits=upload_limits(request.app[CONFIG]),
        upload_msgs=upload_messages(translator(request)),
        upload_js=request.app[STATIC_URL]["upload_js"],
        choose_again=choose_again or [],
        subs=subs,
        rollup={
            "count": len(subs),
            "done": done,
            "progress": round(sum(s["progress"] for s in subs) / len(subs)) if subs else 0,
        },
        sub_names={s["assignee"]: node_name(tree, s["assignee"]) for s in subs},
        unit_names=await unit_names(
            request, me, {state.assignee, *(sub["assignee"] for sub in subs)}
        ),
        mirror_node=node_name(tree, other) if mirror else None,
        mirror_ms=_ms(mirror.get("received_at")) if mirror else None,
        mirror_via=mirror.get("via") if mirror else None,
        **await cascade_context(request, user, state, actions),
        actions=actions,
        may_decompose=may_decompose(me, tree, user, state),
        pending_milestones=pending,
        plan_rows=range(PLAN_ROWS),
        **said,
        failed=failed,
        values=values or {},
        done_key=("new.title" if done_msg == "assign" else f"act.{done_msg}")
        if done_msg in (*POSTED, "assign", "pass_down")
        else None,
    )


def act_error(tr: I18n, error: NodeError, act: str) -> str:
    """A refusal in ``act``'s form, naming the field by that form's own label
    (``act.instruct.text`` is "批示内容", not the feedback's "办理情况")."""
    label = f"act.{act}.{error.field}"
    if error.field and label in CATALOG and f"reason.{error.reason}" in CATALOG:
        wait = seconds(error.retry_after) if error.retry_after is not None else ""
        return tr(f"reason.{error.reason}", field=tr(label), wait=wait)
    return error_message(tr, error)


@page
async def item_page(request: web.Request, user: User) -> web.StreamResponse:
    return await _item_page(request, user, item_id_of(request))


class ReportForm:
    """A feedback or resolution form, read part by part (never whole: a form's files
    may pass the request size cap of other pages). A file over the caps is read to
    its end and dropped, so the text typed beside it comes back on the page; the
    names of every file sent are kept, so the page says which to choose again."""

    def __init__(self) -> None:
        self.fields: MultiDict[str] = MultiDict()
        self.files: list[NewFile] = []
        self.names: list[str] = []
        self.too_big: list[str] = []
        self.refusal: NodeError | None = None

    @classmethod
    async def read(cls, request: web.Request, limits: dict[str, Any], text_max: int
                   ) -> ReportForm:
        out = cls()
        per_file, together = int(limits["per_file"]), int(limits["together"])
        held = 0
        try:
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.filename is None:
                    raw, _ = await _read_capped(part, text_max)
                    if raw is None:
                        out.refuse(TooLarge("too_large", f"{part.name}: at most {text_max} "
                                            "bytes", part.name))
                    else:
                        out.fields.add(part.name, _text(raw, part.name))
                    continue
                if part.name != "attachments" or not part.filename:
                    await _read_capped(part, 0)
                    continue
                out.names.append(part.filename)
                data, size = await _read_capped(part, min(per_file, together - held))
                if data is None:
                    out.too_big.append(part.filename)
                    cap = per_file if size > per_file else together
                    setting = "api.max_attachment_bytes" if cap == per_file else \
                        "api.max_upload_bytes"
                    out.refuse(TooLarge("too_large", f"{part.filename}: at most {cap} bytes "
                                        f"({setting})", "attachments"))
                elif data:
                    held += len(data)
                    content_type = part.headers.get("Content-Type", "application/octet-stream")
                    out.files.append(NewFile(data, content_type, part.filename))
                if len(out.files) > MAX_ATTACHMENTS:
                    out.refuse(TooLarge("too_many_files", f"at most {MAX_ATTACHMENTS} files",
                                        "attachments"))
        except (ValueError, AssertionError, HttpProcessingError) as exc:
            raise Invalid("bad_form", f"the form could not be read: {exc}", "body") from None
        return out

    def refuse(self, error: NodeError) -> None:
        """Keep the first refusal; the rest of the form is still read."""
        if self.refusal is None:
            self.refusal = error


async def _read_capped(part: BodyPartReader, limit: int) -> tuple[bytes | None, int]:
    """A part's bytes, or None when it passes ``limit`` (read to its end all the same,
    so the parts after it arrive); and its size."""
    data = bytearray()
    size = 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size <= limit:
            data += chunk
    return (bytes(data) if size <= limit else None), size


def _text(raw: bytes, field: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("invalid_utf8", f"{field}: not UTF-8 (byte {exc.start})", field) from None


def action_body(action: str, form: MultiDictProxy[Any]) -> dict[str, Any]:
    """The API's JSON body for ``action`` from the posted form's text fields."""
    fields: dict[str, Any] = {}
    for key, value in form.items():
        if key in (csrf.FIELD, "attachments", "lang") or not isinstance(value, str):
            continue
        if key.startswith("m_"):
            continue
        text = value.strip()
        if text == "":
            continue  # an empty field is an absent one: its default, or "missing"
        if key in NUMERIC:
            fields[key] = int(text) if text.isascii() and text.isdigit() else text
        else:
            fields[key] = value
    if action == "review" and fields.get("outcome") == "return":
        fields.pop("grade", None)  # the form's select goes with either button
    if action == "decide_extension":
        fields["approve"] = str(form.get("approve") or "") == "true"
    if action == "plan":
        milestones = []
        for i in range(PLAN_ROWS):
            title = str(form.get(f"m_title_{i}") or "").strip()
            due = str(form.get(f"m_due_{i}") or "").strip()
            if title or due:
                milestones.append({"title": title or None, "due": due or None})
        fields["milestones"] = milestones
    return fields


@page
async def item_action(request: web.Request, user: User) -> web.StreamResponse:
    wf = workflow(request)
    item = item_id_of(request)
    action = request.match_info["action"]
    if action not in POSTED:
        raise NotFound("unknown_action", f"{action[:40]!r} is not an item action")
    values: dict[str, Any] = {}
    sent: list[dict[str, Any]] = []
    try:
        files: tuple[NewFile, ...] = ()
        if action in REPORTS and request.content_type.startswith("multipart/"):
            if not csrf.same_origin(request):  # before reading a body of files
                raise Forbidden("csrf_failed", "the form came from another site")
            await wf.permitted(user, item, REPORTS[action])
            config = request.app[CONFIG]
            report = await ReportForm.read(request, upload_limits(config),
                                           int(config["api.max_body_bytes"]))
            if not csrf.valid(request, report.fields.get(csrf.FIELD)):
                raise Forbidden("csrf_failed", "the form's token is missing or wrong")
            values = action_body(action, MultiDictProxy(report.fields))
            sent = [{"name": n, "too_big": n in report.too_big} for n in report.names]
            if report.refusal is not None:
                raise report.refusal
            files = tuple(report.files)
        else:
            form = await form_of(request)
            values = action_body(action, form)
            if action in REPORTS:
                await wf.permitted(user, item, REPORTS[action])
        step, kind, fields = await action_fields(
            action, values, tuple(f.ref for f in files), wf, item, request.app[DB],
            request.app[CLOCK],
        )
        await wf.act(user, item, step, kind, uploads=files, **fields)
    except KINDS as exc:
        if isinstance(exc, (Unauthenticated, NotFound)) or status_of(exc) >= 500:
            raise
        failed = "decide" if action in ("approve", "reject") else action
        return await _item_page(
            request, user, item, error=exc, failed=failed, values=values,
            choose_again=sent, status=status_of(exc),
        )
    raise web.HTTPSeeOther(f"/items/{item}?done={action}")


# -------------------------------------------------------------------- assign


async def _new_page(
    request: web.Request,
    user: User,
    *,
    error: NodeError | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    config = request.app[CONFIG]
    wf = workflow(request)
    tree, me = wf.tree, wf.me
    me_depth = tree.depth(me) if me in tree else 0
    below = [
        (n, node_name(tree, n), tree.depth(n) - me_depth)
        for n in (tree.descendants(me) if me in tree else ())
    ]
    return await render(
        request,
        "new.html",
        status=status,
        user=user,
        nav="new",
        may_assign=role_allows(user.role, Action.ASSIGN),
        units=await request.app[ACCOUNTS].units(),
        below=below,
        boards=boards_of(config),
        sources=sources_of(config),
        classes=CLASSES,
        calendars=("natural", "working"),
        default_calendar=str(config["workflow.calendar"]),
        cascade_levels=cascade_choices(translator(request), wf.levels_below()),
        error=error,
        values=values or {},
    )


@page
async def new_page(request: web.Request, user: User) -> web.StreamResponse:
    return await _new_page(request, user)


def assign_body(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """The API's assignment body from the form (class and deadline are one choice)."""

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    body: dict[str, Any] = {
        "title": text("title") or None,
        "description": text("description"),
        "assignee": text("assignee") or None,
        "board": text("board") or None,
        "source": text("source") or None,
        "calendar": text("calendar") or None,
    }
    if text("lead_unit"):
        body["lead_unit"] = text("lead_unit")
    units = [u for u in _SPLIT.split(text("co_units")) if u]
    if units:
        body["co_units"] = units
    if text("cascade"):
        body["cascade"] = text("cascade")
    klass = text("class") or "general"
    if klass == "explicit":
        if not text("deadline"):
            raise Invalid("missing_field", "deadline: is required", "deadline")
        body["deadline"] = text("deadline")
    else:
        body["class"] = klass
    return body


@page
async def new_submit(request: web.Request, user: User) -> web.StreamResponse:
    values: dict[str, Any] = {}
    try:
        form = await form_of(request)
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != csrf.FIELD}
        body = decode(assign_body(form), bodies.Assignment)
        fields = assignment_fields(body, request.app[CONFIG], request.app[CLOCK].now_ms())
        event, _ = await workflow(request).assign(user, fields)
    except KINDS as exc:
        if isinstance(exc, Unauthenticated) or status_of(exc) >= 500:
            raise
        return await _new_page(request, user, error=exc, values=values, status=status_of(exc))
    raise web.HTTPSeeOther(f"/items/{event.item}?done=assign")


# ------------------------------------------------------ cascade and roll-up


def cascade_choices(t: I18n, levels: tuple[str, ...]) -> list[tuple[str, str]]:
    """The new-item form's "下达到" choices: (level code, label), this level first."""
    out = [("", t("new.cascade_self"))]
    for level in levels:
        key = f"cascade.to.{level}"
        out.append((level, t(key) if key in CATALOG else t("cascade.to_other", level=level)))
    return out


def rollup_lines(t: I18n, rollup: dict[str, Any]) -> list[str]:
    """"160个乡镇：150个已反馈，8个逾期，3个红灯", one per level of the sub-items."""
    return [
        t("rollup.level_line", count=level["count"], level=t.level(level["level"]),
          feedback=level["feedback_in"], late=level["late"], red=level["red"])
        for level in rollup["levels"]
    ]


async def cascade_context(
    request: web.Request, user: User, state: ItemState, actions: list[str]
) -> dict[str, Any]:
    """What item_rollup.html shows: where the item goes down to, whether this person
    may pass it down now, the roll-up of its sub-items, and (when it may be resolved)
    the roll-up as the resolution text to start from."""
    t = translator(request)
    cascade = request.app[CASCADE]
    rollup = await request.app[ROLLUP].of(state)
    lines = rollup_lines(t, rollup) if rollup["count"] else []
    goes_to = None
    waiting = may_pass = False
    if state.cascade is not None:
        goes_to = dict(cascade_choices(t, (state.cascade,))).get(state.cascade)
        waiting = cascade.refusal(state) is None and state.item in await cascade.waiting()
        if waiting and not cascade.auto:
            actor = actor_of(cascade.me, user)
            may_pass = check(workflow(request).tree, actor, Action.DECOMPOSE,
                             scope_of(state)) is None
    tree = workflow(request).tree
    shown = {r["assignee"] for key in ("children", "slowest", "overdue") for r in rollup[key]}
    resolve_text = ""
    if lines and "resolve" in actions:
        resolve_text = t("rollup.resolution", lines="；".join(lines),
                         progress=rollup["rolled"]["progress"])
    return {
        "cascade_to": goes_to,
        "cascade_waiting": waiting,
        "cascade_auto": cascade.auto,
        "may_pass_down": may_pass,
        "rollup_data": rollup,
        "rollup_lines": lines,
        "rollup_names": {n: node_name(tree, n) for n in shown},
        "resolve_text": resolve_text,
    }


@page
async def item_pass_down(request: web.Request, user: User) -> web.StreamResponse:
    """The "向下级转办（全部下级）" button: POST /api/v1/items/{id}/pass_down as a form."""
    item = item_id_of(request)
    try:
        await form_of(request)
        await request.app[CASCADE].pass_down(item, user)
    except KINDS as exc:
        if isinstance(exc, (Unauthenticated, NotFound)) or status_of(exc) >= 500:
            raise
        return await _item_page(
            request, user, item, error=exc, failed="pass_down", status=status_of(exc)
        )
    raise web.HTTPSeeOther(f"/items/{item}?done=pass_down")
