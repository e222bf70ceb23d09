"""The "Senders" card of an endpoint's settings page: the networks and parameter-name
sets the writer learned (docs/rules.md, Unknown senders), and accepting a network
first seen after learning, so its hits are no longer ``new_sender``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from monitor.storage.sender_store import parse_network
from monitor.web import audit
from monitor.web.api.routes import endpoint_id
from monitor.web.appkeys import ENDPOINTS, SENDERS
from monitor.web.errors import BadRequest, NotFound
from monitor.web.views import render as pages


def add_routes(app: web.Application) -> None:
    app.router.add_post("/endpoints/{endpoint_id}/senders/accept", accept)


async def card(request: web.Request, ident: int) -> dict[str, Any]:
    """The card's rows: times as datetimes for the page's filters."""
    known = await request.app[SENDERS].list(ident)
    for row in (*known["networks"], *known["shapes"]):
        for key in ("first_seen_at", "last_seen_at"):
            row[key] = datetime.fromisoformat(row[key])
    return {**known, "accepted": request.query.get("sender_accepted", "")}


async def accept(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    form = await pages.read_form(request)
    await request.app[ENDPOINTS].get(ident)  # 404 for an unknown endpoint
    network = parse_network(form.get("network", ""))
    if network is None:
        raise BadRequest("invalid_field", "network: an IP network like 203.0.113.0/24")
    if await request.app[SENDERS].accept(ident, network) is None:
        raise NotFound("sender_not_found", f"endpoint {ident} has not seen network {network}")
    audit.note(request, target=f"network {network}", endpoint_id=ident)
    raise web.HTTPSeeOther(f"/endpoints/{ident}/settings?sender_accepted={network}#senders")
