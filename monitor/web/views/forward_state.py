"""The forward side of the endpoint and hit pages: whether an endpoint forwards (its
hits then show a forward state), and the "Replay N matching hits" offer for the
page's current filter (started by ``replays.start_replay``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from monitor.model.hit import FORWARD_STATE_FILTERS
from monitor.storage.endpoints import Endpoint
from monitor.storage.hits import HitFilter
from monitor.web.appkeys import REPLAYS


def forwards(endpoint: Endpoint) -> bool:
    """Whether the endpoint has a forward target (its hits have a forward state)."""
    return endpoint.compiled.forward is not None


async def replay_offer(
    request: web.Request, endpoint: Endpoint, flt: HitFilter | None, kept: dict[str, str]
) -> dict[str, Any]:
    """The endpoint page's forward parts: the filter's states, and how many hits the
    current filter would replay (None: no target, or the filter is invalid)."""
    offer: dict[str, Any] = {
        "forwards": forwards(endpoint),
        "forward_states": FORWARD_STATE_FILTERS,
    }
    if not offer["forwards"] or flt is None:
        return {**offer, "replay": None}
    jobs = request.app[REPLAYS]
    count = await jobs.count(endpoint.id, flt)
    offer["replay"] = {
        "count": min(count, jobs.max_hits),
        "capped": count > jobs.max_hits,
        "filters": kept,
    }
    return offer
