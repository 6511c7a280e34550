"""The OpenAPI 3.1 description of /api/v1, built in code and served at /api/v1/openapi.json.

The request schemas are generated from the Structs the handlers decode with
(:mod:`node.http.api.bodies`: required fields, types, lengths, enums, bounds,
patterns), so they say exactly what is accepted; the boards and sources are
this node's (with ``workflow.extra_boards`` / ``workflow.extra_sources``), so
the document is built for the node that serves it. What is written here by
hand is what no Struct holds: the operations' summaries, the answers and the
query parameters. A test compares the paths here with the routes the app
registers, and schemathesis fuzzes every operation against a live node.

What JSON Schema cannot say is said in descriptions (:data:`BODY_RULES`): a
``null`` counts as an absent field, strings are stripped before they are
checked, and a few rules across fields.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from node.config import Config
from node.http.api import bodies
from node.http.api.cascade import openapi_paths as cascade_paths
from node.http.api.items import REPORTS, known_sources
from node.http.api.reminders import openapi_paths as reminder_paths
from node.http.api.reports import openapi_paths as report_paths
from node.http.api.todo import openapi_paths as todo_paths
from node.http.api.units import openapi_paths as unit_paths
from node.http.services import CONFIG
from node.queries.ledger import COLOURS, MAX_LIMIT, SORTS, known_boards
from protocol.fold import Status

Schema = dict[str, Any]

PATH = "/api/v1/openapi.json"
BODY_RULES = (
    "A null value counts as an absent field; strings are stripped of surrounding "
    "white space before they are checked (the password is not)."
)

STATUS_MEANINGS: dict[str, str] = {
    Status.ASSIGNED: "assigned; the handling node has not yet deployed it (研究部署)",
    Status.DEPLOYED: "deployed: the handling unit has studied it and set to work",
    Status.REPORTING: "at least one progress report (反馈) has been sent",
    Status.PLANNED: (
        "a plan with milestones was approved; its last milestone is the resolve deadline"
    ),
    Status.RESOLVED: "reported done (办结); awaiting the assigner's review",
    Status.RETURNED: "the assigner returned the resolution; handling goes on",
    Status.ACCEPTED: "the assigner accepted the resolution; only closing remains",
    Status.CLOSED: "closed (销号): final",
    Status.WITHDRAWN: "withdrawn by the assigner: final",
}

REASONS: dict[int, dict[str, str]] = {
    400: {
        "missing_body": "no body where a JSON object is expected",
        "bad_json": "the body is not JSON, or not a JSON object",
        "invalid_utf8": "the body (or a multipart text field) is not UTF-8",
        "bad_multipart": "a multipart/form-data body that cannot be parsed",
        "missing_field": "a required field is absent (or null)",
        "bad_field": "a field has the wrong type, length, range or value",
        "unknown_field": "a field or query parameter nobody asked for",
        "unknown_board": "board is not one of this node's boards",
        "unknown_source": "source is not one of this node's sources",
        "unknown_assignee": "assignee is neither a unit here nor a known node",
        "unknown_unit": "lead_unit is not a unit of this node",
        "unknown_attachment": "an attachment digest that was never uploaded here",
        "deadline_after_parent": "a sub-item's deadline is later than its item's own",
        "bad_cascade": "cascade is not a level below this node's (and the assignee's)",
        "deadline_by_extension": "update: a deadline moves only by an approved extension",
        "grade_needs_reason": "review: a grade other than the rules' default needs a reason",
    },
    401: {
        "auth_required": "no bearer token and no session cookie",
        "bad_credentials": "unknown token or session, malformed Authorization, wrong password",
        "session_expired": "the session cookie is too old: sign in again",
        "account_disabled": "the account is disabled",
    },
    403: {
        "csrf_failed": "a session-cookie request not from this site (Origin, Referer or "
        "X-Duban-CSRF; docs/api.md)",
        "not_in_scope": "the item or scope is outside this node's subtree",
        "not_ancestor": "assigning is only to this node's units or its descendants",
        "not_assigner": "only the assigning node does this",
        "not_assignee": "only the handling node does this",
        "not_supervisor": "urge, instruct: only the assigning node or a node above it",
        "role_forbidden": "the person's role does not allow this",
        "wrong_unit": "a unit-bound person acts only for their own unit",
        "not_in_subtree": "a unit list asked for a node outside this node's subtree",
    },
    404: {
        "not_found": "no such path",
        "unknown_item": "no such item here (or not an item id)",
        "unknown_action": "no such item action",
        "unknown_node": "the scope names no node known here",
        "unknown_attachment": "not a SHA-256 digest, or no report held here names the file",
        "attachment_not_here": "a report names the file but its bytes are not here (yet)",
        "no_unit_list": "no unit list of that subtree node has reached this node yet",
    },
    405: {"method_not_allowed": "the path exists, the method does not"},
    409: {
        "invalid_transition": "the action does not fit the item's status",
        "item_closed": "the item is closed",
        "item_withdrawn": "the item is withdrawn",
        "extension_too_late": "request_extension: the resolve deadline has passed",
        "grade_needs_reason": "review: the default grade changed (a plan decided) before "
        "signing: the grade differs from it and no reason is given",
        "not_cascade": "pass_down: the item names no level to go down to",
        "wrong_level": "pass_down: this node is not above the item's cascade level",
        "no_children": "pass_down: no child of this node is at or above that level",
        "already_passed_down": "pass_down: this node passed the item down already",
    },
    413: {
        "too_large": "the body is larger than the node accepts",
        "quota_exceeded": "the person's attachments would pass their quota",
        "node_quota_exceeded": "the node's attachments would pass its quota",
    },
    415: {"unsupported_media_type": "a JSON body sent without Content-Type: application/json"},
    429: {"too_many_attempts": "too many failed sign-ins; see Retry-After"},
    500: {"internal": "the server failed; the error is logged (never a stack trace)"},
}

ACTION_SIDES: dict[str, str] = {
    "deploy": "handling node",
    "feedback": "handling node",
    "monthly_report": "handling node, under an approved plan",
    "plan": "handling node",
    "approve": "assigning node",
    "reject": "assigning node",
    "resolve": "handling node",
    "review": "assigning node",
    "close": "assigning node",
    "withdraw": "assigning node",
    "update": "assigning node",
    "urge": "assigning node or a node above it (a leader or the supervision office)",
    "instruct": "assigning node or a node above it (a leader)",
    "request_extension": "handling node, before the resolve deadline",
    "decide_extension": "assigning node",
    "decompose": "handling node",
}
"""Who does each item action (its body is ``bodies.ACTIONS[action]``)."""
ACTIONS: tuple[str, ...] = tuple(bodies.ACTIONS)


# ------------------------------------------------------------------ schemas


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), **more: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema | more


def request_schemas(boards: tuple[str, ...], sources: tuple[str, ...]) -> dict[str, Schema]:
    """The request bodies' schemas, by Struct name: msgspec's for ``bodies.ALL`` (with
    the Structs they nest), each Struct's ``schema_extra``, and this node's boards
    and sources as enums."""
    _, schemas = msgspec.json.schema_components(bodies.ALL, ref_template=bodies.REF)
    kinds = {kind.__name__: kind for kind in bodies.Body.__subclasses__()}
    for name, schema in schemas.items():
        schema.update(kinds[name].schema_extra)
    fields = schemas[bodies.Assignment.__name__]["properties"]
    fields["board"]["enum"] = list(boards)
    fields["source"]["enum"] = list(sources)
    return schemas


def report_multipart(schema: Schema) -> Schema:
    """The multipart form of feedback/resolve, from its JSON ``schema``: the same
    fields as text (integers as digits) and any number of files for ``attachments``."""
    properties: Schema = {}
    for name, field in schema["properties"].items():
        if name == "attachments":
            continue
        number = next(
            (s for s in (field, *field.get("anyOf", ())) if s.get("type") == "integer"), None
        )
        if number is not None:
            top = number["maximum"]
            field = {"type": "string", "pattern": f"^[0-9]{{1,{len(str(top))}}}$",
                     "description": f"{number['minimum']}-{top}."}
        properties[name] = field
    properties["files"] = {
        "type": "array",
        "items": {"type": "string", "format": "binary"},
        "description": "Files (any part with a filename), each at most api.max_attachment_bytes.",
    }
    return {"type": "object", "properties": properties, "required": schema["required"]}


def components(requests: dict[str, Schema]) -> Schema:
    """The shared schemas (answers, and the request bodies ``requests``) and refusals."""
    deadlines = obj(
        {k: {"type": ["string", "null"], "format": "date-time"}
         for k in ("deploy", "feedback", "resolve")},
    ) | {"additionalProperties": True}
    freshness = {
        "type": "object",
        "description": "For each node drawn on: how fresh this node's copy of it is.",
        "additionalProperties": {"type": "object"},
    }
    summary = {
        "type": "object",
        "required": ["id", "title", "board", "class", "status", "colour", "progress"],
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "board": {"type": "string"},
            "class": {"type": "string", "enum": ["general", "major", "explicit"]},
            "status": {"$ref": "#/components/schemas/Status"},
            "colour": {"$ref": "#/components/schemas/Colour"},
            "overdue": {"type": "boolean"},
            "assigner": {"type": "string"},
            "assignee": {"type": "string"},
            "assignee_unit": {"type": ["string", "null"]},
            "lead_unit": {"type": ["string", "null"]},
            "parent_item": {"type": ["string", "null"]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "deadlines": deadlines,
            "resolve_in_s": {"type": ["integer", "null"],
                             "description": "Seconds to the resolve deadline (negative: late)."},
            "assigned_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "urges": {
                "type": "object",
                "description": "Urges (催办): how many, and the last one's time and node.",
                "properties": {
                    "count": {"type": "integer", "minimum": 0},
                    "last_at": {"type": ["string", "null"], "format": "date-time"},
                    "last_by": {"type": ["string", "null"]},
                },
            },
            "grade": {
                "type": ["string", "null"],
                "enum": ["excellent", "qualified", "unqualified", None],
                "description": "The closing grade (评价) the accepting review signed.",
            },
            "points": {
                "type": ["number", "null"],
                "description": "The item's incentive points (积分): the sum of the point "
                "lines its events earned (docs/reports.md), every quarter together.",
            },
        },
    }
    reasons = "\n".join(
        f"- {status} `{code}`: {meaning}"
        for status, codes in REASONS.items()
        for code, meaning in codes.items()
    )
    return {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "A token from `duban token NAME`."},
            "session": {"type": "apiKey", "in": "cookie", "name": "duban_session",
                        "description": "Set by POST /api/v1/login; lasts 12 hours."},
        },
        "schemas": _disjoint(requests, {
            "Error": {
                "type": "object",
                "required": ["error", "detail", "field"],
                "properties": {
                    "error": {"type": "string", "description": "Stable reason code:\n" + reasons},
                    "detail": {"type": "string", "description": "Human-readable."},
                    "field": {"type": ["string", "null"],
                              "description": "The field or query parameter at fault."},
                },
                "x-reason-codes": {str(s): list(c) for s, c in REASONS.items()},
            },
            "Status": {
                "type": "string",
                "enum": [s.value for s in Status],
                "description": "\n".join(f"- `{k}`: {v}" for k, v in STATUS_MEANINGS.items()),
            },
            "Colour": {"type": "string", "enum": list(COLOURS),
                       "description": "grey: done; red: a deadline passed with its step "
                       "undone; yellow: inside a reminder window; green otherwise."},
            "User": obj({"name": {"type": "string"}, "display_name": {"type": "string"},
                         "role": {"type": "string",
                                  "enum": ["leader", "supervisor", "unit_head", "operator",
                                           "viewer"]},
                         "unit": {"type": ["string", "null"]}},
                        ("name", "display_name", "role", "unit")),
            "Deadlines": deadlines,
            "ItemSummary": summary,
            "Freshness": freshness,
            "Assigned": {
                "type": "object",
                "required": ["id", "status", "assignee", "deadlines"],
                "properties": {
                    "id": {"type": "string"},
                    "status": {"const": "assigned"},
                    "assignee": {"type": "string"},
                    "assignee_unit": {"type": ["string", "null"]},
                    "deadlines": deadlines,
                    "calendar": {"type": "string"},
                    "calendar_estimated": {"type": "boolean",
                                           "description": "The holiday table did not cover "
                                           "the deadline's year: working days estimated."},
                    "cascade": {"type": ["string", "null"],
                                "description": "The level the item goes down to."},
                },
            },
        }),
        "responses": {
            str(status): {
                "description": f"Refused: {', '.join(codes)}",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
            for status, codes in REASONS.items()
        },
    }


def _disjoint(requests: dict[str, Schema], answers: dict[str, Schema]) -> dict[str, Schema]:
    clash = requests.keys() & answers.keys()
    assert not clash, f"a request body and an answer are both named {sorted(clash)}"
    return requests | answers


# ------------------------------------------------------------------ operations


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _ok(description: str, schema: Schema, status: int = 200) -> dict[str, Any]:
    return {str(status): {"description": description, "content": _json(schema)}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/{s}"} for s in (*statuses, 500)}


def _body(kind: type[bodies.Body], max_bytes: str, *, multipart: Schema | None = None) -> Schema:
    content = _json(bodies.ref(kind))
    if multipart is not None:
        content["multipart/form-data"] = {"schema": multipart}
    note = f"At most {max_bytes} bytes (413 too_large beyond). {BODY_RULES}"
    return {"required": True, "content": content, "description": note}


def _summary(kind: type[bodies.Body]) -> str:
    """The first paragraph of a body's docstring, on one line."""
    return " ".join((kind.__doc__ or "").strip().split("\n\n")[0].split())


