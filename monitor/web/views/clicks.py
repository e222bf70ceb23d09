"""The click timeline page: every hit of one click id across the endpoints the
caller may see, oldest first, with its status, amount and flags explained.

It reads ``api.clicks.timeline``, as the JSON route does. ``/clicks?click_id=`` is
the search box's target and redirects to ``/clicks/{click_id}`` (URL-encoded), so a
timeline has one address to share. Share-link pages never link here: the timeline
crosses endpoints, and a share link opens one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from monitor.storage.clicks import MAX_TIMELINE
from monitor.web.api.clicks import narrowed_to, timeline
from monitor.web.inputs import click_id as checked_click_id
from monitor.web.views import present
from monitor.web.views import render as pages


def add_routes(app: web.Application) -> None:
    app.router.add_get("/clicks", click_search)
    app.router.add_get("/clicks/{click_id}", click_page)


def click_url(click_id: str) -> str:
    """The timeline's address: every character but unreserved ones percent-encoded,
    '/' included, so a click id is always one path segment."""
    return "/clicks/" + quote(click_id, safe="")


async def click_search(request: web.Request) -> web.Response:
    click = checked_click_id(request.query.get("click_id", ""))
    raise web.HTTPSeeOther(click_url(click))


def entry(hit: dict[str, Any]) -> dict[str, Any]:
    amount = " ".join(v for v in (hit["amount"], hit["currency"]) if v)
    flags = [{**f, "help": present.FLAG_HELP.get(f.get("flag", ""), "")} for f in hit["flags"]]
    return {"hit": hit, "amount": amount, "flags": flags, "short_id": present.short_id(hit["id"])}


async def click_page(request: web.Request) -> web.Response:
    only = narrowed_to(request.query.get("endpoint_id"))
    found = await timeline(request, request.match_info["click_id"], only)
    context = {
        "click_id": found.click_id,
        "entries": [entry(hit) for hit in found.items],
        "truncated": found.truncated,
        "max_entries": MAX_TIMELINE,
        "flag_help": present.FLAG_HELP,
        "crumbs": [pages.HOME_CRUMB, (f"Click {found.click_id[:40]}", None)],
    }
    return pages.render(request, "clicks.html", context)
