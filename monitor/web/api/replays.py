"""The JSON API of bulk replay: start one over a filtered set of hits, follow its progress.

Thin handlers over ``forwarding.replays.ReplayJobs``; the filters are the hit list's
(``routes.filter_from``), given as a JSON object instead of a query string.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import MultiDict

from monitor.web.api.routes import endpoint_id, filter_from, read_json
from monitor.web.appkeys import ENDPOINTS, REPLAYS
from monitor.web.errors import BadRequest

# The body's fields: the hit list's filters, as the list's query parameters name them.
FILTER_FIELDS = (
    "forward_state", "flag", "flagged", "test", "click_id", "since", "until", "method", "q",
)  # fmt: skip


def filter_values(doc: Any) -> MultiDict[str]:
    """The body as the list's query string would carry it: text values, ``flag`` a list."""
    if not isinstance(doc, dict):
        raise BadRequest("invalid_body", "a JSON object of hit list filters")
    unknown = sorted(set(doc) - set(FILTER_FIELDS))
    if unknown:
        raise BadRequest("invalid_body", f"unknown field(s): {', '.join(unknown)[:200]}")
    values: MultiDict[str] = MultiDict()
    for name, value in doc.items():
        if value is None:
            continue
        if name == "flag":
            flags = value if isinstance(value, list) else None
            if flags is None or not all(isinstance(f, str) for f in flags):
                raise BadRequest("invalid_field", "flag: a list of flag names")
            values.extend((name, f) for f in flags)
        elif name in ("flagged", "test"):
            if not isinstance(value, bool):
                raise BadRequest("invalid_field", f"{name}: true or false")
            values[name] = "true" if value else "false"
        elif isinstance(value, str):
            values[name] = value
        else:
            raise BadRequest("invalid_field", f"{name}: a string")
    return values


async def start_replay(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    await request.app[ENDPOINTS].get(ident)  # 404 for an unknown endpoint, before the body
    doc = await read_json(request)
    values = filter_values(doc)
    flt = filter_from(values)
    filters = {k: v for k, v in doc.items() if v is not None}
    job = await request.app[REPLAYS].start(ident, flt, filters)
    return web.json_response(
        job.as_json(), status=202, headers={"Location": f"/api/replays/{job.id}"}
    )


async def get_replay(request: web.Request) -> web.Response:
    job = request.app[REPLAYS].get(request.match_info["job_id"])
    return web.json_response(job.as_json())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/endpoints/{endpoint_id}/replays", start_replay)
    app.router.add_get("/api/replays/{job_id}", get_replay)