ITEM_PARAM = {"name": "item", "in": "path", "required": True,
              "schema": {"type": "string", "pattern": bodies.ITEM_ID},
              "description": "Item id: the assigning node's id, '-', a sequence number."}


def ledger_parameters(boards: tuple[str, ...]) -> list[Schema]:
    def q(name: str, schema: Schema, description: str) -> Schema:
        return {"name": name, "in": "query", "required": False, "schema": schema,
                "description": description}

    def csv(values: list[str], description: str) -> Schema:
        return q("", {"type": "array", "items": {"type": "string", "enum": values}},
                 description + " Comma-separated; any of them.") | {"style": "form",
                                                                     "explode": False}

    sorts = [s for name in SORTS for s in (name, f"-{name}")]
    return [
        q("scope", {"type": "string", "maxLength": 64},
          "A node in this node's subtree (default: this node)."),
        q("depth", {"type": "string", "enum": ["subtree", "node"], "default": "subtree"},
          "subtree: the scope and everything below; node: items assigned to the scope only."),
        csv([s.value for s in Status], "Statuses.") | {"name": "status"},
        csv(list(COLOURS), "Colours now.") | {"name": "colour"},
        csv(list(boards), "Boards.") | {"name": "board"},
        q("unit", {"type": "string", "maxLength": 64}, "Lead or handling unit code."),
        q("overdue", {"type": "string", "enum": ["true", "false", "1", "0"]},
          "true: red items only; false: no red items."),
        q("due_from", {"type": "string", "maxLength": bodies.MAX_MOMENT_TEXT},
          "Resolve deadline at or after (date or date-time)."),
        q("due_to", {"type": "string", "maxLength": bodies.MAX_MOMENT_TEXT},
          "Resolve deadline at or before (date: the end of that day)."),
        q("q", {"type": "string", "maxLength": 100}, "Words in title or description."),
        q("assigner", {"type": "string", "maxLength": 64}, "Assigning node id."),
        q("assignee", {"type": "string", "maxLength": 64}, "Handling node id."),
        q("parent_item", {"type": "string", "maxLength": 90}, "Sub-items of this item."),
        q("sort", {"type": "string", "enum": sorts, "default": "resolve_due"},
          "Order; '-' first for descending. Ties by id."),
        q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
          "Page size."),
        q("offset", {"type": "integer", "minimum": 0, "maximum": 10_000_000, "default": 0},
          "Items to skip."),
    ]


