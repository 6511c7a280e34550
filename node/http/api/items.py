"""The item endpoints: assign, the ledger, one item with its verified history, actions.

Request bodies are JSON (feedback and resolve also accept multipart with files);
answers are JSON with ISO date-times in China time. Statuses are the stable
English values of ``protocol.fold.Status``; pages translate them.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy import select

from hierarchy.roles import ROLE_ACTIONS, Action
from node.clock import Clock, iso, parse_moment
from node.config import Config
from node.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge, bad
from node.http.api import bodies
from node.http.api.auth import current_user
from node.http.api.validate import decode, read_body, read_bytes, read_json
from node.http.services import CLOCK, CONFIG, DB, LEDGER, TREE, WORKFLOW
from node.queries import ledger
from node.storage import schema as t
from node.storage.db import Database
from node.workflow import attachments
from node.workflow.actions import Workflow
from node.workflow.attachments import NewFile
from protocol import envelope
from protocol.certs import TrustStore
from protocol.errors import GRADE_NEEDS_REASON, ProtocolError
from protocol.events import (
    ITEM_RE,
    SOURCES,
    Closed,
    Deployed,
    ExtensionDecided,
    ExtensionRequested,
    Feedback,
    FileRef,
    Instructed,
    ItemEvent,
    Milestone,
    PlanDecided,
    PlanSubmitted,
    Resolved,
    Reviewed,
    Updated,
    Urged,
    Withdrawn,
    decode_event,
)
from protocol.fold import default_grade

logger = logging.getLogger(__name__)

DEADLINE_BY_EXTENSION = "deadline_by_extension"
"""An update that tries to move the deadline: only an approved extension does."""

#: The actions that carry files, and the permission each needs.
REPORTS = {"feedback": Action.FEEDBACK, "monthly_report": Action.FEEDBACK,
           "resolve": Action.RESOLVE}


def _wf(request: web.Request) -> Workflow:
    return request.app[WORKFLOW]


def known_sources(extra: str) -> tuple[str, ...]:
    """The known sources and the comma-separated ``extra`` ones."""
    return tuple(dict.fromkeys((*SOURCES, *(s.strip() for s in extra.split(",") if s.strip()))))


def sources_of(config: Config) -> tuple[str, ...]:
    """This node's sources (``workflow.extra_sources`` too)."""
    return known_sources(str(config["workflow.extra_sources"]))


def boards_of(config: Config) -> tuple[str, ...]:
    """This node's boards (``workflow.extra_boards`` too)."""
    return ledger.known_boards(str(config["workflow.extra_boards"]))


def item_id_of(request: web.Request) -> str:
    item = request.match_info["item"]
    if not ITEM_RE.match(item):
        raise NotFound("unknown_item", f"{item[:80]!r} is not an item id")
    return item


def _max_body(config: Config) -> int:
    return int(config["api.max_body_bytes"])


# ------------------------------------------------------------------ create


def assignment_fields(body: bodies.Assignment, config: Config, now: int) -> dict[str, Any]:
    """The fields of ``Workflow.assign`` from an assignment body, with this node's rules
    (``config``): its boards and sources, its default calendar, a deadline after ``now``."""
    boards, sources = boards_of(config), sources_of(config)
    if body.board not in boards:
        raise bad("board", f"must be one of {', '.join(boards)}", "unknown_board")
    if body.source not in sources:
        raise bad("source", f"must be one of {', '.join(sources)}", "unknown_source")
    fields: dict[str, Any] = {
        "title": body.title,
        "description": body.description,
        "assignee": body.assignee,
        "board": body.board,
        "source": body.source,
        "calendar": body.calendar or str(config["workflow.calendar"]),
        "lead_unit": body.lead_unit,
        "co_units": body.co_units,
        "cascade": body.cascade,
    }
    if body.deadline is not None:
        deadline = parse_moment(body.deadline, "deadline")
        if deadline <= now:
            raise bad("deadline", "must be in the future")
        fields["class"], fields["deadline"] = "explicit", deadline
    else:
        fields["class"] = body.item_class or "general"
    return fields


