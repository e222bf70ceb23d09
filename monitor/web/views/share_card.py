"""The "Share links" card of an endpoint's settings page: make a link (its URL shown
once, on the page that answers the form), list the links, revoke one.

The handlers render the settings page through the function ``site`` hands to
``add_routes`` (this module cannot import ``site``, which imports it). The new URL is
rendered into that answer and never put in a redirect, so it reaches no log or
history but the page itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiohttp import web

from monitor.storage.endpoints import Endpoint
from monitor.web import audit
from monitor.web.api.routes import endpoint_id
from monitor.web.api.share_links import link_id
from monitor.web.appkeys import CONFIG, ENDPOINTS, SHARE_LINKS
from monitor.web.errors import BadRequest
from monitor.web.inputs import whole_number
from monitor.web.sharing import DEFAULT_EXPIRY, MAX_EXPIRY, expiry_in_days, share_url
from monitor.web.views import render as pages

# settings_page(request, *, endpoint=..., share={...}, status=...)
SettingsPage = Callable[..., Awaitable[web.Response]]


def add_routes(app: web.Application, settings_page: SettingsPage) -> None:
    app.router.add_post("/endpoints/{endpoint_id}/share-links", partial(create, settings_page))
    app.router.add_post("/endpoints/{endpoint_id}/share-links/{link_id}/revoke", revoke)


async def card(
    request: web.Request, endpoint: Endpoint, new_url: str = "", error: str = ""
) -> dict[str, Any]:
    """What the card shows: the endpoint's links, and a link just made or a refusal."""
    now = datetime.now(UTC)
    links = await request.app[SHARE_LINKS].list(endpoint.id)
    return {
        "links": [{"link": link, "expired": link.expires_at <= now} for link in links],
        "new_url": new_url,
        "error": error,
        "revoked": request.query.get("share_revoked") == "1",
        "default_days": DEFAULT_EXPIRY.days,
        "max_days": MAX_EXPIRY.days,
    }


async def create(settings_page: SettingsPage, request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    form = await pages.read_form(request)
    endpoint = await request.app[ENDPOINTS].get(ident)
    try:
        days = whole_number("expires in (days)", form.get("days", ""), 1, MAX_EXPIRY.days)
        link, token = await request.app[SHARE_LINKS].create(ident, expiry_in_days(days))
    except BadRequest as exc:
        return await settings_page(
            request, endpoint=endpoint, share={"error": exc.message}, status=400
        )
    audit.note(request, target=f"share link {link.id}", after=link.to_json(datetime.now(UTC)))
    url = share_url(request.app[CONFIG], token)
    return await settings_page(request, endpoint=endpoint, share={"new_url": url})


async def revoke(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    await pages.read_form(request)
    await request.app[SHARE_LINKS].revoke(ident, link_id(request))
    raise web.HTTPSeeOther(f"/endpoints/{ident}/settings?share_revoked=1#share-links")
