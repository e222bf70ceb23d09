"""The endpoints resource of the OpenAPI document: an endpoint, its settings, its stats."""

from __future__ import annotations

from typing import Any

from monitor.web.api.openapi_parts import ENDPOINT_ID, errors, json_body, ref, time_range

# PostgreSQL text cannot hold NUL, so the API refuses it in stored strings.
NO_NUL = "^[^\\u0000]*$"
RESPONSE_SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "status": {"type": "integer", "minimum": 200, "maximum": 599},
        "body": {"type": "string", "maxLength": 65536, "pattern": NO_NUL},
        "content_type": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
    },
}
NAME_STRING = {"type": "string", "minLength": 1, "maxLength": 256}
# The shape of an endpoint's settings document. Values are also checked for meaning
# (CIDRs, windows, preset keys, URL templates): a well-shaped but meaningless value
# gets a 400 that names it. docs/rules.md documents each key.
SETTINGS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "preset": {"type": ["string", "null"]},
        "required_params": {"type": ["array", "null"], "items": NAME_STRING, "maxItems": 100},
        "click_id_param": {"anyOf": [NAME_STRING, {"type": "null"}]},
        "event_param": {"anyOf": [NAME_STRING, {"type": "null"}]},
        "amount_param": {"anyOf": [NAME_STRING, {"type": "null"}]},
        "currency_param": {"anyOf": [NAME_STRING, {"type": "null"}]},
        "dedupe": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "scope": {"enum": ["click_id_event", "click_id", "off", None]},
                "window": {"type": ["number", "string", "null"]},
            },
        },
        "allowed_ips": {"type": ["array", "null"], "items": {"type": "string"}, "maxItems": 1000},
        "secret": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["value"],
            "properties": {
                "value": {"type": "string", "minLength": 1, "maxLength": 1024},
                "param": {"anyOf": [NAME_STRING, {"type": "null"}]},
                "header": {"anyOf": [NAME_STRING, {"type": "null"}]},
            },
        },
        "rate_limit_per_s": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1e6},
        "retention_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 3650},
        "conversion_time_param": {
            "anyOf": [{"type": "string", "minLength": 1, "maxLength": 200}, {"type": "null"}]
        },
        "forward_url": {"type": ["string", "null"]},
        "forward_mode": {"enum": ["template", "passthrough", None]},
        "forward_flagged": {"type": ["boolean", "null"]},
        "forward_max_attempts": {"type": ["integer", "null"], "minimum": 1},
        "test_traffic": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "click_ids": {"type": ["array", "null"], "items": NAME_STRING, "maxItems": 1000},
                "ip_ranges": {
                    "type": ["array", "null"],
                    "items": {"type": "string"},
                    "maxItems": 1000,
                },
                "off": {"type": ["boolean", "null"]},
            },
        },
        # docs/rules.md, Odd payouts: left out, the check is on with these defaults.
        "amount_outlier": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "k": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000, "default": 10},
                "min_samples": {"type": "integer", "minimum": 1, "default": 20},
                "window": {"type": "integer", "minimum": 2, "maximum": 10000, "default": 500},
                "off": {"type": "boolean", "default": False},
            },
        },
        # docs/rules.md, Unknown senders: left out, both checks are on with these defaults.
        "senders": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "learn_hits": {"type": "integer", "minimum": 0, "maximum": 1000000, "default": 50},
                "learn_days": {"type": "integer", "minimum": 0, "maximum": 3650, "default": 7},
                "new_sender": {"type": "boolean", "default": True},
                "param_shape_changed": {"type": "boolean", "default": True},
            },
        },
    },
}
ENDPOINT = {
    "type": "object",
    "required": ["id", "token", "name", "capture_url", "settings", "response", "created_at"],
    "properties": {
        "id": {"type": "integer"},
        "token": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "capture_url": {"type": "string"},
        # The capture URL plus the preset's postback template; null without a preset.
        "postback_url": {"type": ["string", "null"]},
        "settings": SETTINGS,
        "response": RESPONSE_SETTINGS,
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
ENDPOINT_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
        "description": {"type": "string", "maxLength": 5000, "pattern": NO_NUL},
        "settings": SETTINGS,
        "response": RESPONSE_SETTINGS,
    },
}
# PATCH's settings are a JSON Merge Patch (RFC 7396) on the stored ones: the same keys,
# but a nested object may give only the keys it changes (secret without its value).
SETTINGS_PATCH = {
    **SETTINGS,
    "properties": {
        **SETTINGS["properties"],
        "secret": {k: v for k, v in SETTINGS["properties"]["secret"].items() if k != "required"},
    },
}
ENDPOINT_PATCH = {
    **ENDPOINT_INPUT,
    "properties": {**ENDPOINT_INPUT["properties"], "settings": SETTINGS_PATCH},
}
PATCH_DESCRIPTION = """\
Only the fields given change; `response` changes the keys it gives.

`settings` is a JSON Merge Patch (RFC 7396) on the stored settings, not a
replacement: a key given replaces that setting, a key set to `null` removes it
(back to its default), a nested object (`dedupe`, `secret`) merges key by key,
and keys not given are kept. So `{"settings": {"secret": null}}` drops the
secret and keeps the preset; `{"settings": {"dedupe": {"window": "1h"}}}`
changes the window and keeps the scope. The merged document is checked as a
whole; to replace every setting, set the ones to drop to `null`."""
STATS = {
    "type": "object",
    "required": [
        "window",
        "total",
        "flagged",
        "test_hits",
        "by_flag",
        "duplicate_rate",
        "last_hit_at",
    ],
    "properties": {
        "window": {"type": "string", "enum": ["1h", "24h", "7d"]},
        # Test hits (flag test_traffic) are left out of every count but test_hits.
        "total": {"type": "integer", "minimum": 0},
        "flagged": {"type": "integer", "minimum": 0},
        "test_hits": {"type": "integer", "minimum": 0},
        "by_flag": {"type": "object", "additionalProperties": {"type": "integer"}},
        "duplicate_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "last_hit_at": {"type": ["string", "null"], "format": "date-time"},
    },
}

