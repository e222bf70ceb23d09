"""The OpenAPI 3.1 document of the JSON API, served at /api/openapi.json.

Written by hand, one module per resource (``openapi_endpoints``, ``openapi_hits``,
``openapi_presets``, ``openapi_forwards``), assembled here; schemathesis checks in
the test suite that the service answers as documented. A change that adds a route
adds its path to its resource's module in the same change.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from monitor import __version__
from monitor.web.api import (
    openapi_alerts,
    openapi_audit,
    openapi_channels,
    openapi_charts,
    openapi_endpoints,
    openapi_forwards,
    openapi_hits,
    openapi_presets,
    openapi_reconciliations,
    openapi_replays,
    openapi_senders,
    openapi_share_links,
    openapi_tokens,
)
from monitor.web.api.openapi_parts import ERROR, json_body, ref
from monitor.web.errors import BadRequest, Handler
from monitor.web.inputs import check_query

RESOURCES = (
    openapi_endpoints,
    openapi_hits,
    openapi_presets,
    openapi_forwards,
    openapi_replays,
    openapi_reconciliations,
    openapi_share_links,
    openapi_senders,
    openapi_tokens,
    openapi_channels,
    openapi_audit,
    openapi_alerts,
    openapi_charts,
)
PATHS: dict[str, Any] = {path: item for r in RESOURCES for path, item in r.PATHS.items()}
SCHEMAS: dict[str, Any] = {
    "Error": ERROR,
    **{name: schema for r in RESOURCES for name, schema in r.SCHEMAS.items()},
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
                # A scoped token outside its scope (monitor.web.access).
                op["responses"]["403"] = json_body(ref("Error"), "The token's scope is too low")
                if "requestBody" in op:
                    too_large = json_body(ref("Error"), "Request body too large")
                    op["responses"]["413"] = too_large
            result[path][key] = op
    return result


# One tag per resource; every operation carries one and a unique operationId, so
# generated clients get stable names (tests/integration/test_openapi_names.py).
TAGS = [
    {"name": "endpoints", "description": "Capture endpoints: their settings, token and stats"},
    {"name": "hits", "description": "Captured hits: the filtered list, single hits, deleting them"},
    {"name": "presets", "description": "Platform presets for endpoint settings"},
    {"name": "forwards", "description": "Forwarding: a hit's attempts, and replaying it"},
    {"name": "replays", "description": "Bulk replay of a filtered set of hits, with progress"},
    {"name": "export", "description": "Hits as NDJSON or CSV files"},
    {"name": "tester", "description": "The postback URL tester"},
    {
        "name": "reconciliations",
        "description": "A network's conversion report matched against captured hits",
    },
    {"name": "share-links", "description": "Read-only, expiring links to one endpoint's hits"},
    {"name": "senders", "description": "An endpoint's known senders; accepting a new one"},
    {"name": "tokens", "description": "Scoped API tokens for a team: make, list, revoke"},
    {
        "name": "channels",
        "description": "Notification channels (webhook, Slack, Telegram, Discord, e-mail), "
        "their test notification and delivery log",
    },
    {"name": "audit", "description": "The audit log: who changed what, when, before and after"},
    {"name": "alerts", "description": "An endpoint's alerts: firing now and resolved"},
    {"name": "charts", "description": "An endpoint's traffic, payouts and delays per bucket"},
]


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Postback Monitor API", "version": __version__},
        "tags": TAGS,
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
