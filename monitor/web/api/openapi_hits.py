"""The hits resource of the OpenAPI document: a hit, its flags, the list and its filters."""

from __future__ import annotations

from typing import Any

from monitor.model.hit import FORWARD_STATE_FILTERS, FORWARD_STATES
from monitor.model.verdict import FLAG_NAMES
from monitor.rules.statuses import STATUSES
from monitor.storage.clicks import MAX_TIMELINE
from monitor.storage.hits import MAX_METHOD_CHARS, MAX_SEARCH_CHARS
from monitor.web.api.openapi_parts import ENDPOINT_ID, HIT_ID, errors, json_body, ref
from monitor.web.inputs import MAX_CLICK_ID_CHARS

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
    "status": {
        "enum": [*STATUSES, None],
        "description": "The hit's status in the common vocabulary, read at capture from "
        "its status or event param (docs/rules.md, Statuses); null when unknown or absent.",
    },
    "flags": {"type": "array", "items": {"$ref": "#/components/schemas/Flag"}},
    # Read with the endpoint's current settings (amount_param, currency_param or the
    # usual names), as sent: an invalid one is also flagged invalid_amount/_currency.
    "amount": {
        "type": ["string", "null"],
        "description": "The hit's amount param as sent (such as 1.50); null when absent.",
    },
    "currency": {
        "type": ["string", "null"],
        "description": "The hit's currency param as sent (such as USD); null when absent.",
    },
    "forward_state": {
        "enum": [*FORWARD_STATES, None],
        "description": "The state of the hit's forward to its endpoint's forward target: "
        "pending (queued or retrying), delivered, failed (given up), cancelled (the "
        "endpoint stopped forwarding or the hit expired first); null when it was never "
        "queued (no target then, or a flagged hit not forwarded). A successful replay to "
        "the forward target turns failed or cancelled into delivered.",
    },
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

FORWARD_STATE_PARAM = {
    "name": "forward_state",
    "in": "query",
    "description": "Only hits whose forward is in this state; none: hits never queued "
    "for forwarding. An unknown value is a 400; empty means any.",
    "schema": {"type": "string", "enum": [*FORWARD_STATE_FILTERS, ""]},
}

PATHS: dict[str, Any] = {
    "/api/endpoints/{endpoint_id}/hits": {
        "parameters": [ENDPOINT_ID],
        "get": {
            "operationId": "listEndpointHits",
            "tags": ["hits"],
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
                    "description": "Only hits with one of these flags; an unknown one is a 400.",
                    "schema": {
                        "type": "array",
                        "items": {"type": "string", "enum": list(FLAG_NAMES)},
                    },
                    "style": "form",
                    "explode": True,
                },
                {"name": "flagged", "in": "query", "schema": {"type": "boolean"}},
                {
                    "name": "test",
                    "in": "query",
                    "description": "true: only test and ping postbacks (flag test_traffic); "
                    "false: leave them out.",
                    "schema": {"type": "boolean"},
                },
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
                {
                    "name": "method",
                    "in": "query",
                    "description": "Only hits with this HTTP method (case-insensitive); "
                    "empty means any.",
                    "schema": {"type": "string", "maxLength": MAX_METHOD_CHARS},
                },
                {
                    "name": "q",
                    "in": "query",
                    "description": "Only hits whose click id, event or any query or body "
                    "param name or value contains this text (case-insensitive); empty "
                    "means any.",
                    "schema": {"type": "string", "maxLength": MAX_SEARCH_CHARS},
                },
                FORWARD_STATE_PARAM,
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
        "delete": {
            "operationId": "clearEndpointHits",
            "tags": ["hits"],
            "summary": "Delete every hit of an endpoint; the endpoint stays",
            "description": "Also forgets the endpoint's duplicate ledger (a later hit with "
            "a click id seen before counts as new) and deletes its forwarding rows.",
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["endpoint_id", "hits_deleted"],
                        "properties": {
                            "endpoint_id": {"type": "integer"},
                            "hits_deleted": {"type": "integer", "minimum": 0},
                        },
                    },
                    "Cleared",
                ),
                **errors(401, 404),
            },
        },
    },
    "/api/hits/{hit_id}": {
        "parameters": [HIT_ID],
        "get": {
            "operationId": "getHit",
            "tags": ["hits"],
            "summary": "One whole hit",
            "responses": {"200": json_body(ref("Hit"), "The hit"), **errors(401, 404)},
        },
        "delete": {
            "operationId": "deleteHit",
            "tags": ["hits"],
            "summary": "Delete one hit",
            "description": "Also deletes its forwarding rows, and its duplicate-ledger key "
            "when it was the first hit of its click id (a later hit with that click id "
            "then counts as new). Hits already flagged as its duplicates keep their flag.",
            "responses": {"204": {"description": "Deleted"}, **errors(401, 404)},
        },
    },
}
PATHS["/api/clicks/{click_id}"] = {
    "parameters": [
        {
            "name": "click_id",
            "in": "path",
            "required": True,
            "description": "The click id, URL-encoded ('/' as %2F), compared exactly.",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_CLICK_ID_CHARS},
        }
    ],
    "get": {
        "operationId": "getClickTimeline",
        "tags": ["hits"],
        "summary": "Every hit of one click id across endpoints, oldest first",
        "description": "The click timeline: what support reads when a conversion is "
        "said to be missing. A token restricted to endpoints sees only their hits; an "
        f"unknown click id is an empty list. At most {MAX_TIMELINE} hits, the oldest; "
        "truncated says more were left out.",
        "parameters": [
            {
                "name": "endpoint_id",
                "in": "query",
                "description": "Only this endpoint's hits; empty means every endpoint.",
                "schema": {"type": "integer", "minimum": 1},
            }
        ],
        "responses": {
            "200": json_body(
                {
                    "type": "object",
                    "required": ["click_id", "items", "truncated"],
                    "properties": {
                        "click_id": {"type": "string"},
                        "items": {"type": "array", "items": ref("ClickHit")},
                        "truncated": {"type": "boolean"},
                    },
                },
                "The click's hits",
            ),
            **errors(400, 401),
        },
    },
}
CLICK_HIT = {
    "type": "object",
    "required": [*HIT_SUMMARY["required"], "endpoint_name"],
    "properties": {**HIT_PROPERTIES, "endpoint_name": {"type": "string"}},
}
SCHEMAS: dict[str, Any] = {
    "Flag": FLAG,
    "Hit": HIT,
    "HitSummary": HIT_SUMMARY,
    "ClickHit": CLICK_HIT,
}