async def create_item(request: web.Request) -> web.Response:
    user = await current_user(request)
    config = request.app[CONFIG]
    body = await read_body(request, bodies.Assignment, max_bytes=_max_body(config))
    fields = assignment_fields(body, config, request.app[CLOCK].now_ms())
    event, estimated = await _wf(request).assign(user, fields)
    return web.json_response(
        {
            "id": event.item,
            "status": "assigned",
            "assignee": event.assignee,
            "assignee_unit": event.assignee_unit,
            "deadlines": _deadlines(
                event.deadlines.deploy, event.deadlines.feedback, event.deadlines.resolve
            ),
            "calendar": event.calendar,
            "calendar_estimated": estimated,
            "cascade": event.cascade,
        },
        status=201,
    )


def _deadlines(deploy: int, feedback: int, resolve: int) -> dict[str, Any]:
    return {
        "deploy": iso(deploy),
        "feedback": iso(feedback),
        "resolve": iso(resolve),
        "deploy_ms": deploy,
        "feedback_ms": feedback,
        "resolve_ms": resolve,
    }


# -------------------------------------------------------------------- read


async def list_items(request: web.Request) -> web.Response:
    await current_user(request)
    answer = await request.app[LEDGER].list_items(request.query)
    return web.json_response(answer)


async def get_item(request: web.Request) -> web.Response:
    user = await current_user(request)
    wf = _wf(request)
    item = item_id_of(request)
    state = await wf.readable(user, item)
    now = request.app[CLOCK].now_ms()
    history = await verified_history(request.app[DB], request.app[TREE].trust, item)
    subs = await wf.sub_items(item)
    done = sum(1 for s in subs if s["status"] in ("accepted", "closed"))
    body = {
        "item": state.to_dict(),
        "id": item,
        "status": str(state.status),
        "colour": str(state.colour(now)),
        "deadlines": _deadlines(state.deploy.due, state.first_feedback.due, state.resolve.due),
        "history": history,
        "verified": all(h["verified"] for h in history),
        "files": await files_of(request.app[DB], state),
        "sub_items": subs,
        "rollup": {
            "count": len(subs),
            "done": done,
            "progress": round(sum(s["progress"] for s in subs) / len(subs)) if subs else None,
        },
        "nodes": await request.app[LEDGER].freshness({state.assignee, state.assigner}),
    }
    return web.json_response(body)


async def verified_history(db: Database, trust: TrustStore, item: str) -> list[dict[str, Any]]:
    """Every stored event of the item, each signature checked again from its bytes
    against the certificates of ``trust``."""
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(t.events.c.raw, t.events.c.source, t.events.c.received_at)
                .where(t.events.c.item_id == item)
                .order_by(t.events.c.lamport, t.events.c.pos)
            )
        ).all()
    out = []
    for raw, source, received_at in rows:
        env = envelope.parse(raw)
        event = decode_event(env.type, env.body)
        verified, reason = True, None
        try:
            env.verify(trust.key_for(env.key_id))
            trust.check_event_signer(env.key_id, event.origin, event.seq, event.at)
        except ProtocolError as exc:
            verified, reason = False, exc.reason
        body = {
            k: v
            for k, v in _plain(event).items()
            if k not in ("item", "origin", "seq", "lamport", "at", "to")
        }
        out.append(
            {
                "event_id": env.event_id,
                "type": env.type,
                "origin": event.origin,
                "seq": event.seq,
                "lamport": event.lamport,
                "at": iso(event.at),
                "to": event.to,
                "signer_key": env.key_id.hex(),
                "batch_signed": env.proof is not None,
                "verified": verified,
                "refusal": reason,
                "received_from": source,
                "received_at": iso(received_at),
                "fields": body,
            }
        )
    return out


