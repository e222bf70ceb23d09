"""The audit log resource of the OpenAPI document: ``GET /api/audit``."""

from __future__ import annotations

from typing import Any

from monitor.storage.audit import DEFAULT_PAGE, MAX_PAGE
from monitor.web.api.openapi_parts import errors, json_body, ref

CHANGE = {
    "type": ["object", "null"],
    "description": "The thing's fields before / after the action (settings, name, ...); "
    "secrets read [hidden]. Null when the action has no such side",
}
ENTRY = {
    "type": "object",
    "required": [
        "id", "at", "actor", "actor_token_id", "action", "endpoint_id", "target", "before",
        "after",
    ],
    "properties": {
        "id": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "actor": {
            "type": "string",
            "description": 'Who: "admin token", "token 3 (ci-bot)", "session of token 3 '
            '(ci-bot)" or "session of the admin token"',
        },
        "actor_token_id": {"type": ["integer", "null"]},
        "action": {"type": "string", "description": "e.g. endpoint.update, token.create"},
        "endpoint_id": {"type": ["integer", "null"]},
        "target": {"type": ["string", "null"], "description": 'e.g. "endpoint 4"'},
        "before": CHANGE,
        "after": CHANGE,
    },
}  # fmt: skip
PATHS: dict[str, Any] = {
    "/api/audit": {
        "get": {
            "operationId": "listAuditEntries",
            "tags": ["audit"],
            "summary": "Management actions, newest first (admin scope, every endpoint)",
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_PAGE,
                        "default": DEFAULT_PAGE,
                    },
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "next_cursor of the previous page",
                },
                {
                    "name": "endpoint_id",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1},
                    "description": "Only entries about this endpoint",
                },
            ],
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["entries", "next_cursor"],
                        "properties": {
                            "entries": {"type": "array", "items": ref("AuditEntry")},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    },
                    "A page of entries",
                ),
                **errors(400, 401),
            },
        },
    },
}
SCHEMAS: dict[str, Any] = {"AuditEntry": ENTRY}
