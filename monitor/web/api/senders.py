"""The JSON API of an endpoint's known senders: list them, accept a new network.

Thin handlers over ``storage.sender_store.SenderStore``; the writer does the learning.
"""

from __future__ import annotations

from aiohttp import web

from monitor.storage.sender_store import parse_network
from monitor.web import audit
from monitor.web.api.routes import endpoint_id, read_json
from monitor.web.appkeys import ENDPOINTS, SENDERS
from monitor.web.errors import BadRequest, NotFound


async def list_senders(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    await request.app[ENDPOINTS].get(ident)  # 404 for an unknown endpoint
    return web.json_response(await request.app[SENDERS].list(ident))


async def accept_sender(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    await request.app[ENDPOINTS].get(ident)
    doc = await read_json(request)
    raw = doc.get("network") if isinstance(doc, dict) else None
    if not isinstance(raw, str) or (network := parse_network(raw)) is None:
        raise BadRequest("invalid_field", "network: an IP network like 203.0.113.0/24")
    row = await request.app[SENDERS].accept(ident, network)
    if row is None:
        raise NotFound("sender_not_found", f"endpoint {ident} has not seen network {network}")
    audit.note(request, target=f"network {network}", endpoint_id=ident)
    return web.json_response(row)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/endpoints/{endpoint_id}/senders", list_senders)
    app.router.add_post("/api/endpoints/{endpoint_id}/senders/accept", accept_sender)
