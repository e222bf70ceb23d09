"""The JSON API of the outbound side: forward attempts, replay, export and the tester.

Thin handlers over ``forwarder``, ``export`` and ``tester``; every route is in the
OpenAPI document (``monitor.openapi``).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from monitor import export, openapi, tester
from monitor.api import read_json
from monitor.errors import BadRequest, NotFound
from monitor.forwarding import FORWARD_MODES, ForwardRequest, build_request_to, check_url
from monitor.rules import SettingsError
from monitor.typedefs import ENDPOINT_CACHE, FORWARDER, OUTBOUND


def hit_id(request: web.Request) -> uuid.UUID:
    raw = request.match_info["hit_id"]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("hit_not_found", f"no hit with id {raw[:40]!r}") from None


async def list_forwards(request: web.Request) -> web.Response:
    return web.json_response(await request.app[FORWARDER].attempts(hit_id(request)))


async def replay(request: web.Request) -> web.Response:
    doc = await read_json(request, required=False)
    hit, req = await replay_request(request, hit_id(request), doc)
    return web.json_response(await request.app[FORWARDER].replay(hit, req))


async def replay_request(
    request: web.Request, ident: uuid.UUID, doc: Any
) -> tuple[Any, ForwardRequest]:
    """The stored hit and the request that replays it: to ``doc["url"]`` when given,
    else to its endpoint's forward target. BadRequest/NotFound name what is wrong."""
    if not isinstance(doc, dict) or set(doc) - {"url", "mode"}:
        raise BadRequest("invalid_body", "a JSON object with optional url and mode")
    hit = await request.app[FORWARDER].load_hit(ident)
    endpoint = await request.app[ENDPOINT_CACHE].lookup_id(hit["endpoint_id"])
    forward = None if endpoint is None else endpoint.compiled.forward
    mode = doc.get("mode", forward.mode if forward is not None else "template")
    if mode not in FORWARD_MODES:
        raise BadRequest("invalid_field", f"mode: one of {', '.join(FORWARD_MODES)}")
    if doc.get("url") is not None:
        try:
            url = check_url(doc["url"], mode, name="url")
        except SettingsError as exc:
            raise BadRequest("invalid_field", str(exc)) from None
        return hit, build_request_to(url, mode, hit)
    if forward is None:
        raise BadRequest(
            "no_forward_target", "the hit's endpoint does not forward; give a url to replay to"
        )
    return hit, build_request_to(forward.url, mode, hit)


async def run_tester(request: web.Request) -> web.Response:
    try:
        probe = tester.parse_request(await read_json(request))
    except ValueError as exc:
        raise BadRequest("invalid_field", str(exc)) from None
    try:
        report: dict[str, Any] = await tester.run(request.app[OUTBOUND], probe)
    except SettingsError as exc:
        raise BadRequest("invalid_settings", str(exc)) from None
    return web.json_response(report)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/hits/{hit_id}/forwards", list_forwards)
    app.router.add_post("/api/hits/{hit_id}/replay", replay)
    app.router.add_post("/api/tester", run_tester)
    export.add_routes(app)


ATTEMPT = {
    "type": "object",
    "required": ["id", "kind", "attempt", "started_at", "method", "url", "status", "ok"],
    "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["forward", "replay"]},
        "attempt": {"type": "integer", "minimum": 1},
        "started_at": {"type": "string", "format": "date-time"},
        "method": {"type": "string"},
        "url": {"type": "string"},
        "status": {"type": ["integer", "null"]},
        "ok": {"type": "boolean"},
        "latency_ms": {"type": ["number", "null"]},
        "response_head": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]},
        "flags": {"type": "array", "items": openapi.ref("Flag")},
    },
}
FORWARDS = {
    "type": "object",
    "required": ["hit_id", "forward", "items"],
    "properties": {
        "hit_id": {"type": "string", "format": "uuid"},
        "forward": {
            "type": ["object", "null"],
            "required": ["state", "attempts"],
            "properties": {
                "state": {"enum": ["pending", "delivered", "failed", "cancelled"]},
                "attempts": {"type": "integer", "minimum": 0},
                "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
        "items": {"type": "array", "items": openapi.ref("ForwardAttempt")},
    },
}
HOP = {
    "type": "object",
    "required": ["url", "method"],
    "properties": {
        "url": {"type": "string"},
        "method": {"type": "string"},
        "status": {"type": "integer"},
        "headers": openapi.PAIRS,
        "elapsed_ms": {"type": "number"},
        "location": {"type": "string"},
        "error": {"type": "string"},
    },
}
TESTER_INPUT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "minLength": 1, "maxLength": tester.MAX_URL_CHARS},
        "method": {"type": "string", "enum": list(tester.METHODS)},
        "body": {"type": "string"},
        "content_type": {"type": "string"},
        "settings": openapi.ref("Settings")
        if "Settings" in openapi.SCHEMAS
        else {"type": "object"},
        "dry_run": {"type": "boolean"},
    },
}
TESTER_REPORT = {
    "type": "object",
    "required": ["url", "method", "flags", "fired", "hops", "final", "error"],
    "properties": {
        "url": {"type": "string"},
        "method": {"type": "string"},
        "flags": {"type": "array", "items": openapi.ref("Flag")},
        "fired": {"type": "boolean"},
        "hops": {"type": "array", "items": HOP},
        "final": {
            "type": ["object", "null"],
            "required": ["status", "body_truncated"],
            "properties": {
                "status": {"type": "integer"},
                "body_truncated": {"type": "boolean"},
                "body_text": {"type": "string"},
                "body_base64": {"type": "string"},
            },
        },
        "error": {"type": ["string", "null"]},
    },
}
FILTERS = [
    p
    for p in openapi.PATHS["/api/endpoints/{endpoint_id}/hits"]["get"]["parameters"]
    if p["name"] not in ("limit", "cursor")
]
openapi.SCHEMAS["ForwardAttempt"] = ATTEMPT
openapi.PATHS.update(
    {
        "/api/hits/{hit_id}/forwards": {
            "parameters": [openapi.HIT_ID],
            "get": {
                "summary": "The hit's forward state and every attempt (forwards and replays)",
                "responses": {
                    "200": openapi.json_body(FORWARDS, "Attempts, oldest first"),
                    **openapi.errors(401, 404),
                },
            },
        },
        "/api/hits/{hit_id}/replay": {
            "parameters": [openapi.HIT_ID],
            "post": {
                "summary": "Send the hit again now, to its forward target or to a URL given now",
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "url": {"type": "string"},
                                    "mode": {"type": "string", "enum": list(FORWARD_MODES)},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": openapi.json_body(openapi.ref("ForwardAttempt"), "The logged attempt"),
                    **openapi.errors(400, 401, 404),
                },
            },
        },
        "/api/endpoints/{endpoint_id}/export": {
            "parameters": [openapi.ENDPOINT_ID],
            "get": {
                "summary": "All hits matching the list's filters, streamed as NDJSON or CSV",
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["ndjson", "csv"]},
                    },
                    *FILTERS,
                ],
                "responses": {
                    "200": {
                        "description": "One hit per line (list items: no body), newest first",
                        "content": {
                            "application/x-ndjson": {"schema": {"type": "string"}},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **openapi.errors(400, 401, 404),
                },
            },
        },
        "/api/tester": {
            "post": {
                "summary": "Check a postback URL, fire it and follow its redirects hop by hop",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": TESTER_INPUT}},
                },
                "responses": {
                    "200": openapi.json_body(TESTER_REPORT, "The URL's flags and each hop"),
                    **openapi.errors(400, 401),
                },
            },
        },
    }
)
