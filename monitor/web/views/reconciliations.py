"""A reconciliation's page: its progress while it runs (the page refreshes itself, as
the replay page does), then its summary, a tab per kind of item with the items paged
by cursor, each linked to its hits, the exports and the delete button.

Reads the same store as the JSON API (``ReconciliationStore``); the exports are the
API's (``reconciliation_runs.export_items``) for a signed-in browser.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from monitor.model.errors import Conflict
from monitor.reconciling.items import EXPORT_TYPES
from monitor.web import reconciliation_runs as runs
from monitor.web.appkeys import ENDPOINTS, RECONCILIATIONS
from monitor.web.views import reconcile_present as show
from monitor.web.views import render as pages

# While a run goes on its page reloads this often (the Refresh header: no script).
REFRESH_S = 1
ITEMS_PAGE = 50


def add_routes(app: web.Application) -> None:
    app.router.add_get("/reconciliations/{run_id}", run_page)
    app.router.add_get("/reconciliations/{run_id}/export", export_page)
    app.router.add_post("/reconciliations/{run_id}/delete", delete_run)


def run_crumbs(ident: int) -> list[tuple[str, str | None]]:
    return [("Reconcile", "/reconcile"), (f"Run {ident}", None)]


async def run_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    ident = runs.run_id(request.match_info["run_id"])
    run = await request.app[RECONCILIATIONS].get(ident)
    names = {e.id: e.name for e in await request.app[ENDPOINTS].list()}
    done = run["status"] == "done"
    kind = runs.item_kind(request.query.get("kind")) or show.first_kind(run)
    cursor = request.query.get("cursor") or None
    items: list[dict[str, Any]] = []
    next_cursor: str | None = None
    if done:
        items, next_cursor = await request.app[RECONCILIATIONS].items(
            ident, kind=kind, limit=ITEMS_PAGE, cursor=cursor
        )
    options = run["options"] or {}
    context = {
        "run": run,
        "summary": run["summary"] or {},
        "delay": {
            k: show.duration(v)
            for k, v in ((run["summary"] or {}).get("delay_seconds") or {}).items()
        },
        "endpoints": show.endpoint_names(run, names),
        "progress": show.progress(run),
        "columns": show.mapping(run["columns"]),
        "format": show.format_label(run["detected_format"]),
        "delimiter": show.DELIMITERS.get(run["delimiter"] or "", run["delimiter"]),
        "tolerance": options.get("amount_tolerance"),
        "decimal_comma": options.get("decimal_comma"),
        "window_asked": bool(options.get("since") or options.get("until")),
        "tabs": show.tabs(run, kind),
        "kind": kind,
        "kind_help": show.KINDS[kind][2],
        "items": [show.item_row(i, names) for i in items],
        "paged": cursor is not None,
        "first_url": f"?{urlencode({'kind': kind})}",
        "more_url": f"?{urlencode({'kind': kind, 'cursor': next_cursor})}" if next_cursor else "",
        "exports": {
            fmt: f"/reconciliations/{ident}/export?{urlencode({'format': fmt})}"
            for fmt in EXPORT_TYPES
        },
        "error": error,
        "crumbs": run_crumbs(ident),
    }
    response = pages.render(request, "reconciliation.html", context, status=status)
    if run["status"] == "running":
        response.headers["Refresh"] = str(REFRESH_S)
    return response


async def export_page(request: web.Request) -> web.StreamResponse:
    """The result page's export buttons: the API's export, for a signed-in browser."""
    ident = runs.run_id(request.match_info["run_id"])
    kind = runs.item_kind(request.query.get("kind") or None)
    return await runs.export_items(request, ident, kind, request.query.get("format", "csv"))


async def delete_run(request: web.Request) -> web.Response:
    ident = runs.run_id(request.match_info["run_id"])
    await pages.read_form(request)
    try:
        await request.app[RECONCILIATIONS].delete(ident)
    except Conflict as exc:
        return await run_page(request, exc.message, status=409)
    raise web.HTTPSeeOther("/reconcile?deleted=" + str(ident))
