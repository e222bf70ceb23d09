"""The pages a share link opens, without an account: one endpoint's hits, newest
first, and each of its hits, read-only.

The link's token in the path is the credential (the auth middleware lets ``/s/``
through; ``share_links.open`` finds the live link by the token's hash). An unknown,
expired or revoked link, a hit of another endpoint, and a malformed token all get
the same not-found page, so a visitor cannot tell which. The pages show no capture
URL or token, no settings, nothing that changes anything, and no link into the
management pages; hits pass through ``shared_present.shared_hit`` first.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from monitor.model.paths import SHARE_PREFIX
from monitor.rules.charts import DEFAULT_RANGE, RANGES
from monitor.storage.endpoints import Endpoint
from monitor.storage.hits import HitFilter
from monitor.storage.share_links import ShareLink
from monitor.web.appkeys import ENDPOINTS, HITS, SHARE_LINKS
from monitor.web.errors import DomainError, NotFound
from monitor.web.inputs import hit_id
from monitor.web.sharing import SHARE_TOKEN
from monitor.web.views import charts as chart_views
from monitor.web.views import hits as hit_views
from monitor.web.views import present
from monitor.web.views import render as pages
from monitor.web.views.shared_present import shared_hit

PAGE_SIZE = 50
# A shared page's address carries its credential: no Referer may take it elsewhere,
# and no search engine may keep it.
SHARED_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}


def add_routes(app: web.Application) -> None:
    app.router.add_get(SHARE_PREFIX + "{token}", shared_list)
    app.router.add_get(SHARE_PREFIX + "{token}/hits/{hit_id}", shared_hit_page)


class LinkGone(Exception):
    """No live link, or nothing of it at this address: the one not-found page."""


async def open_link(request: web.Request) -> tuple[ShareLink, Endpoint]:
    token = request.match_info["token"]
    if SHARE_TOKEN.fullmatch(token) is None:
        raise LinkGone
    link = await request.app[SHARE_LINKS].open(token)
    if link is None:
        raise LinkGone
    try:
        endpoint = await request.app[ENDPOINTS].get(link.endpoint_id)
    except NotFound:  # deleted since the lookup: its links went with it
        raise LinkGone from None
    return link, endpoint


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    response = pages.render(request, template, {"signed_in": False, "csrf": "", **context}, status)
    response.headers.update(SHARED_HEADERS)
    return response


def gone(request: web.Request) -> web.Response:
    return render(request, "shared_gone.html", {}, status=404)


def shared_row(endpoint: Endpoint, hit: dict[str, Any]) -> dict[str, Any]:
    """A list row as the endpoint page's, of the shared hit, without forwarding."""
    return {**hit_views.row(shared_hit(endpoint, hit), endpoint), "forwards": False}


async def shared_list(request: web.Request) -> web.Response:
    try:
        link, endpoint = await open_link(request)
    except LinkGone:
        return gone(request)
    base = SHARE_PREFIX + request.match_info["token"]
    cursor = request.query.get("cursor") or None
    error, rows, next_cursor = "", [], None
    try:
        hits, next_cursor = await request.app[HITS].list(
            endpoint.id, HitFilter(), cursor=cursor, limit=PAGE_SIZE
        )
        rows = [shared_row(endpoint, h) for h in hits]
    except DomainError as exc:
        error = exc.message
    # The hits chart of this endpoint only: no payouts or delays, no live update.
    chart_key = request.query.get("chart", "")
    chart_key = chart_key if chart_key in RANGES else DEFAULT_RANGE
    context = {
        "link": link,
        "endpoint": endpoint,
        "charts": await chart_views.chart_context(
            request, endpoint.id, None, chart_key, with_delays=False
        ),
        "chart_links": {k: f"{base}?{urlencode({'chart': k})}" for k in RANGES},
        "rows": rows,
        "error": error,
        "hit_base": base + "/hits/",
        "first_url": base if cursor else "",
        "next_url": f"{base}?{urlencode({'cursor': next_cursor})}" if next_cursor else "",
    }
    return render(request, "shared_list.html", context, status=400 if error else 200)


async def shared_hit_page(request: web.Request) -> web.Response:
    try:
        link, endpoint = await open_link(request)
        hit = await request.app[HITS].get(hit_id(request))
    except (LinkGone, NotFound):
        return gone(request)
    if hit["endpoint_id"] != endpoint.id:  # another endpoint's hit: as if there were none
        return gone(request)
    around = await request.app[HITS].neighbours(hit)
    hit = shared_hit(endpoint, hit)
    by_param = present.flagged_params(hit)
    params = [
        {"name": k, "value": v, "source": source, "flags": by_param.get(k, [])}
        for source, pairs in (("query", hit["params"]), ("body", hit["body_params"]))
        for k, v in pairs
    ]
    first = next(
        (f.get("first_hit_id") for f in hit["flags"] if f.get("flag") == "duplicate_click_id"),
        None,
    )
    base = SHARE_PREFIX + request.match_info["token"]
    context = {
        "link": link,
        "endpoint": endpoint,
        "hit": hit,
        "path": hit["path"] + (f"?{hit['query_string']}" if hit["query_string"] else ""),
        "params": params,
        "flags": [
            {**f, "help": present.FLAG_HELP.get(f.get("flag", ""), "")} for f in hit["flags"]
        ],
        "amount": present.amount(hit, endpoint.rules),
        "body": present.body_view(hit),
        "first_hit_id": first,
        "around": around,
        "list_url": base,
        "hit_base": base + "/hits/",
    }
    return render(request, "shared_hit.html", context)
