"""The reconciliation resource of the OpenAPI document: upload a network's report and
match it against captured hits, follow the run, page and export its items."""

from __future__ import annotations

from typing import Any

from monitor.reconciling.options import COLUMN_FIELDS, MAX_COLUMN_NAME, MAX_ENDPOINTS
from monitor.storage.reconciliation_match import MATCH_SLACK
from monitor.storage.reconciliations import ITEM_KINDS, MAX_PAGE
from monitor.web.api.openapi_parts import errors, json_body, ref

TIME = {"type": ["string", "null"], "format": "date-time"}
TEXT = {"type": ["string", "null"]}
COUNT = {"type": "integer", "minimum": 0}
RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
LIMIT = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
}
CURSOR = {
    "name": "cursor",
    "in": "query",
    "schema": {"type": "string"},
    "description": "next_cursor of the previous page",
}
KIND = {"name": "kind", "in": "query", "schema": {"enum": list(ITEM_KINDS)}}
OPTIONS = {
    "type": "object",
    "required": ["endpoint_ids"],
    "additionalProperties": False,
    "properties": {
        "endpoint_ids": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_ENDPOINTS,
            "items": {"type": "integer", "minimum": 1},
            "description": "The endpoints whose captured hits the report is matched against",
        },
        "columns": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                f: {"type": "string", "minLength": 1, "maxLength": MAX_COLUMN_NAME}
                for f in COLUMN_FIELDS
            },
            "description": "Report column of each field; null or absent: detected from the "
            "header (the run's columns say what was used)",
        },
        "since": TIME,
        "until": TIME,
        "amount_tolerance": {"type": "number", "minimum": 0, "default": 0.01},
        "decimal_comma": {"type": "boolean", "default": False},
    },
}
DELAY = {
    "type": ["object", "null"],
    "description": "Seconds from the report's conversion time to the first capture; null "
    "without a time column",
    "properties": {k: {"type": "number"} for k in ("p50", "p95", "max")},
}
SUMMARY = {
    "type": ["object", "null"],
    "description": "null until the run is done",
    "required": [
        "report_rows", "matched", "missing_postbacks", "unexpected_postbacks",
        "amount_mismatches", "currency_mismatches", "duplicate_postbacks", "unparsed_rows",
        "delay_seconds",
    ],
    "properties": {
        "report_rows": COUNT, "matched": COUNT, "missing_postbacks": COUNT,
        "unexpected_postbacks": COUNT, "amount_mismatches": COUNT,
        "currency_mismatches": COUNT, "duplicate_postbacks": COUNT, "unparsed_rows": COUNT,
        "repeated_report_rows": COUNT, "delay_seconds": DELAY,
        "delay_buckets": {
            "anyOf": [ref("DelayBuckets"), {"type": "null"}],
            "description": "The same delays counted per bucket (the endpoint charts' "
            "buckets); null when delay_seconds is; absent from runs made before it was kept",
        },
    },
}  # fmt: skip
RUN = {
    "type": "object",
    "required": [
        "id", "status", "error", "created_at", "finished_at", "endpoint_ids", "since",
        "until", "columns", "detected_format", "progress", "summary",
    ],
    "properties": {
        "id": {"type": "integer"},
        "status": {"enum": ["running", "done", "failed"]},
        "error": TEXT,
        "created_at": {"type": "string", "format": "date-time"},
        "finished_at": TIME,
        "endpoint_ids": {"type": "array", "items": {"type": "integer"}},
        "since": TIME,
        "until": TIME,
        "options": {"type": "object", "description": "The options as given"},
        "columns": {"type": ["object", "null"], "description": "field → report column used"},
        "detected_format": TEXT,
        "delimiter": TEXT,
        "progress": {
            "type": "object",
            "properties": {"rows_read": COUNT, "bytes_read": COUNT, "bytes_total": COUNT},
        },
        "summary": SUMMARY,
    },
}  # fmt: skip
ITEM = {
    "type": "object",
    "required": ["kind", "click_id", "event", "report", "captured", "hit_ids"],
    "properties": {
        "kind": {"enum": list(ITEM_KINDS)},
        "click_id": TEXT,
        "event": TEXT,
        "report": {
            "type": ["object", "null"],
            "description": "The report row (line, click_id, event, amount, currency, time; "
            "amounts as decimal text), or for unparsed_row its line, reason and text; null "
            "for unexpected_postback",
        },
        "captured": {
            "type": "array",
            "items": {"type": "object"},
            "description": "The capture(s): hit_id, endpoint_id, received_at, event, amount, "
            "currency, duplicate",
        },
        "hit_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
    },
}


