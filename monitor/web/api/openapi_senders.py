"""The known-senders resource of the OpenAPI document (``api.senders``)."""

from __future__ import annotations

from typing import Any

from monitor.web.api.openapi_parts import ENDPOINT_ID, errors, json_body, ref

TIME = {"type": "string", "format": "date-time"}
NETWORK = {
    "type": "object",
    "required": [
        "network",
        "first_seen_at",
        "last_seen_at",
        "hits",
        "user_agent",
        "after_learning",
        "accepted",
        "accepted_at",
    ],
    "properties": {
        "network": {"type": "string", "description": "An IPv4 /24 or IPv6 /48"},
        "first_seen_at": TIME,
        "last_seen_at": TIME,
        "hits": {"type": "integer"},
        "user_agent": {"type": ["string", "null"], "description": "The newest one seen"},
        "after_learning": {
            "type": "boolean",
            "description": "First seen after the learning period: its hits are new_sender "
            "until accepted",
        },
        "accepted": {"type": "boolean"},
        "accepted_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
SHAPE = {
    "type": "object",
    "required": ["names", "first_seen_at", "last_seen_at", "hits", "after_learning"],
    "properties": {
        "names": {"type": "array", "items": {"type": "string"}},
        "first_seen_at": TIME,
        "last_seen_at": TIME,
        "hits": {"type": "integer"},
        "after_learning": {"type": "boolean"},
    },
}
PATHS: dict[str, Any] = {
    "/api/endpoints/{endpoint_id}/senders": {
        "parameters": [ENDPOINT_ID],
        "get": {
            "operationId": "listEndpointSenders",
            "tags": ["senders"],
            "summary": "The endpoint's known source networks and parameter-name sets",
            "description": "Learned from non-test hits (docs/rules.md, Unknown senders); "
            "networks newest first, at most 1000; sets most common first, at most 200.",
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["networks", "shapes"],
                        "properties": {
                            "networks": {"type": "array", "items": ref("SenderNetwork")},
                            "shapes": {"type": "array", "items": ref("ParamShape")},
                        },
                    },
                    "Known senders",
                ),
                **errors(401, 404),
            },
        },
    },
    "/api/endpoints/{endpoint_id}/senders/accept": {
        "parameters": [ENDPOINT_ID],
        "post": {
            "operationId": "acceptEndpointSender",
            "tags": ["senders"],
            "summary": "Accept a network: its future hits are no longer new_sender",
            "description": "A bare address names its /24 or /48. Hits already flagged keep "
            "their flag.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["network"],
                            "properties": {"network": {"type": "string"}},
                        }
                    }
                },
            },
            "responses": {
                "200": json_body(ref("SenderNetwork"), "The accepted network"),
                **errors(400, 401, 404),
            },
        },
    },
}
SCHEMAS: dict[str, Any] = {"SenderNetwork": NETWORK, "ParamShape": SHAPE}
