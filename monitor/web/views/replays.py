"""Web pages of bulk replay: the form behind the endpoint page's "Replay N matching
hits" (``forward_state.replay_offer``) and the replay's progress page, which
refreshes itself while the replay runs.

Same jobs as the JSON API (``ReplayJobs``); the filter is the endpoint page's own
(``hits.page_filter``), so the hits replayed are the hits the page lists.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from monitor.web.api.routes import endpoint_id
from monitor.web.appkeys import ENDPOINTS, REPLAYS
from monitor.web.errors import DomainError, http_status
from monitor.web.views import render as pages
from monitor.web.views.hits import page_filter

# While a replay runs its page reloads this often (the Refresh header: no script).
REFRESH_S = 1


def add_routes(app: web.Application) -> None:
    app.router.add_post("/endpoints/{endpoint_id}/replays", start_replay)
    app.router.add_get("/replays/{job_id}", replay_page)


async def start_replay(request: web.Request) -> web.Response:
    form = await pages.read_form(request)
    endpoint = await request.app[ENDPOINTS].get(endpoint_id(request))
    try:
        flt, kept = page_filter(form)
        job = await request.app[REPLAYS].start(endpoint.id, flt, kept)
    except DomainError as exc:
        context = {"endpoint": endpoint, "job": None, "error": exc.message}
        return pages.render(request, "replay.html", context, status=http_status(exc))
    raise web.HTTPSeeOther(f"/replays/{job.id}")


async def replay_page(request: web.Request) -> web.Response:
    job = request.app[REPLAYS].get(request.match_info["job_id"])
    endpoint = await request.app[ENDPOINTS].get(job.endpoint_id)
    running = job.state == "running"
    context = {
        "endpoint": endpoint,
        "job": job,
        "error": "",
        "failed_url": f"/endpoints/{endpoint.id}?{urlencode({'forward_state': 'failed'})}",
    }
    response = pages.render(request, "replay.html", context)
    if running:
        response.headers["Refresh"] = str(REFRESH_S)
    return response
