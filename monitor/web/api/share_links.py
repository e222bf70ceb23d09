"""The share-link API: make, list and revoke read-only links to one endpoint's hits.

Bearer-only like the rest of /api/. The token is in the create answer's ``url`` and
nowhere else: the list shows when each link was made, expires and was last opened.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from monitor.web import audit
from monitor.web.api.routes import endpoint_id, read_json
from monitor.web.appkeys import CONFIG, ENDPOINTS, SHARE_LINKS
from monitor.web.errors import BadRequest, NotFound
from monitor.web.inputs import database_id
from monitor.web.sharing import expiry_at, share_url

FIELDS = frozenset({"expires_at"})


def link_id(request: web.Request) -> int:
    raw = request.match_info["link_id"]
    ident = database_id(raw)
    if ident is None:
        raise NotFound("share_link_not_found", f"no share link with id {raw[:40]!r}")
    return ident


async def create_share_link(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    body = await read_json(request, required=False)
    if not isinstance(body, dict):
        raise BadRequest("invalid_body", "request body: a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise BadRequest("invalid_field", f"unknown field(s): {', '.join(k[:40] for k in unknown)}")
    link, token = await request.app[SHARE_LINKS].create(ident, expiry_at(body.get("expires_at")))
    audit.note(request, target=f"share link {link.id}", after=link.to_json(datetime.now(UTC)))
    answer = {**link.to_json(datetime.now(UTC)), "url": share_url(request.app[CONFIG], token)}
    return web.json_response(answer, status=201)


async def list_share_links(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    now = datetime.now(UTC)
    links = await request.app[SHARE_LINKS].list(ident)
    if not links:  # 404 for an unknown endpoint, not an empty list
        await request.app[ENDPOINTS].get(ident)
    return web.json_response({"items": [link.to_json(now) for link in links]})


async def revoke_share_link(request: web.Request) -> web.Response:
    await request.app[SHARE_LINKS].revoke(endpoint_id(request), link_id(request))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    base = "/api/endpoints/{endpoint_id}/share-links"
    app.router.add_post(base, create_share_link)
    app.router.add_get(base, list_share_links)
    app.router.add_delete(base + "/{link_id}", revoke_share_link)
