"""GET /api/endpoints/{id}/charts: the numbers behind the endpoint page's charts, so
users can chart them elsewhere. A thin handler over ``storage.charts.ChartStore``,
which the page reads too."""

from __future__ import annotations

from aiohttp import web

from monitor.rules.charts import DEFAULT_RANGE, RANGES
from monitor.web.api.routes import endpoint_id
from monitor.web.appkeys import CHARTS, ENDPOINTS
from monitor.web.errors import BadRequest
from monitor.web.scopes import access_of


def chart_range(raw: str | None) -> str:
    """The ``range`` query value, checked (absent: 24h)."""
    key = raw if raw is not None else DEFAULT_RANGE
    if key not in RANGES:
        raise BadRequest("invalid_query", f"range: one of {', '.join(RANGES)}")
    return key


async def endpoint_charts(request: web.Request) -> web.Response:
    endpoint = await request.app[ENDPOINTS].get(endpoint_id(request))
    key = chart_range(request.query.get("range"))
    param = endpoint.compiled.conversion_time_param
    within = access_of(request).endpoint_ids
    doc = await request.app[CHARTS].chart(endpoint.id, key, param, runs_within=within)
    return web.json_response(doc)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/endpoints/{endpoint_id}/charts", endpoint_charts)
