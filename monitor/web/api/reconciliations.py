"""The JSON API of reconciliation: upload a report and start a run, follow it, read
its items, export them, delete it.

The upload is ``multipart/form-data``: the ``report`` part is streamed to a file
under DATA_DIR/reconciliations (never held in memory; 413 past
``reconcile_max_bytes``), the ``options`` part is JSON. The run goes on in the
background (``reconciling.Reconciler``); the POST waits up to ``POST_WAIT_S`` and
answers 201 with a finished run, else 202 with a running one to poll.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import IO

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from monitor.reconciling.items import ItemLines
from monitor.reconciling.options import RunOptions, parse_options
from monitor.storage.reconciliations import DEFAULT_PAGE, ITEM_KINDS, MAX_PAGE
from monitor.web import streams
from monitor.web.api.export import FORMATS
from monitor.web.api.routes import MAX_JSON_BODY_BYTES, BodyTooLarge
from monitor.web.appkeys import CONFIG, RECONCILER, RECONCILIATIONS
from monitor.web.errors import BadRequest, NotFound
from monitor.web.inputs import check_json, database_id, whole_number

UPLOAD_DIR = "reconciliations"
POST_WAIT_S = 2.0
CHUNK_BYTES = 256 * 1024


def run_id(request: web.Request) -> int:
    raw = request.match_info["run_id"]
    ident = database_id(raw)
    if ident is None:
        raise NotFound("reconciliation_not_found", f"no reconciliation with id {raw[:40]!r}")
    return ident


def page_limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    return DEFAULT_PAGE if raw is None else whole_number("limit", raw, 1, MAX_PAGE)


async def read_options(part: BodyPartReader) -> RunOptions:
    raw = bytearray()
    while chunk := await part.read_chunk(CHUNK_BYTES):
        raw += chunk
        if len(raw) > MAX_JSON_BODY_BYTES:
            raise BadRequest("invalid_options", f"options: at most {MAX_JSON_BODY_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("invalid_options", "options: not valid JSON") from None
    check_json(doc, "options")
    return parse_options(doc)


async def save_report(part: BodyPartReader, path: Path, limit: int) -> None:
    """Stream the part to ``path``; 413 once it passes ``limit`` bytes."""
    out: IO[bytes] = await asyncio.to_thread(open, path, "wb")
    size = 0
    try:
        while chunk := await part.read_chunk(CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge("report_too_large", f"report: at most {limit} bytes")
            await asyncio.to_thread(out.write, chunk)
    finally:
        await asyncio.to_thread(out.close)


async def read_upload(request: web.Request, directory: Path) -> tuple[Path, RunOptions]:
    """The report saved to a file of its own and the options; the file is deleted
    when anything about the upload is wrong."""
    if request.content_type != "multipart/form-data":
        raise BadRequest(
            "invalid_body", "multipart/form-data with a report part and an options part"
        )
    limit = request.app[CONFIG].reconcile_max_bytes
    path = directory / f"{uuid.uuid4().hex}.upload"
    saved, options = False, None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("invalid_body", "a nested multipart part")
            if part.name == "report" and not saved:
                await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
                await save_report(part, path, limit)
                saved = True
            elif part.name == "options" and options is None:
                options = await read_options(part)
            else:
                raise BadRequest("invalid_body", f"unexpected part {str(part.name)[:40]!r}")
        if options is None:
            raise BadRequest("invalid_options", "options: the part is required")
        if not saved:
            raise BadRequest("missing_report", "report: the file part is required")
    except (ValueError, RuntimeError, AssertionError, HttpProcessingError):
        # aiohttp's multipart reader on a malformed body (bad boundary or part header).
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise BadRequest("invalid_body", "not a valid multipart/form-data body") from None
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    return path, options


async def start_reconciliation(request: web.Request) -> web.Response:
    directory = request.app[CONFIG].data_dir / UPLOAD_DIR
    store, reconciler = request.app[RECONCILIATIONS], request.app[RECONCILER]
    reconciler.check_room()  # before a long upload; start checks again
    path, options = await read_upload(request, directory)
    try:
        unknown = await store.unknown_endpoints(options.endpoint_ids)
        if unknown:
            raise BadRequest(
                "unknown_endpoints", f"endpoint_ids: no endpoint {', '.join(map(str, unknown))}"
            )
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    ident = await reconciler.start(path, options)  # deletes the file when it refuses
    await reconciler.wait(ident, POST_WAIT_S)
    run = await store.get(ident)
    return web.json_response(
        run,
        status=202 if run["status"] == "running" else 201,
        headers={"Location": f"/api/reconciliations/{ident}"},
    )


async def list_reconciliations(request: web.Request) -> web.Response:
    items, next_cursor = await request.app[RECONCILIATIONS].runs(
        limit=page_limit(request), cursor=request.query.get("cursor")
    )
    return web.json_response({"items": items, "next_cursor": next_cursor})


async def get_reconciliation(request: web.Request) -> web.Response:
    return web.json_response(await request.app[RECONCILIATIONS].get(run_id(request)))


def item_kind(request: web.Request) -> str | None:
    kind = request.query.get("kind")
    if kind is not None and kind not in ITEM_KINDS:
        raise BadRequest("invalid_query", f"kind: one of {', '.join(ITEM_KINDS)}")
    return kind


async def list_items(request: web.Request) -> web.Response:
    items, next_cursor = await request.app[RECONCILIATIONS].items(
        run_id(request),
        kind=item_kind(request),
        limit=page_limit(request),
        cursor=request.query.get("cursor"),
    )
    return web.json_response({"items": items, "next_cursor": next_cursor})


async def export_items(request: web.Request) -> web.StreamResponse:
    """Every item (or those of ``kind``), streamed as CSV or NDJSON."""
    ident, kind = run_id(request), item_kind(request)
    fmt = request.query.get("format", "csv")
    if fmt not in FORMATS:
        raise BadRequest("invalid_query", f"format: one of {', '.join(FORMATS)}")
    store = request.app[RECONCILIATIONS]
    await store.get(ident)  # 404 before the head is out
    response = web.StreamResponse(
        headers={
            "Content-Type": FORMATS[fmt],
            "Content-Disposition": f'attachment; filename="reconciliation-{ident}.{fmt}"',
            "Cache-Control": "no-store",
        }
    )
    lines = ItemLines(fmt)
    async with streams.prepared(response, request):
        async for item in store.stream_items(ident, kind=kind):
            lines.add(item)
            if (chunk := lines.take()) is not None:
                await response.write(chunk.encode())
        await response.write((lines.take(at_least=0) or "").encode())
        await response.write_eof()
    return response


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
