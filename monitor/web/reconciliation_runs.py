"""What the reconciliation API and the reconciliation pages share: the uploaded report
spooled to a file, the run started from it, and a run's items exported.

Both take a ``multipart/form-data`` upload whose ``report`` part is streamed to a file
under DATA_DIR/reconciliations (never held in memory; 413 past
``reconcile_max_bytes``) and whose other parts differ: the API's one JSON ``options``
part, the page's form fields. So ``read_upload`` walks the parts, saves the report
and hands every other part to the caller's ``on_part``; the file is deleted whenever
anything about the upload is wrong, and once a run starts it is the run's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from monitor.reconciling.items import EXPORT_TYPES, ItemLines
from monitor.reconciling.options import RunOptions
from monitor.storage.reconciliations import ITEM_KINDS
from monitor.web import streams
from monitor.web.appkeys import CONFIG, RECONCILER, RECONCILIATIONS
from monitor.web.errors import BadRequest, BodyTooLarge, NotFound
from monitor.web.inputs import database_id
from monitor.web.scopes import access_of

UPLOAD_DIR = "reconciliations"
CHUNK_BYTES = 256 * 1024

PartHandler = Callable[[BodyPartReader], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Upload:
    """The saved report part: where it is, the name the browser gave it, its size."""

    path: Path
    filename: str
    size: int


def run_id(raw: str) -> int:
    """A run's id from a path; an id that cannot exist is a 404, as an unknown one is."""
    ident = database_id(raw)
    if ident is None:
        raise NotFound("reconciliation_not_found", f"no reconciliation with id {raw[:40]!r}")
    return ident


def item_kind(raw: str | None) -> str | None:
    if raw is not None and raw not in ITEM_KINDS:
        raise BadRequest("invalid_query", f"kind: one of {', '.join(ITEM_KINDS)}")
    return raw


async def save_report(part: BodyPartReader, path: Path, limit: int) -> int:
    """Stream the part to ``path``; 413 once it passes ``limit`` bytes. Returns its size."""
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
    return size


async def read_upload(
    request: web.Request,
    on_part: PartHandler,
    before_report: Callable[[], None] | None = None,
) -> Upload | None:
    """Walk the multipart body: the first ``report`` part saved to a file of its own,
    every other part to ``on_part`` (which raises for one it does not take).
    ``before_report`` runs before a byte of the report is written (the page checks
    its CSRF token there). None when there was no report part."""
    if request.content_type != "multipart/form-data":
        raise BadRequest("invalid_body", "multipart/form-data with a report part")
    directory = request.app[CONFIG].data_dir / UPLOAD_DIR
    limit = request.app[CONFIG].reconcile_max_bytes
    path = directory / f"{uuid.uuid4().hex}.upload"
    upload = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("invalid_body", "a nested multipart part")
            if part.name == "report" and upload is None:
                if before_report is not None:
                    before_report()
                await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
                size = await save_report(part, path, limit)
                upload = Upload(path, part.filename or "", size)
            else:
                await on_part(part)
    except (ValueError, RuntimeError, AssertionError, HttpProcessingError):
        # aiohttp's multipart reader on a malformed body (bad boundary or part header).
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise BadRequest("invalid_body", "not a valid multipart/form-data body") from None
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    return upload


async def discard(upload: Upload | None) -> None:
    """Delete an upload no run will read."""
    if upload is not None:
        await asyncio.to_thread(upload.path.unlink, missing_ok=True)


async def start_run(request: web.Request, upload: Upload, options: RunOptions) -> int:
    """Start the run of an uploaded report (``Reconciler.start``) and return its id;
    unknown endpoints, a bad file or a mapping that does not fit it are refused
    (InvalidInput) and the file deleted."""
    store, reconciler = request.app[RECONCILIATIONS], request.app[RECONCILER]
    try:
        # An endpoint the caller's token may not see is as unknown as one that is gone.
        unknown = await store.unknown_endpoints(options.endpoint_ids)
        access = access_of(request)
        unknown += [i for i in options.endpoint_ids if not access.sees(i) and i not in unknown]
        if unknown:
            raise BadRequest(
                "unknown_endpoints", f"endpoint_ids: no endpoint {', '.join(map(str, unknown))}"
            )
    except BaseException:
        await discard(upload)
        raise
    return await reconciler.start(upload.path, options)  # deletes the file when it refuses


async def export_items(
    request: web.Request, ident: int, kind: str | None, fmt: str
) -> web.StreamResponse:
    """Every item of the run (or those of ``kind``), streamed as ``fmt`` ("csv" or
    "ndjson"): the API's export and the result page's buttons."""
    if fmt not in EXPORT_TYPES:
        raise BadRequest("invalid_query", f"format: one of {', '.join(EXPORT_TYPES)}")
    store = request.app[RECONCILIATIONS]
    await store.get(ident)  # 404 before the head is out
    name = f"reconciliation-{ident}{'-' + kind if kind else ''}.{fmt}"
    response = web.StreamResponse(
        headers={
            "Content-Type": EXPORT_TYPES[fmt],
            "Content-Disposition": f'attachment; filename="{name}"',
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
