"""GET /api/clicks/{click_id}: every hit of one click id across endpoints, oldest
first, for "my conversion is missing". The page (views/clicks.py) reads the same
``timeline``.

The route names no endpoint (``Find.LIST`` in the rule table): a token restricted to
endpoints sees the hits of those only, the others simply absent, so an unknown click
id and one of hidden endpoints look alike (an empty list, 200).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from monitor.storage.clicks import MAX_TIMELINE, click_timeline
from monitor.web.api.routes import with_amount
from monitor.web.appkeys import ENDPOINTS, HITS
from monitor.web.errors import BadRequest
from monitor.web.inputs import click_id as checked_click_id
from monitor.web.inputs import database_id
from monitor.web.scopes import access_of

# The most hits one answer holds (the tests lower it to see ``truncated``).
LIMIT = MAX_TIMELINE


@dataclass(frozen=True, slots=True)
class Timeline:
    click_id: str
    items: list[dict[str, Any]]
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return {"click_id": self.click_id, "items": self.items, "truncated": self.truncated}


def narrowed_to(raw: str | None) -> int | None:
    """The optional ``endpoint_id`` a caller narrows to; absent means every endpoint
    (given but empty is a 400, as any other value that is no id)."""
    if raw is None:
        return None
    ident = database_id(raw.strip())
    if ident is None or ident < 1:  # ids start at 1, as the OpenAPI document says
        raise BadRequest("invalid_query", "endpoint_id: an endpoint's id (a whole number from 1)")
    return ident


async def timeline(request: web.Request, raw_click_id: str, only: int | None) -> Timeline:
    """The click's hits in the endpoints the caller may see (narrowed to ``only``),
    each with its endpoint's name and the amount its endpoint's rules read, as the
    hit list gives it."""
    click = checked_click_id(raw_click_id)
    access = access_of(request)
    endpoints = {
        e.id: e
        for e in await request.app[ENDPOINTS].list()
        if access.sees(e.id) and (only is None or e.id == only)
    }
    hits, truncated = await click_timeline(
        request.app[HITS].pool, click, sorted(endpoints), limit=LIMIT
    )
    items = []
    for hit in hits:
        endpoint = endpoints[hit["endpoint_id"]]
        items.append({**with_amount(hit, endpoint.rules), "endpoint_name": endpoint.name})
    return Timeline(click, items, truncated)


async def get_click(request: web.Request) -> web.Response:
    only = narrowed_to(request.query.get("endpoint_id"))
    found = await timeline(request, request.match_info["click_id"], only)
    return web.json_response(found.to_json())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/clicks/{click_id}", get_click)
