"""Report endpoints (authentication required, like the ledger).

- ``GET /api/v1/colours``: 绿黄红 counts now, per node and per unit;
- ``GET /api/v1/reports/weekly?scope=&week=2026-W47&format=json|text``;
- ``GET /api/v1/reports/quarterly?scope=&quarter=2026Q4&format=json|text``;
- ``GET /api/v1/scores?scope=&quarter=``: standings with every point line and
  the event ids behind it;
- ``GET /api/v1/export/ledger.xlsx?<ledger filters>``: the ledger as Excel.

Any person of the node may read them for a scope in its subtree (as the ledger).
``format=text`` answers Markdown in Chinese (``text/markdown``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import web

from node.errors import bad
from node.http.api.auth import current_user
from node.http.services import REPORTS
from node.queries import assemble, excel, render

logger = logging.getLogger(__name__)

FORMATS = ("json", "text")


def _params(request: web.Request, allowed: frozenset[str]) -> dict[str, str]:
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise bad(unknown[0][:64], "is not a known parameter", "unknown_field")
    params = {key: request.query[key] for key in request.query}
    if params.get("format", "json") not in FORMATS:
        raise bad("format", "must be json or text")
    for key in ("scope", "week", "quarter"):
        if len(params.get(key, "")) > 64:
            raise bad(key, "at most 64 characters")
    return params


def _answer(
    report: dict[str, Any], params: Mapping[str, str], text: Callable[[Any], str]
) -> web.Response:
    if params.get("format") == "text":
        return web.Response(text=text(report), content_type="text/markdown", charset="utf-8")
    return web.json_response(report)


async def weekly(request: web.Request) -> web.Response:
    await current_user(request)
    params = _params(request, frozenset({"scope", "week", "format"}))
    report = await request.app[REPORTS].weekly_report(
        scope=params.get("scope"), week=params.get("week")
    )
    return _answer(report, params, render.weekly_text)


async def quarterly(request: web.Request) -> web.Response:
    await current_user(request)
    params = _params(request, frozenset({"scope", "quarter", "format"}))
    report = await request.app[REPORTS].quarterly_report(
        scope=params.get("scope"), quarter=params.get("quarter")
    )
    return _answer(report, params, render.quarterly_text)


async def scores(request: web.Request) -> web.Response:
    await current_user(request)
    params = _params(request, frozenset({"scope", "quarter"}))
    report = await request.app[REPORTS].quarter_scores(
        scope=params.get("scope"), quarter=params.get("quarter")
    )
    return web.json_response(report)


async def colours(request: web.Request) -> web.Response:
    await current_user(request)
    return web.json_response(await request.app[REPORTS].colour_counts(request.query))


async def export_ledger(request: web.Request) -> web.Response:
    await current_user(request)
    data, filename, count = await request.app[REPORTS].ledger_xlsx(request.query)
    readable = quote(filename.replace("ledger-", "台账-", 1))
    return web.Response(
        body=data,
        content_type=excel.CONTENT_TYPE,
        headers={
            "Content-Disposition": f"attachment; filename=\"{filename}\"; "
            f"filename*=UTF-8''{readable}",
            "X-Item-Count": str(count),
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/colours", colours)
    app.router.add_get("/api/v1/reports/weekly", weekly)
    app.router.add_get("/api/v1/reports/quarterly", quarterly)
    app.router.add_get("/api/v1/scores", scores)
    app.router.add_get("/api/v1/export/ledger.xlsx", export_ledger)


# -- the OpenAPI description of these routes -----------------------------------------------


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def openapi_paths(ledger: list[dict[str, Any]]) -> dict[str, Any]:
    """Path items for ``node.http.api.openapi.build_document``, given its ledger parameters:
    ``paths |= openapi_paths(ledger_parameters(boards))``."""
    scope = _query("scope", {"type": "string", "maxLength": 64},
                   "A node in this node's subtree (default: this node).")
    week = _query("week", {"type": "string", "maxLength": 64},
                  "ISO week in China time, e.g. 2026-W47 (default: this week).")
    quarter = _query("quarter", {"type": "string", "maxLength": 64},
                     "Quarter in China time, e.g. 2026Q4 (default: this quarter).")
    fmt = _query("format", {"type": "string", "enum": list(FORMATS), "default": "json"},
                 "json, or text for Markdown in Chinese.")
    errors = {str(s): {"description": "Refused: {error, detail, field}."}
              for s in (400, 401, 403, 404)}
    report = {"type": "object"}
    colour_filters = [p for p in ledger if p["name"] not in assemble._NOT_COLOUR_FILTERS]

    def get(op: str, summary: str, params: list[dict[str, Any]], ok: dict[str, Any]) -> Any:
        return {"get": {"operationId": op, "summary": summary, "parameters": params,
                        "responses": {"200": ok, **errors}}}

    json_ok = {"description": "The report.", "content": {"application/json": {"schema": report}}}
    both_ok = {"description": "The report (JSON, or Markdown with format=text).",
               "content": {"application/json": {"schema": report},
                           "text/markdown": {"schema": {"type": "string"}}}}
    xlsx_ok = {"description": "The ledger workbook.",
               "content": {excel.CONTENT_TYPE: {"schema": {"type": "string",
                                                           "format": "binary"}}}}
    return {
        "/api/v1/colours": get("colours", "绿黄红 counts now per node and per unit.",
                               colour_filters, json_ok),
        "/api/v1/reports/weekly": get("weeklyReport", "The weekly summary (每周汇总).",
                                      [scope, week, fmt], both_ok),
        "/api/v1/reports/quarterly": get("quarterlyReport", "The quarterly bulletin (季度通报).",
                                         [scope, quarter, fmt], both_ok),
        "/api/v1/scores": get("scores", "Incentive points per unit and node, every line with "
                              "its event ids.", [scope, quarter], json_ok),
        "/api/v1/export/ledger.xlsx": get("exportLedger", "The ledger (台账) as Excel; the "
                                          "ledger's filters; all rows unless limit/offset.",
                                          ledger, xlsx_ok),
    }
