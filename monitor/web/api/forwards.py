"""The JSON API of the outbound side: forward attempts, replay, export and the tester.

Thin handlers over ``forwarder``, ``export`` and ``tester``; every route is in the
OpenAPI document (``monitor.web.api.openapi``).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from monitor.forwarding import tester
from monitor.rules import SettingsError
from monitor.rules.forwards import FORWARD_MODES, ForwardRequest, build_request_to, check_url
from monitor.web import audit
from monitor.web.api import export
from monitor.web.api.routes import read_json
from monitor.web.appkeys import ENDPOINT_CACHE, FORWARDER, OUTBOUND
from monitor.web.errors import BadRequest
from monitor.web.inputs import hit_id


async def list_forwards(request: web.Request) -> web.Response:
    return web.json_response(await request.app[FORWARDER].attempts(hit_id(request)))


async def replay(request: web.Request) -> web.Response:
    doc = await read_json(request, required=False)
    hit, req, to_target = await replay_request(request, hit_id(request), doc)
    return web.json_response(await request.app[FORWARDER].replay(hit, req, to_target=to_target))


async def replay_request(
    request: web.Request, ident: uuid.UUID, doc: Any
) -> tuple[Any, ForwardRequest, bool]:
    """The stored hit, the request that replays it and whether that goes to the
    endpoint's own forward target: to ``doc["url"]`` when given, else to the target.
    BadRequest/NotFound name what is wrong."""
    if not isinstance(doc, dict) or set(doc) - {"url", "mode"}:
        raise BadRequest("invalid_body", "a JSON object with optional url and mode")
    hit = await request.app[FORWARDER].load_hit(ident)
    audit.note(request, endpoint_id=hit["endpoint_id"])
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
        return hit, build_request_to(url, mode, hit), False
    if forward is None:
        raise BadRequest(
            "no_forward_target", "the hit's endpoint does not forward; give a url to replay to"
        )
    return hit, build_request_to(forward.url, mode, hit), True


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
