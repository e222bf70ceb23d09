"""The OpenAPI 3.1 document of the JSON API, served at /api/openapi.json.

Written by hand, next to the handlers it describes; schemathesis checks in the
test suite that the service answers as documented. A module that adds routes
adds their paths here (``PATHS.update(...)``) in the same change.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from monitor import __version__
from monitor.errors import BadRequest, Handler
from monitor.inputs import check_query

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
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
SETTINGS = {
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
        "forward_url": {"type": ["string", "null"]},
        "forward_mode": {"enum": ["template", "passthrough", None]},
        "forward_flagged": {"type": ["boolean", "null"]},
        "forward_max_attempts": {"type": ["integer", "null"], "minimum": 1},
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
ENDPOINT_INPUT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
        "description": {"type": "string", "maxLength": 5000, "pattern": NO_NUL},
        "settings": SETTINGS,
        "response": RESPONSE_SETTINGS,
    },
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*statuses: int) -> dict[str, Any]:
    words = {400: "Invalid input", 401: "Admin token missing or wrong", 404: "Not found"}
    return {str(s): json_body(ref("Error"), words.get(s, "Error")) for s in statuses}


ENDPOINT_ID = {
    "name": "endpoint_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
HIT_ID = {
    "name": "hit_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}

PATHS: dict[str, Any] = {
    "/api/endpoints": {
        "get": {
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
            "summary": "One endpoint",
            "responses": {"200": json_body(ref("Endpoint"), "The endpoint"), **errors(401, 404)},
        },
        "patch": {
            "summary": "Change an endpoint",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ENDPOINT_INPUT}},
            },
            "responses": {"200": json_body(ref("Endpoint"), "Changed"), **errors(400, 401, 404)},
        },
        "delete": {
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
            "summary": "Give the endpoint a new capture token",
            "responses": {"200": json_body(ref("Endpoint"), "Rotated"), **errors(401, 404)},
        },
    },
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

STATS = {
    "type": "object",
    "required": ["window", "total", "flagged", "by_flag", "duplicate_rate", "last_hit_at"],
    "properties": {
        "window": {"type": "string", "enum": ["1h", "24h", "7d"]},
        "total": {"type": "integer", "minimum": 0},
        "flagged": {"type": "integer", "minimum": 0},
        "by_flag": {"type": "object", "additionalProperties": {"type": "integer"}},
        "duplicate_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "last_hit_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
PRESET = {
    "type": "object",
    "required": ["key", "name", "direction", "click_id_param", "template", "method", "macros"],
    "properties": {
        "key": {"type": "string"},
        "name": {"type": "string"},
        "direction": {"type": "string", "enum": ["sender", "receiver"]},
        "click_id_param": {"type": "string"},
        "event_param": {"type": ["string", "null"]},
        "amount_param": {"type": ["string", "null"]},
        "currency_param": {"type": ["string", "null"]},
        "required_params": {"type": "array", "items": {"type": "string"}},
        "template": {"type": "string"},
        "method": {"type": "string"},
        "notes": {"type": "string"},
        "macros": {"type": "array", "items": {"type": "string"}},
    },
}
PATHS.update(
    {
        "/api/endpoints/{endpoint_id}/stats": {
            "parameters": [ENDPOINT_ID],
            "get": {
                "summary": "Counts of hits, flagged hits and each flag over a window",
                "parameters": [
                    {
                        "name": "window",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["1h", "24h", "7d"], "default": "24h"},
                    }
                ],
                "responses": {
                    "200": json_body(ref("Stats"), "The endpoint's numbers"),
                    **errors(400, 401, 404),
                },
            },
        },
        "/api/presets": {
            "get": {
                "summary": "Platform presets: param names and postback URL templates",
                "responses": {
                    "200": json_body(
                        {
                            "type": "object",
                            "required": ["items"],
                            "properties": {"items": {"type": "array", "items": ref("Preset")}},
                        },
                        "All presets",
                    ),
                    **errors(401),
                },
            },
        },
    }
)

SCHEMAS: dict[str, Any] = {
    "Error": ERROR,
    "Flag": FLAG,
    "Hit": HIT,
    "HitSummary": HIT_SUMMARY,
    "Endpoint": ENDPOINT,
    "Settings": SETTINGS,
    "Stats": STATS,
    "Preset": PRESET,
}


HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Any request can be malformed below the API (a garbage Content-Length, say): the
# HTTP parser answers it with a plain-text 400 before a handler runs.
PLAIN_TEXT = {"text/plain": {"schema": {"type": "string"}}}


def with_malformed_request_answers(paths: dict[str, Any]) -> dict[str, Any]:
    """The paths with the parser's plain-text 400 added to every operation's 400, and
    the 413 of an oversized body to every operation that takes one."""
    result: dict[str, Any] = {}
    for path, item in paths.items():
        result[path] = {}
        for key, op in item.items():
            if key in HTTP_METHODS:
                bad = op["responses"].get("400", {"description": "Malformed HTTP request"})
                bad = {**bad, "content": {**bad.get("content", {}), **PLAIN_TEXT}}
                op = {**op, "responses": {**op["responses"], "400": bad}}
                if "requestBody" in op:
                    too_large = json_body(ref("Error"), "Request body too large")
                    op["responses"]["413"] = too_large
            result[path][key] = op
    return result


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Postback Monitor API", "version": __version__},
        "security": [{"bearer": []}],
        "paths": with_malformed_request_answers(PATHS),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def declared_query_names(path: str, method: str) -> frozenset[str] | None:
    """The query parameters the document declares for an operation (None: undocumented)."""
    item = PATHS.get(path)
    if item is None or method.lower() not in item:
        return None
    params = [*item.get("parameters", ()), *item[method.lower()].get("parameters", ())]
    return frozenset(p["name"] for p in params if p["in"] == "query")


@web.middleware
async def unknown_query_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A query parameter the document does not declare is a typo the caller should
    hear about (a misspelt filter would otherwise silently match everything). Every
    management request's query values, pages included, must be text (``inputs``)."""
    check_query(request.query.items())
    if request.path.startswith("/api/") and request.query:
        route = request.match_info.route.resource
        allowed = None if route is None else declared_query_names(route.canonical, request.method)
        if allowed is not None:
            unknown = sorted(set(request.query) - allowed)
            if unknown:
                raise BadRequest(
                    "invalid_query", f"unknown query parameter(s): {', '.join(unknown)}"
                )
    return await handler(request)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document())
