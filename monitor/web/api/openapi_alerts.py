"""The alerts resource of the OpenAPI document (``api.alerts``)."""

from __future__ import annotations

from typing import Any

from monitor.rules.alerts import CONDITIONS
from monitor.storage.alerts import PAST_LIMIT
from monitor.web.api.openapi_parts import ENDPOINT_ID, errors, json_body, ref

TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
ALERT: dict[str, Any] = {
    "type": "object",
    "required": [
        "id", "endpoint_id", "condition", "state", "fired_at", "resolved_at",
        "last_notified_at", "sentence",
    ],
    "properties": {
        "id": {"type": "integer"},
        "endpoint_id": {"type": "integer"},
        "condition": {"type": "string", "enum": list(CONDITIONS)},
        "state": {"type": "string", "enum": ["firing", "resolved"]},
        "fired_at": {"type": "string", "format": "date-time"},
        "resolved_at": TIME_OR_NULL,
        "last_notified_at": TIME_OR_NULL,
        "sentence": {"type": "string", "description": "What fired, in words"},
    },
}  # fmt: skip
PATHS: dict[str, Any] = {
    "/api/endpoints/{endpoint_id}/alerts": {
        "parameters": [ENDPOINT_ID],
        "get": {
            "operationId": "listEndpointAlerts",
            "tags": ["alerts"],
            "summary": "The endpoint's firing alerts and its resolved ones, newest first",
            "description": "Conditions come from the endpoint's alerts setting; one "
            f"evaluator per deployment fires and resolves them. past: the newest {PAST_LIMIT}.",
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["current", "past"],
                        "properties": {
                            "current": {"type": "array", "items": ref("Alert")},
                            "past": {"type": "array", "items": ref("Alert")},
                        },
                    },
                    "Firing (current) and resolved (past) alerts",
                ),
                **errors(401, 404),
            },
        },
    },
}
SCHEMAS: dict[str, Any] = {"Alert": ALERT}