def _plain(value: Any) -> Any:
    from dataclasses import fields, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


# ----------------------------------------------------------------- actions


async def _cited(db: Database, digests: tuple[str, ...]) -> tuple[FileRef, ...]:
    """How the report names files uploaded before (``POST /api/v1/attachments``): each
    must be held here; its name, size and type come from its upload."""
    async with db.read() as conn:
        return await attachments.cited(conn, [bytes.fromhex(d) for d in digests])


async def _report_body(
    request: web.Request, config: Config
) -> tuple[dict[str, Any], tuple[NewFile, ...]]:
    """JSON citing uploaded files, or multipart with text fields and new files (read,
    not stored: the action stores them once it is accepted)."""
    if request.content_type.startswith("multipart/"):
        fields: dict[str, Any] = {}
        files: list[NewFile] = []
        limit = int(config["api.max_attachment_bytes"])
        together = int(config["api.max_upload_bytes"])
        try:
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.filename:
                    # Every file is held in memory until the action is accepted: bound
                    # them together, not only one by one.
                    left = together - sum(len(f.data) for f in files)
                    if left < limit:
                        try:
                            data = await _read_part(part, left, "attachments")
                        except TooLarge as exc:
                            exc.detail = (f"attachments: the files together are at most "
                                          f"{together} bytes (api.max_upload_bytes)")
                            raise
                    else:
                        data = await _read_part(part, limit, "attachments")
                    content_type = part.headers.get("Content-Type", "application/octet-stream")
                    files.append(NewFile(data, content_type, part.filename))
                else:
                    raw = await _read_part(part, _max_body(config), part.name)
                    text = _part_text(raw, part.name)
                    numeric = part.name in ("progress", "milestone")
                    fields[part.name] = (
                        int(text) if numeric and text.isascii() and text.isdigit() else text
                    )
        except (ValueError, RuntimeError, TypeError, HttpProcessingError) as exc:
            raise Invalid(
                "bad_multipart", f"body: not a valid multipart form ({exc})"[:300], "body"
            ) from None
        return fields, tuple(files)
    return await read_json(request, max_bytes=_max_body(config)), ()


async def _read_part(part: BodyPartReader, limit: int, field: str) -> bytes:
    """A part's bytes, refusing it as soon as it passes ``limit``."""
    data = bytearray()
    while chunk := await part.read_chunk():
        data += chunk
        if len(data) > limit:
            name = part.filename or field
            raise TooLarge("too_large", f"{name}: at most {limit} bytes", field)
    return bytes(data)


