"""The reconcile page: upload a network's conversion report, choose endpoints, window
and column mapping, start a run; the runs so far below the form.

The run starts through the code the JSON API uses (``web.reconciliation_runs``:
the report spooled to a file, ``Reconciler.start``), with the same ``RunOptions``
(``parse_options`` checks the form's values as it checks the API's JSON). The
column selects are filled by the page script from ``POST /reconcile/detect``: the
first bytes of the chosen file read here by the report reader, so what the user
confirms is what the server detects. Without the script they stay "detect
automatically" and the run detects.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import BodyPartReader, web

from monitor.reconciling.options import (
    COLUMN_FIELDS,
    DEFAULT_TOLERANCE,
    MAX_ENDPOINTS,
    parse_options,
)
from monitor.rules.report import open_report
from monitor.web import audit
from monitor.web import reconciliation_runs as runs
from monitor.web.api.routes import read_body
from monitor.web.appkeys import CONFIG, ENDPOINTS, RECONCILER, RECONCILIATIONS
from monitor.web.auth import csrf_ok
from monitor.web.errors import BadRequest, DomainError, http_status
from monitor.web.inputs import check_form, database_id
from monitor.web.scopes import access_of
from monitor.web.views import render as pages
from monitor.web.views.hits import form_time
from monitor.web.views.present import human_size
from monitor.web.views.reconcile_present import format_label, run_row

# The page script sends this much of the chosen file: the reader detects from its head.
DETECT_MAX_BYTES = 64 * 1024
# A run this quick shows its result at once; a longer one its progress page.
START_WAIT_S = 1.0
RUNS_PAGE = 20
MAX_FIELD_BYTES = 4096
MAX_PARTS = MAX_ENDPOINTS + 20
CSRF_HEADER = "X-CSRF-Token"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/reconcile", reconcile_page)
    app.router.add_post("/reconcile", start_reconciliation)
    app.router.add_post("/reconcile/detect", detect_columns)
    app.router.add_get("/reconciliations", runs_list)


async def runs_list(request: web.Request) -> web.Response:
    """The runs are listed under the upload form."""
    raise web.HTTPFound("/reconcile")


async def reconcile_page(
    request: web.Request,
    error: str = "",
    form: Mapping[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    access = access_of(request)
    endpoints = [e for e in await request.app[ENDPOINTS].list() if access.sees(e.id)]
    names = {e.id: e.name for e in endpoints}
    cursor = request.query.get("cursor") or None
    listed, next_cursor = await request.app[RECONCILIATIONS].runs(
        limit=RUNS_PAGE, cursor=cursor, within=access_of(request).endpoint_ids
    )
    if form is None:
        linked = database_id(request.query.get("endpoint", ""))
        form = {"endpoint_ids": [linked] if linked else [], "columns": {}}
    context = {
        "endpoints": endpoints,
        "chosen": set(form.get("endpoint_ids") or []),
        "form": form,
        "fields": COLUMN_FIELDS,
        "default_tolerance": str(DEFAULT_TOLERANCE),
        "max_bytes": request.app[CONFIG].reconcile_max_bytes,
        "max_size": human_size(request.app[CONFIG].reconcile_max_bytes),
        "error": error,
        "runs": [run_row(r, names) for r in listed],
        "more_url": f"?{urlencode({'cursor': next_cursor})}" if next_cursor else "",
        "paged": cursor is not None,
        "deleted": database_id(request.query.get("deleted", "")),
        "crumbs": [("Reconcile", None)],
    }
    return pages.render(request, "reconcile.html", context, status=status)


class FormParts:
    """The page's text fields as the upload's parts bring them: CSRF first (the form
    puts it first), and no report byte is written before it is checked."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.fields: dict[str, list[str]] = {}
        self.count = 0
        self.csrf_checked = False

    async def on_part(self, part: BodyPartReader) -> None:
        self.count += 1
        if self.count > MAX_PARTS or part.filename is not None:
            raise BadRequest("invalid_body", "the form has more fields than this page sends")
        raw = bytearray()
        while chunk := await part.read_chunk(MAX_FIELD_BYTES):
            raw += chunk
            if len(raw) > MAX_FIELD_BYTES:
                raise BadRequest("invalid_field", f"{str(part.name)[:40]}: too long")
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("invalid_field", f"{str(part.name)[:40]}: not UTF-8 text") from None
        name = str(part.name or "")
        check_form({name: value})
        self.fields.setdefault(name, []).append(value)
        if name == "csrf":
            self.check_csrf()

    def check_csrf(self) -> None:
        if not csrf_ok(self.request, self.first("csrf") or None):
            raise web.HTTPForbidden(
                text="the form's CSRF token is missing or stale: reload the page\n"
            )
        self.csrf_checked = True

    def first(self, name: str) -> str:
        return (self.fields.get(name) or [""])[0].strip()

    def values(self) -> dict[str, Any]:
        """What the form is re-shown with after a refusal."""
        ids = [database_id(v.strip()) for v in self.fields.get("endpoint_id", [])]
        return {
            "endpoint_ids": [i for i in ids if i is not None],
            "since": self.first("since"),
            "until": self.first("until"),
            "amount_tolerance": self.first("amount_tolerance"),
            "decimal_comma": self.first("decimal_comma") == "1",
            "columns": {f: self.first(f"column_{f}") for f in COLUMN_FIELDS},
        }