def build_document(config: Config) -> Schema:
    """The whole document for a node with ``config``."""
    boards = known_boards(str(config["workflow.extra_boards"]))
    sources = known_sources(str(config["workflow.extra_sources"]))
    requests = request_schemas(boards, sources)
    max_body = str(config["api.max_body_bytes"])
    max_file = str(config["api.max_attachment_bytes"])
    public: list[Schema] = []
    paths: dict[str, Any] = {
        PATH: {"get": {
            "operationId": "openapi", "summary": "This document.", "security": public,
            "responses": _ok("The OpenAPI 3.1 document.", {"type": "object"}),
        }},
        "/api/v1/login": {"post": {
            "operationId": "login", "security": public,
            "summary": "Sign in with name and password; sets the duban_session cookie.",
            "description": "5 failures for one name from one address within 15 minutes "
            "give 429 too_many_attempts with Retry-After, whatever the password.",
            "requestBody": _body(bodies.Login, str(bodies.SMALL_JSON_BYTES)),
            "responses": _ok("Signed in.", obj({"user": {"$ref": "#/components/schemas/User"},
                                               "node": {"type": "string"}}, ("user", "node")))
            | _errors(400, 401, 403, 413, 415, 429),
        }},
        "/api/v1/logout": {"post": {
            "operationId": "logout", "security": public,
            "summary": "End the session of the duban_session cookie (if any).",
            "responses": _ok("Signed out.", obj({"ok": {"const": True}}, ("ok",)))
            | _errors(403),
        }},
        "/api/v1/me": {"get": {
            "operationId": "me", "summary": "Who the credentials belong to, and this node.",
            "responses": _ok("The person.", obj({"user": {"$ref": "#/components/schemas/User"},
                                                "node": {"type": "string"}}, ("user", "node")))
            | _errors(401),
        }},
        "/api/v1/status": {"get": {
            "operationId": "status", "security": public,
            "summary": "The node and its sync links (public, for monitoring).",
            "responses": _ok("Status.", {"type": "object",
                                         "required": ["node", "now", "counts", "links"]}),
        }},
        "/api/v1/items": {
            "get": {
                "operationId": "listItems",
                "summary": "The ledger (台账): items in a subtree, filtered, sorted, paged.",
                "parameters": ledger_parameters(boards),
                "responses": _ok("A page of items.", {
                    "type": "object",
                    "required": ["items", "total", "limit", "offset", "now", "nodes"],
                    "properties": {
                        "items": {"type": "array",
                                  "items": {"$ref": "#/components/schemas/ItemSummary"}},
                        "total": {"type": "integer", "minimum": 0,
                                  "description": "matching items; a lower bound when "
                                  "total_exact is false (large subtrees are counted up "
                                  "to 1,000 or just past the current page)"},
                        "total_exact": {"type": "boolean"},
                        "limit": {"type": "integer"},
                        "offset": {"type": "integer"},
                        "now": {"type": "string", "format": "date-time"},
                        "nodes": {"$ref": "#/components/schemas/Freshness"},
                    },
                }) | _errors(400, 401, 403, 404),
            },
            "post": {
                "operationId": "createItem",
                "summary": "Assign a new item to a unit of this node or a node below.",
                "requestBody": _body(bodies.Assignment, max_body),
                "responses": _ok("Assigned.", {"$ref": "#/components/schemas/Assigned"}, 201)
                | _errors(400, 401, 403, 409, 413, 415),
            },
        },
        "/api/v1/items/{item}": {"get": {
            "operationId": "getItem",
            "summary": "One item: its state, colour, deadlines, sub-items and its signed "
            "history, every signature checked again.",
            "parameters": [ITEM_PARAM],
            "responses": _ok("The item.", {
                "type": "object",
                "required": ["id", "item", "status", "colour", "deadlines", "history",
                             "verified", "sub_items", "rollup", "nodes"],
                "properties": {
                    "id": {"type": "string"},
                    "item": {"type": "object", "description": "The folded state."},
                    "status": {"$ref": "#/components/schemas/Status"},
                    "colour": {"$ref": "#/components/schemas/Colour"},
                    "deadlines": {"$ref": "#/components/schemas/Deadlines"},
                    "history": {"type": "array", "items": {"type": "object"}},
                    "verified": {"type": "boolean"},
                    "files": {"type": "array", "items": obj({
                        "report": {"type": "string"},
                        "digest": {"type": "string", "pattern": bodies.DIGEST},
                        "name": {"type": ["string", "null"]},
                        "size": {"type": ["integer", "null"]},
                        "type": {"type": ["string", "null"]},
                        "status": {"type": "string",
                                   "enum": ["held", "receiving", "waiting"]},
                        "received": {"type": "integer"},
                        "percent": {"type": "integer"},
                    })},
                    "sub_items": {"type": "array", "items": {"type": "object"}},
                    "rollup": {"type": "object"},
                    "nodes": {"$ref": "#/components/schemas/Freshness"},
                },
            }) | _errors(401, 403, 404),
        }},
        "/api/v1/attachments": {"post": {
            "operationId": "uploadAttachment",
            "summary": "Store a file (the raw body); answer its SHA-256 to cite in "
            "feedback/resolve.",
            "parameters": [{"name": "X-Filename", "in": "header", "required": False,
                            "schema": {"type": "string", "maxLength": 200}}],
            "requestBody": {"required": True, "description": f"At most {max_file} bytes.",
                            "content": {"application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}}}},
            "responses": _ok("Stored.", obj({"digest": {"type": "string", "pattern": bodies.DIGEST},
                                            "size": {"type": "integer"}},
                                           ("digest", "size")), 201)
            | _errors(400, 401, 403, 413),
        }},
        "/api/v1/attachments/{digest}": {"get": {
            "operationId": "getAttachment",
            "summary": "The bytes of a file held here, for anyone who may read an item "
            "whose report names it (files travel up the tree behind their reports).",
            "parameters": [{"name": "digest", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": bodies.DIGEST}}],
            "responses": {"200": {"description": "The file, with its content type.",
                                  "content": {"*/*": {"schema": {"type": "string",
                                                                 "format": "binary"}}}}}
            | _errors(401, 403, 404),
        }},
    }
    act_answer = obj({"id": {"type": "string"}, "event": {"type": "string"},
                      "seq": {"type": "integer"},
                      "status": {"$ref": "#/components/schemas/Status"},
                      "progress": {"type": "integer"}},
                     ("id", "event", "seq", "status", "progress"))
    for action, kind in bodies.ACTIONS.items():
        multipart = None
        what = _summary(kind)
        if action in REPORTS:
            multipart = report_multipart(requests[kind.__name__])
            what += " Also multipart/form-data with files."
        answer = (
            _ok("Sub-items assigned.", {"type": "object", "required": ["id", "sub_items"]}, 201)
            if action == "decompose"
            else _ok("Signed and stored; it syncs to the other node.", act_answer)
        )
        paths[f"/api/v1/items/{{item}}/{action}"] = {"post": {
            "operationId": f"item_{action}",
            "summary": what,
            "description": f"Done by the {ACTION_SIDES[action]}.",
            "parameters": [ITEM_PARAM],
            "requestBody": _body(kind, max_body, multipart=multipart),
            "responses": answer | _errors(400, 401, 403, 404, 409, 413, 415),
        }}
    paths.update(cascade_paths(ITEM_PARAM))
    paths.update(reminder_paths())
    paths.update(report_paths(ledger_parameters(boards)))
    paths.update(unit_paths())
    paths.update(todo_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Duban node API",
            "version": "1",
            "description": "The JSON API of one Duban node (one government level). Errors "
            "are `{error, detail, field}` with a stable reason code; times are ISO "
            "date-times in China time (UTC+8). " + BODY_RULES + " See docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": components(requests),
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(build_document(request.app[CONFIG]))


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, openapi_json)
