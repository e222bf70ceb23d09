"""Export: an endpoint's hits as CSV or NDJSON, streamed.

The same filters and query as the hit list (``hits.list_query``), read through a
server-side cursor inside a read-only transaction and written out in chunks, so
memory stays bounded whatever the number of hits. Newest first, like the list;
bodies are left out, as in list items (``GET /api/hits/{id}`` has them).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from aiohttp import web

from monitor.storage.hits import HitFilter, hit_json, list_query
from monitor.web import streams
from monitor.web.api.routes import endpoint_id, hit_filter, with_amount
from monitor.web.appkeys import ENDPOINTS, POOL
from monitor.web.errors import BadRequest

FORMATS = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
CURSOR_PREFETCH_ROWS = 500
CHUNK_CHARS = 64 * 1024
# No LIMIT in effect: list_query always pages, so ask for more than can exist.
ALL_ROWS = 2**62
CSV_COLUMNS = (
    "id", "received_at", "method", "path", "query_string", "click_id", "event", "flags",
    "params", "body_params", "content_type", "body_size", "remote_ip", "user_agent",
    "amount", "currency", "forward_state",
)  # fmt: skip
# A cell starting with one of these is a formula to a spreadsheet; senders choose values.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_row(hit: dict[str, Any]) -> list[str]:
    flat = {
        **hit,
        "flags": ",".join(f["flag"] for f in hit["flags"]),
        "params": json.dumps(hit["params"], ensure_ascii=False),
        "body_params": json.dumps(hit["body_params"], ensure_ascii=False),
    }
    return [csv_cell(flat[c]) for c in CSV_COLUMNS]


class _Lines:
    """Collects formatted rows and hands them out in chunks of about CHUNK_CHARS."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer) if fmt == "csv" else None

    def header(self) -> None:
        if self.writer is not None:
            self.writer.writerow(CSV_COLUMNS)

    def add(self, hit: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.writerow(csv_row(hit))
        else:
            self.buffer.write(json.dumps(hit, ensure_ascii=False) + "\n")

    def take(self, at_least: int = CHUNK_CHARS) -> bytes | None:
        if self.buffer.tell() < at_least:
            return None
        data = self.buffer.getvalue().encode("utf-8")
        self.buffer.seek(0)
        self.buffer.truncate()
        return data


def export_format(request: web.Request) -> str:
    fmt = request.query.get("format", "ndjson")
    if fmt not in FORMATS:
        raise BadRequest("invalid_query", f"format: one of {', '.join(FORMATS)}")
    return fmt


async def export_hits(request: web.Request) -> web.StreamResponse:
    return await stream_export(request, endpoint_id(request), export_format(request),
                               hit_filter(request))  # fmt: skip


async def stream_export(
    request: web.Request, ident: int, fmt: str, flt: HitFilter
) -> web.StreamResponse:
    """The endpoint's hits that match ``flt``, streamed as ``fmt``; the API's route and
    the endpoint page's export button (its own filters, session auth) both answer with it."""
    # 404 for an unknown endpoint; its rules read each hit's amount, as in the list.
    rules = (await request.app[ENDPOINTS].get(ident)).rules
    sql, args = list_query(ident, flt, None, ALL_ROWS)
    response = web.StreamResponse(
        headers={
            "Content-Type": FORMATS[fmt],
            "Content-Disposition": f'attachment; filename="endpoint-{ident}-hits.{fmt}"',
            "Cache-Control": "no-store",
        }
    )
    lines = _Lines(fmt)
    lines.header()
    async with request.app[POOL].acquire() as conn, streams.prepared(response, request):
        async with conn.transaction(readonly=True):
            rows = conn.cursor(sql, *args, prefetch=CURSOR_PREFETCH_ROWS)
            await _write_all(
                response,
                lines,
                (with_amount(hit_json(r, with_body=False), rules) async for r in rows),
            )
        await response.write_eof()
    return response


async def _write_all(response: web.StreamResponse, lines: _Lines, hits: Any) -> None:
    async for hit in hits:
        lines.add(hit)
        chunk = lines.take()
        if chunk:
            await response.write(chunk)
    rest = lines.take(at_least=0)
    if rest:
        await response.write(rest)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/endpoints/{endpoint_id}/export", export_hits)