def _part_text(raw: bytes, field: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(
            "invalid_utf8", f"{field}: not UTF-8 (byte {exc.start})", field
        ) from None


async def _act(request: web.Request) -> web.Response:
    user = await current_user(request)
    config = request.app[CONFIG]
    wf = _wf(request)
    item = item_id_of(request)
    action = request.match_info["action"]
    if action == "decompose":
        return await _decompose(request, user, item)
    new_files: tuple[NewFile, ...] = ()
    if action in REPORTS:
        # Refuse a person who may not report before reading (let alone keeping) files.
        await wf.permitted(user, item, REPORTS[action])
        data, new_files = await _report_body(request, config)
    else:
        data = await read_json(request, max_bytes=_max_body(config))
    step, kind, fields = await action_fields(
        action, data, tuple(f.ref for f in new_files), wf, item, request.app[DB],
        request.app[CLOCK],
    )
    event, state = await wf.act(user, item, step, kind, uploads=new_files, **fields)
    return web.json_response(
        {
            "id": item,
            "event": event.TYPE,
            "seq": event.seq,
            "status": str(state.status),
            "progress": state.progress,
        }
    )


async def action_fields(
    action: str,
    data: dict[str, Any],
    files: tuple[FileRef, ...],
    wf: Workflow,
    item: str,
    db: Database,
    clock: Clock,
) -> tuple[Action, type[ItemEvent], dict[str, Any]]:
    """The permission step, event kind and fields of one item action, read from the
    JSON object ``data`` (its Struct: ``bodies.ACTIONS[action]``); ``files`` name the
    new files sent with it, cited ones are looked up in ``db`` (each report's signed
    ``files`` names them all, in the order of its ``attachments``), a new
    deadline must be after ``clock``'s now. Shared by the JSON API and the pages' forms.
    """
    kind = bodies.ACTIONS.get(action) if action != "decompose" else None
    if kind is None:
        raise NotFound("unknown_action", f"{action[:40]!r} is not an item action")
    if action == "update" and isinstance(data, dict) and "deadline" in data:
        raise Invalid(
            DEADLINE_BY_EXTENSION,
            "deadline: a deadline moves only by an extension request the assigner "
            "approves (request_extension, then decide_extension)",
            "deadline",
        )
    body = decode(data, kind)
    match body:
        case bodies.Deploy():
            return Action.DEPLOY, Deployed, {"note": body.note}
        case bodies.Feedback():
            named = files + await _cited(db, body.attachments)
            return Action.FEEDBACK, Feedback, {
                "text": body.text,
                "progress": body.progress,
                "attachments": tuple(f.digest for f in named),
                "files": named,
                "milestone": body.milestone,
                "answers": body.answers,
            }
        case bodies.MonthlyReport():
            named = files + await _cited(db, body.attachments)
            return Action.FEEDBACK, Feedback, {
                "text": body.text,
                "progress": body.progress,
                "attachments": tuple(f.digest for f in named),
                "files": named,
                "monthly": True,
            }
        case bodies.Plan():
            return Action.PLAN, PlanSubmitted, {
                "milestones": _milestones(body), "note": body.note
            }
        case bodies.Approve() | bodies.Reject():
            return Action.DECIDE_PLAN, PlanDecided, {
                "approved": isinstance(body, bodies.Approve), "reason": body.reason
            }
        case bodies.Resolve():
            named = files + await _cited(db, body.attachments)
            return Action.RESOLVE, Resolved, {
                "text": body.text, "attachments": tuple(f.digest for f in named), "files": named,
            }
        case bodies.Review():
            return Action.REVIEW, Reviewed, await _review_fields(body, wf, item)
        case bodies.Close():
            return Action.CLOSE, Closed, {"note": body.note}
        case bodies.Withdraw():
            return Action.WITHDRAW, Withdrawn, {"reason": body.reason}
        case bodies.Update():
            return Action.UPDATE, Updated, _update_fields(body)
        case bodies.Urge():
            return Action.URGE, Urged, {"text": body.text}
        case bodies.Instruct():
            return Action.INSTRUCT, Instructed, {"text": body.text}
        case bodies.RequestExtension():
            deadline = parse_moment(body.deadline, "deadline")
            if deadline <= clock.now_ms():
                raise bad("deadline", "must be in the future")
            return Action.REQUEST_EXTENSION, ExtensionRequested, {
                "reason": body.text, "deadline": deadline, "progress": body.progress,
            }
        case bodies.DecideExtension():
            pending = (await wf.state(item)).extension_pending
            if pending is None:
                raise Conflict(
                    "invalid_transition", "no extension request awaits a decision on this item"
                )
            return Action.DECIDE_EXTENSION, ExtensionDecided, {
                "request": pending.event_id, "approved": body.approve, "reason": body.text,
            }
    raise AssertionError(f"no event for {type(body).__name__}")  # pragma: no cover


async def _review_fields(body: bodies.Review, wf: Workflow, item: str) -> dict[str, Any]:
    """A review's fields: an acceptance carries its grade, the rules' default unless
    the reviewer chose another and said why (``grade_needs_reason``)."""
    reason = body.reason or ""
    if body.outcome != "accept":
        return {"outcome": body.outcome, "reason": reason}
    default = default_grade(await wf.state(item))
    grade = body.grade or default
    if grade != default and not reason:
        raise Invalid(
            GRADE_NEEDS_REASON,
            f"reason: the grade {grade} differs from the rules' default {default}: say why",
            "reason",
        )
    return {"outcome": body.outcome, "reason": reason, "grade": grade}


def _milestones(body: bodies.Plan) -> tuple[Milestone, ...]:
    """The plan's milestones, each one's due read here, with its index."""
    out = []
    for i, m in enumerate(body.milestones):
        due = parse_moment(m.due, f"milestones[{i}].due")
        try:
            out.append(Milestone(title=m.title, due=due))
        except ProtocolError as exc:
            name = "due" if "due" in exc.detail.split(":", 1)[0] else "title"
            raise bad(f"milestones[{i}].{name}", exc.detail.split(": ", 1)[-1]) from None
    return tuple(out)


def _update_fields(body: bodies.Update) -> dict[str, Any]:
    return {
        name: value
        for name, value in (
            ("title", body.title),
            ("description", body.description),
            ("lead_unit", body.lead_unit),
            ("co_units", body.co_units),
        )
        if value is not None
    }


async def _decompose(request: web.Request, user: Any, item: str) -> web.Response:
    body = await read_body(request, bodies.Decompose, max_bytes=_max_body(request.app[CONFIG]))
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(body.parts):
        entry: dict[str, Any] = {
            "assignee": part.assignee,
            "title": part.title,
            "description": part.description,
            "lead_unit": part.lead_unit,
            "co_units": part.co_units,
        }
        if part.deadline is not None:
            entry["class"] = "explicit"
            entry["deadline"] = parse_moment(part.deadline, f"parts[{i}].deadline")
        else:
            entry["class"] = part.item_class or "inherit"
        parts.append(entry)
    events = await _wf(request).decompose(user, item, parts)
    return web.json_response(
        {
            "id": item,
            "sub_items": [
                {
                    "id": e.item,
                    "assignee": e.assignee,
                    "assignee_unit": e.assignee_unit,
                    "deadlines": _deadlines(
                        e.deadlines.deploy, e.deadlines.feedback, e.deadlines.resolve
                    ),
                }
                for e in events
            ],
        },
        status=201,
    )


# -------------------------------------------------------------- attachments


async def upload_attachment(request: web.Request) -> web.Response:
    """A file to cite in a later feedback or resolution: only for people who may
    report (403 ``role_forbidden`` before the body is read), within the quotas."""
    user = await current_user(request)
    if not ROLE_ACTIONS[user.role] & set(REPORTS.values()):
        raise Forbidden(
            "role_forbidden", f"a {user.role} does not report, so uploads no files"
        )
    limit = int(request.app[CONFIG]["api.max_attachment_bytes"])
    data = await read_bytes(request, limit)
    if not data:
        raise Invalid("missing_body", "send the file as the request body", "body")
    name = request.headers.get("X-Filename", "file")
    file = NewFile(data, request.content_type or "application/octet-stream", name)
    wf = _wf(request)
    async with request.app[DB].write() as conn:
        await attachments.store(conn, wf.quotas, user, [file], request.app[CLOCK].now_ms())
    return web.json_response({"digest": file.digest.hex(), "size": len(data)}, status=201)


async def get_attachment(request: web.Request) -> web.StreamResponse:
    """A file held here, for anyone who may read an item whose report names it (or,
    for a file no report names yet, the person who uploaded it)."""
    user = await current_user(request)
    digest = request.match_info["digest"]
    if not bodies.DIGEST_RE.match(digest):
        raise NotFound("unknown_attachment", "not a SHA-256 digest")
    raw = bytes.fromhex(digest)
    async with request.app[DB].read() as conn:
        items = await attachments.items_naming(conn, raw)
        row = (
            await conn.execute(select(t.attachments).where(t.attachments.c.digest == raw))
        ).first()
    if not items and (row is None or row.uploaded_by != user.id):
        raise NotFound("unknown_attachment", "no report held here names this file")
    if items:
        await _may_read_one(_wf(request), user, items)
    if row is None:
        async with request.app[DB].read() as conn:
            status = (await attachments.statuses(conn, [raw]))[raw]
        raise NotFound(
            "attachment_not_here",
            f"the file is not here yet ({status.status}, {status.received} bytes so far): "
            "it comes up the tree behind the report that names it",
        )
    etag = f'"{digest}"'
    headers = attachment_headers(row.content_type, row.filename)
    headers["ETag"] = etag
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    # Set as a header: content_type= refuses any type that contains "charset".
    headers["Content-Type"] = row.content_type
    return web.Response(body=row.data, headers=headers)


#: The types a page previews (item_files.html): shown inline, framed by this site only.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp",
                          "application/pdf"})


