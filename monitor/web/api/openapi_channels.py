"""The channels resource of the OpenAPI document: notification channels, their test
notification and their delivery log."""

from __future__ import annotations

from typing import Any

from monitor.rules.channels import KINDS, MAX_NAME_CHARS
from monitor.storage.channels import MAX_PAGE
from monitor.web.api.openapi_parts import errors, json_body, ref

CHANNEL_ID = {
    "name": "channel_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
CONFIG_HELP = (
    "By kind: webhook {url, secret?} (Standard Webhooks; a whsec_ secret is made when "
    "absent and shown once as signing_secret); slack {webhook_url}; discord "
    "{webhook_url}; telegram {bot_token, chat_id, api_base?}; email {to, from, host, "
    "port, username?, password?, starttls?, tls?}. Unknown keys are refused. Answers "
    'show secrets as "set" and chat webhook URLs as their origin.'
)
CONFIG = {"type": "object", "description": CONFIG_HELP}
NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS}
CHANNEL = {
    "type": "object",
    "required": ["id", "name", "kind", "config", "created_at", "updated_at"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": list(KINDS)},
        "config": CONFIG,
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "signing_secret": {
            "type": "string",
            "description": "Only in the answer that made a webhook's secret: keep it now",
        },
    },
}
CHANNEL_INPUT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "kind", "config"],
    "properties": {"name": NAME, "kind": {"type": "string", "enum": list(KINDS)}, "config": CONFIG},
}
CHANNEL_PATCH = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": NAME,
        "kind": {"type": "string", "enum": list(KINDS), "description": "cannot change"},
        "config": {
            "type": "object",
            "description": "The keys given replace theirs; null removes an optional key; "
            '"set" keeps a stored secret.',
        },
    },
}
OUTCOME = {
    "type": "object",
    "required": ["channel_id", "ok", "attempts", "status", "error", "latency_ms"],
    "properties": {
        "channel_id": {"type": "integer"},
        "ok": {"type": "boolean"},
        "attempts": {"type": "integer", "minimum": 1},
        "status": {"type": ["integer", "null"], "description": "HTTP status or SMTP reply code"},
        "error": {"type": ["string", "null"]},
        "latency_ms": {"type": "number"},
    },
}
DELIVERY = {
    "type": "object",
    "required": ["id", "channel_id", "message_id", "summary", "attempt", "started_at", "ok"],
    "properties": {
        "id": {"type": "integer"},
        "channel_id": {"type": "integer"},
        "message_id": {"type": "string"},
        "summary": {"type": "string"},
        "attempt": {"type": "integer", "minimum": 1},
        "started_at": {"type": "string", "format": "date-time"},
        "ok": {"type": "boolean"},
        "status": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"]},
        "latency_ms": {"type": ["number", "null"]},
    },
}
TAG = ["channels"]
PATHS: dict[str, Any] = {
    "/api/channels": {
        "get": {
            "operationId": "listChannels",
            "tags": TAG,
            "summary": "Every notification channel, secrets masked",
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["items"],
                        "properties": {"items": {"type": "array", "items": ref("Channel")}},
                    },
                    "Channels, oldest first",
                ),
                **errors(401),
            },
        },
        "post": {
            "operationId": "createChannel",
            "tags": TAG,
            "summary": "Add a notification channel",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": CHANNEL_INPUT}},
            },
            "responses": {
                "201": json_body(ref("Channel"), "The channel (a made secret shown once)"),
                **errors(400, 401),
            },
        },
    },
    "/api/channels/{channel_id}": {
        "parameters": [CHANNEL_ID],
        "get": {
            "operationId": "getChannel",
            "tags": TAG,
            "summary": "One channel, secrets masked",
            "responses": {"200": json_body(ref("Channel"), "The channel"), **errors(401, 404)},
        },
        "patch": {
            "operationId": "updateChannel",
            "tags": TAG,
            "summary": "Rename a channel or change keys of its config",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": CHANNEL_PATCH}},
            },
            "responses": {
                "200": json_body(ref("Channel"), "The channel as changed"),
                **errors(400, 401, 404),
            },
        },
        "delete": {
            "operationId": "deleteChannel",
            "tags": TAG,
            "summary": "Delete a channel and its delivery log",
            "responses": {"204": {"description": "Deleted"}, **errors(401, 404)},
        },
    },
    "/api/channels/{channel_id}/test": {
        "parameters": [CHANNEL_ID],
        "post": {
            "operationId": "testChannel",
            "tags": TAG,
            "summary": "Send a test notification now (one attempt) and answer what it came to",
            "responses": {
                "200": json_body(OUTCOME, "The delivery's result, ok or not"),
                **errors(401, 404),
            },
        },
    },
    "/api/channels/{channel_id}/deliveries": {
        "parameters": [CHANNEL_ID],
        "get": {
            "operationId": "listChannelDeliveries",
            "tags": TAG,
            "summary": "The channel's delivery attempts, newest first",
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                },
                {
                    "name": "before",
                    "in": "query",
                    "description": "next_before of the previous page",
                    "schema": {"type": "integer", "minimum": 1},
                },
            ],
            "responses": {
                "200": json_body(
                    {
                        "type": "object",
                        "required": ["items", "next_before"],
                        "properties": {
                            "items": {"type": "array", "items": ref("ChannelDelivery")},
                            "next_before": {"type": ["integer", "null"]},
                        },
                    },
                    "At most limit attempts; next_before pages on",
                ),
                **errors(400, 401, 404),
            },
        },
    },
}
SCHEMAS: dict[str, Any] = {"Channel": CHANNEL, "ChannelDelivery": DELIVERY}
