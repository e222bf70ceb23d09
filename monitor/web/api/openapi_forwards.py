"""The outbound resources of the OpenAPI document: forward attempts, replay, export, tester."""

from __future__ import annotations

from typing import Any

from monitor.forwarding import tester
from monitor.rules.forwards import FORWARD_MODES
from monitor.web.api.openapi_hits import PAIRS
from monitor.web.api.openapi_hits import PATHS as HITS_PATHS
from monitor.web.api.openapi_parts import ENDPOINT_ID, HIT_ID, errors, json_body, ref

ATTEMPT = {
    "type": "object",
    "required": ["id", "kind", "attempt", "started_at", "method", "url", "status", "ok"],
    "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["forward", "replay"]},
        "attempt": {"type": "integer", "minimum": 1},
        "started_at": {"type": "string", "format": "date-time"},
        "method": {"type": "string"},
        "url": {"type": "string"},
        "status": {"type": ["integer", "null"]},
        "ok": {"type": "boolean"},
        "latency_ms": {"type": ["number", "null"]},
        "response_head": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]},
        "flags": {"type": "array", "items": ref("Flag")},
    },
}
FORWARDS = {
    "type": "object",
    "required": ["hit_id", "forward", "items"],
    "properties": {
        "hit_id": {"type": "string", "format": "uuid"},
        "forward": {
            "type": ["object", "null"],
            "required": ["state", "attempts"],
            "properties": {
                "state": {"enum": ["pending", "delivered", "failed", "cancelled"]},
                "attempts": {"type": "integer", "minimum": 0},
                "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
        "items": {"type": "array", "items": ref("ForwardAttempt")},
    },
}
HOP = {
    "type": "object",
    "required": ["url", "method"],
    "properties": {
        "url": {"type": "string"},
        "method": {"type": "string"},
        "status": {"type": "integer"},
        "headers": PAIRS,
        "elapsed_ms": {"type": "number"},
        "location": {"type": "string"},
        "error": {"type": "string"},
    },
}
TESTER_INPUT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "minLength": 1, "maxLength": tester.MAX_URL_CHARS},
        "method": {"type": "string", "enum": list(tester.METHODS)},
        "body": {"type": "string"},
        "content_type": {"type": "string"},
        "settings": ref("Settings"),
        "dry_run": {"type": "boolean"},
    },
}
TESTER_REPORT = {
    "type": "object",
    "required": ["url", "method", "flags", "fired", "hops", "final", "error"],
    "properties": {
        "url": {"type": "string"},
        "method": {"type": "string"},
        "flags": {"type": "array", "items": ref("Flag")},
        "fired": {"type": "boolean"},
        "hops": {"type": "array", "items": HOP},
        "final": {
            "type": ["object", "null"],
            "required": ["status", "body_truncated"],
            "properties": {
                "status": {"type": "integer"},
                "body_truncated": {"type": "boolean"},
                "body_text": {"type": "string"},
                "body_base64": {"type": "string"},
            },
        },
        "error": {"type": ["string", "null"]},
    },
}
# The export takes the hit list's filters, without its paging.
FILTERS = [
    p
    for p in HITS_PATHS["/api/endpoints/{endpoint_id}/hits"]["get"]["parameters"]
    if p["name"] not in ("limit", "cursor")
]
PATHS: dict[str, Any] = {
    "/api/hits/{hit_id}/forwards": {
        "parameters": [HIT_ID],
        "get": {
            "operationId": "listHitForwards",
            "tags": ["forwards"],
            "summary": "The hit's forward state and every attempt (forwards and replays)",
            "responses": {
                "200": json_body(FORWARDS, "Attempts, oldest first"),
                **errors(401, 404),
            },
        },
    },
    "/api/hits/{hit_id}/replay": {
        "parameters": [HIT_ID],
        "post": {
            "operationId": "replayHit",
            "tags": ["forwards"],
            "summary": "Send the hit again now, to its forward target or to a URL given now",
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "url": {"type": "string"},
                                "mode": {"type": "string", "enum": list(FORWARD_MODES)},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": json_body(ref("ForwardAttempt"), "The logged attempt"),
                **errors(400, 401, 404),
            },
        },
    },
    "/api/endpoints/{endpoint_id}/export": {
        "parameters": [ENDPOINT_ID],
        "get": {
            "operationId": "exportEndpointHits",
            "tags": ["export"],
            "summary": "All hits matching the list's filters, streamed as NDJSON or CSV",
            "parameters": [
                {
                    "name": "format",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["ndjson", "csv"]},
                },
                *FILTERS,
            ],
            "responses": {
                "200": {
                    "description": "One hit per line (list items: no body), newest first",
                    "content": {
                        "application/x-ndjson": {"schema": {"type": "string"}},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                **errors(400, 401, 404),
            },
        },
    },
    "/api/tester": {
        "post": {
            "operationId": "runTester",
            "tags": ["tester"],
            "summary": "Check a postback URL, fire it and follow its redirects hop by hop",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": TESTER_INPUT}},
            },
            "responses": {
                "200": json_body(TESTER_REPORT, "The URL's flags and each hop"),
                **errors(400, 401),
            },
        },
    },
}
SCHEMAS: dict[str, Any] = {"ForwardAttempt": ATTEMPT}
