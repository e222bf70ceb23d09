"""The JSON API of reconciliation: upload a report and start a run, follow it, read
its items, export them, delete it.

The upload is ``multipart/form-data``: the ``report`` part is streamed to a file
(``reconciliation_runs.read_upload``, shared with the web pages), the ``options``
part is JSON. The run goes on in the background (``reconciling.Reconciler``); the
POST waits up to ``POST_WAIT_S`` and answers 201 with a finished run, else 202 with
a running one to poll.
"""

from __future__ import annotations

import json

from aiohttp import BodyPartReader, web

from monitor.reconciling.options import RunOptions, parse_options
from monitor.storage.reconciliations import DEFAULT_PAGE, MAX_PAGE
from monitor.web import audit
from monitor.web import reconciliation_runs as runs
from monitor.web.api.routes import MAX_JSON_BODY_BYTES
from monitor.web.appkeys import RECONCILER, RECONCILIATIONS
from monitor.web.errors import BadRequest
from monitor.web.inputs import check_json, whole_number
from monitor.web.scopes import access_of

POST_WAIT_S = 2.0


def run_id(request: web.Request) -> int:
    return runs.run_id(request.match_info["run_id"])


def page_limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    return DEFAULT_PAGE if raw is None else whole_number("limit", raw, 1, MAX_PAGE)


async def read_options(part: BodyPartReader) -> RunOptions:
    raw = bytearray()
    while chunk := await part.read_chunk(runs.CHUNK_BYTES):
        raw += chunk
        if len(raw) > MAX_JSON_BODY_BYTES:
            raise BadRequest("invalid_options", f"options: at most {MAX_JSON_BODY_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("invalid_options", "options: not valid JSON") from None
    check_json(doc, "options")
    return parse_options(doc)


async def start_reconciliation(request: web.Request) -> web.Response:
    found: list[RunOptions] = []

    async def on_part(part: BodyPartReader) -> None:
        if part.name != "options" or found:
            raise BadRequest("invalid_body", f"unexpected part {str(part.name)[:40]!r}")
        found.append(await read_options(part))

    request.app[RECONCILER].check_room()  # before a long upload; start checks again
    upload = await runs.read_upload(request, on_part)
    if not found:
        await runs.discard(upload)
        raise BadRequest("invalid_options", "options: the part is required")
    if upload is None:
        raise BadRequest("missing_report", "report: the file part is required")
    ident = await runs.start_run(request, upload, found[0])
    audit.note_run(request, ident, found[0])
    await request.app[RECONCILER].wait(ident, POST_WAIT_S)
    run = await request.app[RECONCILIATIONS].get(ident)
    return web.json_response(
        run,
        status=202 if run["status"] == "running" else 201,
        headers={"Location": f"/api/reconciliations/{ident}"},
    )


async def list_reconciliations(request: web.Request) -> web.Response:
    items, next_cursor = await request.app[RECONCILIATIONS].runs(
        limit=page_limit(request),
        cursor=request.query.get("cursor"),
        within=access_of(request).endpoint_ids,
    )
    return web.json_response({"items": items, "next_cursor": next_cursor})


async def get_reconciliation(request: web.Request) -> web.Response:
    return web.json_response(await request.app[RECONCILIATIONS].get(run_id(request)))


async def list_items(request: web.Request) -> web.Response:
    items, next_cursor = await request.app[RECONCILIATIONS].items(
        run_id(request),
        kind=runs.item_kind(request.query.get("kind")),
        limit=page_limit(request),
        cursor=request.query.get("cursor"),
    )
    return web.json_response({"items": items, "next_cursor": next_cursor})


async def export_items(request: web.Request) -> web.StreamResponse:
    """Every item (or those of ``kind``), streamed as CSV or NDJSON."""
    kind = runs.item_kind(request.query.get("kind"))
    return await runs.export_items(
        request, run_id(request), kind, request.query.get("format", "csv")
    )


async def delete_reconciliation(request: web.Request) -> web.Response:
    await request.app[RECONCILIATIONS].delete(run_id(request))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/reconciliations", start_reconciliation)
    app.router.add_get("/api/reconciliations", list_reconciliations)
    app.router.add_get("/api/reconciliations/{run_id}", get_reconciliation)
    app.router.add_delete("/api/reconciliations/{run_id}", delete_reconciliation)
    app.router.add_get("/api/reconciliations/{run_id}/items", list_items)
    app.router.add_get("/api/reconciliations/{run_id}/export", export_items)
