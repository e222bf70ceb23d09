"""The share-link resource of the OpenAPI document (``api.share_links``)."""

from __future__ import annotations

from typing import Any

from monitor.web.api.openapi_parts import ENDPOINT_ID, errors, json_body, ref
from monitor.web.sharing import DEFAULT_EXPIRY, MAX_EXPIRY

TIME = {"type": "string", "format": "date-time"}
LINK_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "endpoint_id": {"type": "integer"},
    "created_at": TIME,
    "expires_at": TIME,
    "last_opened_at": {"type": ["string", "null"], "format": "date-time"},
    "expired": {"type": "boolean", "description": "Past expires_at: the link opens nothing"},
}
LINK = {
    "type": "object",
    "required": ["id", "endpoint_id", "created_at", "expires_at", "last_opened_at", "expired"],
    "properties": LINK_PROPERTIES,
}
CREATED = {
    "type": "object",
    "required": [*LINK["required"], "url"],
    "properties": {
        **LINK_PROPERTIES,
        "url": {
            "type": "string",
            "format": "uri",
            "description": "The link to hand out: the only place its token ever appears",
        },
    },
}
LINK_ID = {
    "name": "link_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
PATHS: dict[str, Any] = {
    "/api/endpoints/{endpoint_id}/share-links": {
        "parameters": [ENDPOINT_ID],
        "post": {
            "operationId": "createShareLink",
            "tags": ["share-links"],
            "summary": "A read-only link to the endpoint's hits, for someone without an account",
            "description": "The link opens the endpoint's hit list and each hit's page "
            "(headers that carry credentials, the capture token and the shared secret "
            f"hidden) until it expires: {DEFAULT_EXPIRY.days} days from now unless "
            f"expires_at says otherwise, at most {MAX_EXPIRY.days} days. Its URL is in this "
            "answer only.",
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "expires_at": {"type": ["string", "null"], "format": "date-time"}
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": json_body(ref("ShareLinkCreated"), "The link, with its URL"),
                **errors(400, 401, 404),
            },
        },
        "get": {
            "operationId": "listShareLinks",
            "tags": ["share-links"],
            "summary": "The endpoint's share links, newest first (without their URLs)",
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["items"],
                        "properties": {"items": {"type": "array", "items": ref("ShareLink")}},
                    },
                    "The links, expired ones included until revoked",
                ),
                **errors(401, 404),
            },
        },
    },
    "/api/endpoints/{endpoint_id}/share-links/{link_id}": {
        "parameters": [ENDPOINT_ID, LINK_ID],
        "delete": {
            "operationId": "revokeShareLink",
            "tags": ["share-links"],
            "summary": "Revoke a share link: it opens nothing from now on",
            "responses": {"204": {"description": "Revoked"}, **errors(401, 404)},
        },
    },
}
SCHEMAS: dict[str, Any] = {"ShareLink": LINK, "ShareLinkCreated": CREATED}