def media_type(content_type: str | None) -> str:
    """``image/PNG; x=y`` -> ``image/png``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def attachment_headers(content_type: str, filename: str) -> dict[str, str]:
    """How a file is answered. Images and PDFs inline (the item page previews them and
    may frame them, from this site only); everything else, above all HTML and SVG
    (which run script), as a download. The type is never sniffed; a file that
    renders at all renders in a sandbox without script (a PDF excepted: Chromium's
    viewer refuses a sandboxed frame, and a PDF viewer runs no page script)."""
    kind = media_type(content_type)
    inline = kind in INLINE_TYPES
    policy = "default-src 'none'; frame-ancestors 'self'"
    if kind != "application/pdf":
        policy += "; sandbox"
    return {
        "Content-Disposition": f"{'inline' if inline else 'attachment'}; "
                               f"filename*=UTF-8''{_quote(filename)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": policy,
        "X-Frame-Options": "SAMEORIGIN",
        # Content-addressed, but behind a permission check: the browser keeps it for
        # this person and asks again each time (a 304 by ETag).
        "Cache-Control": "private, no-cache",
        "Referrer-Policy": "same-origin",
    }


async def _may_read_one(wf: Workflow, user: Any, items: list[str]) -> None:
    """Whether ``user`` may read one of ``items`` (the first refusal otherwise)."""
    first: Exception | None = None
    for item in items:
        try:
            await wf.readable(user, item)
            return
        except (Forbidden, NotFound) as exc:
            first = first or exc
    assert first is not None
    raise first


async def files_of(db: Database, state: Any) -> list[dict[str, Any]]:
    """Each file the item's reports name, with its status here: ``held``,
    ``receiving`` (``received`` bytes so far) or ``waiting``; ``report``: the event id
    of the feedback naming it, or "resolution". A report written before files were
    named lists its digests alone (name, size and type None)."""
    entries: list[tuple[str, bytes, FileRef | None]] = []
    for report in state.feedback:
        refs = {f.digest: f for f in report.files}
        entries.extend((report.event_id, d, refs.get(d)) for d in report.attachments)
    refs = {f.digest: f for f in state.resolution_files}
    entries.extend(("resolution", d, refs.get(d)) for d in state.resolution_attachments)
    async with db.read() as conn:
        statuses = await attachments.statuses(conn, [d for _, d, _ in entries])
    out = []
    for report, digest, ref in entries:
        status = statuses[digest]
        out.append(
            {
                "report": report,
                "digest": digest.hex(),
                "name": ref.name if ref else None,
                "size": ref.size if ref else None,
                "type": ref.type if ref else None,
                "status": status.status,
                "received": status.received,
                "percent": status.percent(ref.size) if ref and status.status != "waiting" else 0,
            }
        )
    return out


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/items", create_item)
    app.router.add_get("/api/v1/items", list_items)
    app.router.add_get("/api/v1/items/{item}", get_item)
    app.router.add_post("/api/v1/items/{item}/{action}", _act)
    app.router.add_post("/api/v1/attachments", upload_attachment)
    app.router.add_get("/api/v1/attachments/{digest}", get_attachment)