def options_doc(values: Mapping[str, Any], detected: str) -> dict[str, Any]:
    """The form as the API's ``options`` document. A mapping left as detected is sent
    as none, so the run detects it itself and keeps the export's name and date order."""
    if not values["endpoint_ids"]:
        raise BadRequest("invalid_options", "Choose at least one endpoint to reconcile.")
    columns = {f: c for f, c in values["columns"].items() if c}
    try:
        as_detected = columns == json.loads(detected) if detected else False
    except (ValueError, RecursionError):
        as_detected = False
    doc: dict[str, Any] = {
        "endpoint_ids": values["endpoint_ids"],
        "columns": None if as_detected or not columns else columns,
        "decimal_comma": values["decimal_comma"],
        "amount_tolerance": values["amount_tolerance"] or str(DEFAULT_TOLERANCE),
    }
    for key in ("since", "until"):
        when = form_time(key, values[key])
        doc[key] = when.isoformat() if when else None
    return doc


async def start_reconciliation(request: web.Request) -> web.Response:
    parts = FormParts(request)
    upload = None
    try:
        request.app[RECONCILER].check_room()  # before a long upload; start checks again
        upload = await runs.read_upload(request, parts.on_part, before_report=parts.check_csrf)
        if not parts.csrf_checked:
            parts.check_csrf()
        values = parts.values()
        options = parse_options(options_doc(values, parts.first("detected_columns")))
        if upload is None or (upload.size == 0 and not upload.filename):
            raise BadRequest("missing_report", "Choose the report file (a CSV export).")
    except DomainError as exc:
        await runs.discard(upload)
        return await refused(request, exc, parts)
    try:
        ident = await runs.start_run(request, upload, options)
    except DomainError as exc:
        return await refused(request, exc, parts)
    audit.note_run(request, ident, options)
    await request.app[RECONCILER].wait(ident, START_WAIT_S)
    raise web.HTTPSeeOther(f"/reconciliations/{ident}")


async def refused(request: web.Request, exc: DomainError, parts: FormParts) -> web.Response:
    message = exc.message
    if parts.fields:
        message += " Choose the file again: a browser does not keep it."
    values = parts.values() if parts.fields else None
    return await reconcile_page(request, message, values, status=http_status(exc))


async def detect_columns(request: web.Request) -> web.Response:
    """The report reader's reading of a file's head: its header and the columns it
    would map, as the page's selects show them. The body is the head's bytes."""
    if not csrf_ok(request, request.headers.get(CSRF_HEADER)):
        return web.json_response({"error": "The page is stale: reload it."}, status=403)
    try:
        head = await read_body(request, DETECT_MAX_BYTES)
        # Plain Python over up to 64 KiB: off the event loop, as the run reads it.
        layout, _ = await asyncio.to_thread(open_report, io.BytesIO(head))
    except DomainError as exc:
        return web.json_response({"error": exc.message}, status=http_status(exc))
    return web.json_response(
        {
            "header": list(layout.header),
            "columns": layout.columns,
            "detected_format": layout.detected_format,
            "detected_label": format_label(layout.detected_format),
            "delimiter": layout.delimiter,
        }
    )
