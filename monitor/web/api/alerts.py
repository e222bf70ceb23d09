"""The alerts API: an endpoint's open alerts and their history (``storage.alerts``)."""

from __future__ import annotations

from aiohttp import web

from monitor.web.api.routes import endpoint_id
from monitor.web.appkeys import ALERTS, ENDPOINTS


async def endpoint_alerts(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    await request.app[ENDPOINTS].get(ident)  # 404 for an unknown endpoint
    return web.json_response(await request.app[ALERTS].of_endpoint(ident))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/endpoints/{endpoint_id}/alerts", endpoint_alerts)