PATHS: dict[str, Any] = {
    "/api/endpoints": {
        "get": {
            "operationId": "listEndpoints",
            "tags": ["endpoints"],
            "summary": "List endpoints",
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["items"],
                        "properties": {"items": {"type": "array", "items": ref("Endpoint")}},
                    },
                    "All endpoints",
                ),
                **errors(401),
            },
        },
        "post": {
            "operationId": "createEndpoint",
            "tags": ["endpoints"],
            "summary": "Create an endpoint",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {**ENDPOINT_INPUT, "required": ["name"]}}
                },
            },
            "responses": {"201": json_body(ref("Endpoint"), "Created"), **errors(400, 401)},
        },
    },
    "/api/endpoints/{endpoint_id}": {
        "parameters": [ENDPOINT_ID],
        "get": {
            "operationId": "getEndpoint",
            "tags": ["endpoints"],
            "summary": "One endpoint",
            "responses": {"200": json_body(ref("Endpoint"), "The endpoint"), **errors(401, 404)},
        },
        "patch": {
            "operationId": "updateEndpoint",
            "tags": ["endpoints"],
            "summary": "Change an endpoint",
            "description": PATCH_DESCRIPTION,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ENDPOINT_PATCH}},
            },
            "responses": {"200": json_body(ref("Endpoint"), "Changed"), **errors(400, 401, 404)},
        },
        "delete": {
            "operationId": "deleteEndpoint",
            "tags": ["endpoints"],
            "summary": "Delete an endpoint and all its hits",
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["deleted", "id", "hits_deleted"],
                        "properties": {
                            "deleted": {"type": "boolean"},
                            "id": {"type": "integer"},
                            "hits_deleted": {"type": "integer"},
                        },
                    },
                    "Deleted",
                ),
                **errors(401, 404),
            },
        },
    },
    "/api/endpoints/{endpoint_id}/rotate-token": {
        "parameters": [ENDPOINT_ID],
        "post": {
            "operationId": "rotateEndpointToken",
            "tags": ["endpoints"],
            "summary": "Give the endpoint a new capture token",
            "responses": {"200": json_body(ref("Endpoint"), "Rotated"), **errors(401, 404)},
        },
    },
    "/api/endpoints/{endpoint_id}/stats": {
        "parameters": [ENDPOINT_ID],
        "get": {
            "operationId": "getEndpointStats",
            "tags": ["endpoints"],
            "summary": "Counts of hits, flagged hits and each flag over a window",
            "parameters": [time_range("window")],
            "responses": {
                "200": json_body(ref("Stats"), "The endpoint's numbers"),
                **errors(400, 401, 404),
            },
        },
    },
}
SCHEMAS: dict[str, Any] = {"Endpoint": ENDPOINT, "Settings": SETTINGS, "Stats": STATS}