def page_of(item: dict[str, Any]) -> dict[str, Any]:
    """A cursor page of ``item``s, as the other lists answer."""
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": item}, "next_cursor": TEXT},
    }


FORMAT = {
    "name": "format",
    "in": "query",
    "schema": {"enum": ["csv", "ndjson"], "default": "csv"},
}
TOO_LARGE = json_body(ref("Error"), "The report is larger than reconcile_max_bytes")
DESCRIPTION = (
    "Upload a conversion report (CSV, the separator, encoding and columns detected) as the "
    "multipart part `report` and the options as the JSON part `options`. Report rows are "
    "matched to the endpoints' captured hits by click id, and by event (case-insensitive) "
    "when the report has an event column. The window (since/until; default: the report's "
    "first to last conversion time, or all time without times) says which captures must "
    "be in the report; a report row is matched by a capture up to "
    f"{MATCH_SLACK.days} day either side of it. Answers 201 with the finished run, or 202 "
    "when it still runs after 2 s: poll the Location."
)
PATHS: dict[str, Any] = {
    "/api/reconciliations": {
        "post": {
            "operationId": "startReconciliation",
            "tags": ["reconciliations"],
            "summary": "Reconcile a network's conversion report against captured hits",
            "description": DESCRIPTION,
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["report", "options"],
                            "properties": {
                                "report": {"type": "string", "format": "binary"},
                                "options": OPTIONS,
                            },
                        },
                        "encoding": {"options": {"contentType": "application/json"}},
                    }
                },
            },
            "responses": {
                "201": json_body(ref("Reconciliation"), "Done (or failed)"),
                "202": json_body(ref("Reconciliation"), "Still running"),
                **errors(400, 401),
                "409": json_body(
                    ref("Error"),
                    "Too many reconciliations running in this server process "
                    "(reconciliations_busy); try again later",
                ),
                "413": TOO_LARGE,
            },
        },
        "get": {
            "operationId": "listReconciliations",
            "tags": ["reconciliations"],
            "summary": "Reconciliation runs, newest first",
            "parameters": [LIMIT, CURSOR],
            "responses": {
                "200": json_body(page_of(ref("Reconciliation")), "A page of runs"),
                **errors(400, 401),
            },
        },
    },
    "/api/reconciliations/{run_id}": {
        "parameters": [RUN_ID],
        "get": {
            "operationId": "getReconciliation",
            "tags": ["reconciliations"],
            "summary": "A run: status, progress while running, summary when done",
            "responses": {"200": json_body(ref("Reconciliation"), "The run"), **errors(401, 404)},
        },
        "delete": {
            "operationId": "deleteReconciliation",
            "tags": ["reconciliations"],
            "summary": "Delete a run and its items (not while it runs: 409)",
            "responses": {
                "204": {"description": "Deleted"},
                **errors(401, 404),
                "409": json_body(ref("Error"), "Still running"),
            },
        },
    },
    "/api/reconciliations/{run_id}/items": {
        "parameters": [RUN_ID],
        "get": {
            "operationId": "listReconciliationItems",
            "tags": ["reconciliations"],
            "summary": "What a run found, by kind, in the run's order",
            "parameters": [KIND, LIMIT, CURSOR],
            "responses": {
                "200": json_body(page_of(ref("ReconciliationItem")), "A page of items"),
                **errors(400, 401, 404),
            },
        },
    },
    "/api/reconciliations/{run_id}/export": {
        "parameters": [RUN_ID],
        "get": {
            "operationId": "exportReconciliationItems",
            "tags": ["reconciliations"],
            "summary": "A run's items as a CSV or NDJSON file (streamed)",
            "parameters": [KIND, FORMAT],
            "responses": {
                "200": {
                    "description": "The items",
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "application/x-ndjson": {"schema": {"type": "string"}},
                    },
                },
                **errors(400, 401, 404),
            },
        },
    },
}
SCHEMAS: dict[str, Any] = {"Reconciliation": RUN, "ReconciliationItem": ITEM}
