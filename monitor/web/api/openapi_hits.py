"""The hits resource of the OpenAPI document: a hit, its flags, the list and its filters."""

from __future__ import annotations

from typing import Any

from monitor.web.api.openapi_parts import ENDPOINT_ID, HIT_ID, errors, json_body, ref

FLAG = {
    "type": "object",
    "required": ["flag", "message"],
    "properties": {
        "flag": {"type": "string"},
        "param": {"type": ["string", "null"]},
        "value": {"type": ["string", "null"]},
        "message": {"type": "string"},
    },
}
PAIRS = {
    "type": "array",
    "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
}
HIT_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "format": "uuid"},
    "endpoint_id": {"type": "integer"},
    "received_at": {"type": "string", "format": "date-time"},
    "method": {"type": "string"},
    "path": {"type": "string"},
    "query_string": {"type": "string"},
    "params": PAIRS,
    "body_params": PAIRS,
    "headers": PAIRS,
    "content_type": {"type": "string"},
    "body_size": {"type": "integer", "minimum": 0},
    "remote_ip": {"type": ["string", "null"]},
    "user_agent": {"type": ["string", "null"]},
    "click_id": {"type": ["string", "null"]},
    "event": {"type": ["string", "null"]},
    "flags": {"type": "array", "items": {"$ref": "#/components/schemas/Flag"}},
}
HIT_SUMMARY = {
    "type": "object",
    "required": ["id", "endpoint_id", "received_at", "method", "params", "headers", "flags"],
    "properties": HIT_PROPERTIES,
}
HIT = {
    "type": "object",
    "required": HIT_SUMMARY["required"],
    "properties": {
        **HIT_PROPERTIES,
        "body_text": {"type": "string"},
        "body_base64": {"type": "string", "contentEncoding": "base64"},
    },
}

PATHS: dict[str, Any] = {
    "/api/endpoints/{endpoint_id}/hits": {
        "parameters": [ENDPOINT_ID],
        "get": {
            "summary": "Hits of an endpoint, newest first",
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                },
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "flag",
                    "in": "query",
                    "schema": {"type": "array", "items": {"type": "string"}},
                    "style": "form",
                    "explode": True,
                },
                {"name": "flagged", "in": "query", "schema": {"type": "boolean"}},
                {"name": "click_id", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "since",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                },
                {
                    "name": "until",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                },
            ],
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["items", "next_cursor"],
                        "properties": {
                            "items": {"type": "array", "items": ref("HitSummary")},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    },
                    "A page of hits",
                ),
                **errors(400, 401, 404),
            },
        },
    },
    "/api/hits/{hit_id}": {
        "parameters": [HIT_ID],
        "get": {
            "summary": "One whole hit",
            "responses": {"200": json_body(ref("Hit"), "The hit"), **errors(401, 404)},
        },
    },
}
SCHEMAS: dict[str, Any] = {"Flag": FLAG, "Hit": HIT, "HitSummary": HIT_SUMMARY}
