"""The scoped tokens resource of the OpenAPI document: make, list, revoke."""

from __future__ import annotations

from typing import Any

from monitor.web.api.openapi_parts import errors, json_body, ref
from monitor.web.api_tokens import MAX_NAME_CHARS
from monitor.web.scopes import SCOPES

TIME = {"type": ["string", "null"], "format": "date-time"}
IDS = {
    "type": ["array", "null"],
    "items": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    "maxItems": 1000,
    "description": "Only these endpoints (others answer 404 as if they did not exist); "
    "null or absent: every endpoint",
}
TOKEN = {
    "type": "object",
    "required": [
        "id", "name", "scope", "endpoint_ids", "created_at", "expires_at", "last_used_at",
        "revoked",
    ],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "scope": {"enum": list(SCOPES)},
        "endpoint_ids": IDS,
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": TIME,
        "last_used_at": {
            **TIME,
            "description": "Recorded at most once a minute, so it may lag by up to that",
        },
        "revoked": {"type": "boolean"},
    },
}  # fmt: skip
NEW_TOKEN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "scope"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS},
        "scope": {
            "enum": list(SCOPES),
            "description": "read: GETs of endpoints, hits, exports, reconciliations; write: "
            "also changes, replays, reconciling, the tester; admin: also tokens",
        },
        "endpoint_ids": IDS,
        "expires_at": {**TIME, "description": "In the future; null or absent: never expires"},
    },
}
MADE = {
    "allOf": [
        ref("ApiToken"),
        {
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": {
                    "type": "string",
                    "description": "The secret (pbm_...): shown only in this answer",
                }
            },
        },
    ]
}
PATHS: dict[str, Any] = {
    "/api/tokens": {
        "post": {
            "operationId": "createToken",
            "tags": ["tokens"],
            "summary": "Make a scoped token (admin scope); its secret is shown only here",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": NEW_TOKEN}},
            },
            "responses": {
                "201": json_body(MADE, "The token, with its secret"),
                **errors(400, 401),
            },
        },
        "get": {
            "operationId": "listTokens",
            "tags": ["tokens"],
            "summary": "Every token, revoked ones too, without secrets (admin scope)",
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["items"],
                        "properties": {"items": {"type": "array", "items": ref("ApiToken")}},
                    },
                    "The tokens",
                ),
                **errors(401),
            },
        },
    },
    "/api/tokens/{token_id}": {
        "parameters": [
            {"name": "token_id", "in": "path", "required": True, "schema": {"type": "integer"}}
        ],
        "delete": {
            "operationId": "revokeToken",
            "tags": ["tokens"],
            "summary": "Revoke a token (admin scope): refused at once everywhere, and "
            "browsers signed in with it are signed out",
            "responses": {"204": {"description": "Revoked"}, **errors(401, 404)},
        },
    },
}
SCHEMAS: dict[str, Any] = {"ApiToken": TOKEN}
