"""The endpoint page (filtered hit list, summary, live stream) and the hit page.

The list, the rows a live page fetches and the JSON API all call ``HitStore.list``
with a ``HitFilter``; the live stream only says *that* there is news (see ``live``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from monitor.storage.endpoints import Endpoint
from monitor.storage.hits import HitFilter, decode_cursor, encode_cursor
from monitor.web import audit, streams
from monitor.web.api.export import FORMATS, export_format, stream_export
from monitor.web.api.routes import endpoint_id
from monitor.web.appkeys import ALERTS, CONFIG, ENDPOINTS, HITS
from monitor.web.errors import BadRequest, DomainError
from monitor.web.inputs import hit_id
from monitor.web.live import LIVE, LiveClosed
from monitor.web.views import charts as chart_views
from monitor.web.views import forward_state, present
from monitor.web.views import render as pages
from monitor.web.views.clicks import click_url

PAGE_SIZE = 50
LIVE_HEARTBEAT_S = 15.0
# After telling a page about new hits, wait this long before telling it again.
LIVE_MIN_INTERVAL_S = 0.25
RANGES = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
FILTER_KEYS = ("flag", "method", "q", "range", "since", "until", "forward_state")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/endpoints/{endpoint_id}", endpoint_page)
    app.router.add_get("/endpoints/{endpoint_id}/rows", new_rows)
    app.router.add_get("/endpoints/{endpoint_id}/live", live_stream)
    app.router.add_get("/endpoints/{endpoint_id}/export", export_page)
    app.router.add_get("/hits/{hit_id}", hit_page)
    app.router.add_get("/hits/{hit_id}/body", hit_body)
    app.router.add_post("/hits/{hit_id}/delete", delete_hit)


def form_time(name: str, raw: str) -> datetime | None:
    """A datetime-local form value (no zone: UTC; the page script converts the browser's
    local time before it sends one), or an RFC 3339 time."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # OverflowError: past year 9999 once in UTC
        raise BadRequest("invalid_query", f"{name}: a time such as 2026-01-31T12:00") from None


def page_filter(query: Any) -> tuple[HitFilter, dict[str, str]]:
    """The filter a page's query string asks for, and the values to keep in links."""
    values = {k: query.get(k, "").strip() for k in FILTER_KEYS}
    flag, method = values["flag"], values["method"].upper()
    if flag and flag not in ("any", "clean", "real", *present.FLAG_NAMES):
        raise BadRequest("invalid_query", f"flag: unknown flag {flag[:40]!r}")
    if method and method not in METHODS:
        raise BadRequest("invalid_query", f"method: one of {', '.join(METHODS)}")
    since, until = form_time("since", values["since"]), form_time("until", values["until"])
    # Kept as the form shows them (UTC, no zone), whatever form they came in.
    for key, when in (("since", since), ("until", until)):
        values[key] = when.replace(tzinfo=None).isoformat() if when else ""
    if values["range"] in RANGES:
        since = max(since or datetime.min.replace(tzinfo=UTC),
                    datetime.now(UTC) - timedelta(seconds=RANGES[values["range"]]))  # fmt: skip
    flt = HitFilter(
        flags=(flag,) if flag not in ("", "any", "clean", "real") else (),
        flagged={"any": True, "clean": False}.get(flag),
        # "real": every hit but test postbacks (flag test_traffic).
        test=False if flag == "real" else None,
        since=since,
        until=until,
        method=method or None,
        search=values["q"] or None,
        forward_state=values["forward_state"] or None,  # an unknown one: InvalidInput
    )
    return flt, {k: v for k, v in values.items() if v}


def row(hit: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    received = datetime.fromisoformat(hit["received_at"])
    return {
        "hit": hit,
        # The Forward column shows only for endpoints that forward (forward_state.forwards).
        "forwards": forward_state.forwards(endpoint),
        "amount": present.amount(hit, endpoint.rules),
        "arrived": present.arrived(hit),
        "cursor": encode_cursor(received, uuid.UUID(hit["id"])),
    }


async def summary(request: web.Request, endpoint_id: int) -> dict[str, Any]:
    """The summary strip, from the same query as GET /api/endpoints/{id}/stats."""
    hour = await request.app[HITS].stats(endpoint_id, "1h")
    day = await request.app[HITS].stats(endpoint_id, "24h")
    return {
        "hits_1h": hour["total"],
        "flagged_1h": hour["flagged"],
        "hits_24h": day["total"],
        "flagged_24h": day["flagged"],
        # Test postbacks are left out of the counts above; shown apart when any came.
        "test_24h": day["test_hits"],
        "duplicate_rate": f"{day['duplicate_rate']:.1%}",
        "by_flag": sorted(day["by_flag"].items(), key=lambda kv: -kv[1])[:3],
        "last_hit_at": day["last_hit_at"],
    }


# Resolved alerts the endpoint page lists (the API gives more).
ALERT_HISTORY = 10


async def endpoint_page(request: web.Request) -> web.Response:
    endpoint = await request.app[ENDPOINTS].get(endpoint_id(request))
    cursor = request.query.get("cursor") or None
    paged = cursor is not None
    error, next_cursor = "", None
    rows: list[dict[str, Any]] = []
    kept: dict[str, str] = {}
    flt = HitFilter()
    try:
        flt, kept = page_filter(request.query)
        hits, next_cursor = await request.app[HITS].list(
            endpoint.id, flt, cursor=cursor, limit=PAGE_SIZE
        )
        rows = [row(h, endpoint) for h in hits]
    except DomainError as exc:
        error = exc.message
    chart_key = chart_views.chart_range(request.query.get("chart") or None)
    chart_param = endpoint.compiled.conversion_time_param
    context = {
        "endpoint": endpoint,
        "setup": pages.setup_lines(request, endpoint),
        "created": request.query.get("created") == "1",
        # A page with a filter error shows no hits, and no charts either.
        "charts": None
        if error
        else await chart_views.chart_context(request, endpoint.id, chart_param, chart_key),
        "chart_nav": chart_views.chart_links(f"/endpoints/{endpoint.id}", request.query, chart_key),
        "summary": await summary(request, endpoint.id),
        "alerts": await request.app[ALERTS].of_endpoint(endpoint.id, past_limit=ALERT_HISTORY),
        "rows": rows,
        "error": error,
        "filters": kept,
        "filtered": bool(kept),
        "flag_names": present.FLAG_NAMES,
        "methods": METHODS,
        "ranges": RANGES,
        "paged": paged,
        "next_url": f"?{urlencode({**kept, 'cursor': next_cursor})}" if next_cursor else "",
        "first_url": f"?{urlencode(kept)}",
        "rows_url": f"/endpoints/{endpoint.id}/rows?{urlencode(kept)}",
        # Only with a valid filter: a page with a filter error lists, streams and exports
        # nothing (it used to stream every hit, unfiltered).
        "live": not paged and not error,
        "exports": {} if error else export_links(endpoint.id, kept),
        "crumbs": [pages.HOME_CRUMB, (endpoint.name, None)],
        **await forward_state.replay_offer(request, endpoint, flt if not error else None, kept),
    }
    return pages.render(request, "endpoint.html", context, status=400 if error else 200)


def export_links(endpoint_id: int, kept: dict[str, str]) -> dict[str, str]:
    """Each export format's link, for the hits the page's filters show."""
    return {
        fmt: f"/endpoints/{endpoint_id}/export?{urlencode({**kept, 'format': fmt})}"
        for fmt in FORMATS
    }


async def export_page(request: web.Request) -> web.StreamResponse:
    """The endpoint page's export button: the hits its filters show, as the API's export
    (``GET /api/endpoints/{id}/export``) streams them, for a signed-in browser. Only reads."""
    ident = endpoint_id(request)
    fmt = export_format(request)
    flt, _ = page_filter(request.query)
    return await stream_export(request, ident, fmt, flt)


async def new_rows(request: web.Request) -> web.Response:
    """Hits newer than ``after`` (a row cursor) that match the page's filters, as rows."""
    endpoint = await request.app[ENDPOINTS].get(endpoint_id(request))
    flt, _ = page_filter(request.query)
    after = request.query.get("after")
    if after:
        flt = dataclasses.replace(flt, after=decode_cursor(after))
    hits, _ = await request.app[HITS].list(endpoint.id, flt, limit=PAGE_SIZE)
    context = {
        "rows": [row(h, endpoint) for h in hits],
        "summary": await summary(request, endpoint.id),
    }
    return pages.render(request, "_rows.html", context)


async def live_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``event: hits`` whenever the endpoint stored new hits."""
    endpoint = await request.app[ENDPOINTS].get(endpoint_id(request))
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # let proxies pass events through at once
        }
    )
    async with streams.prepared(response, request):
        subscription = request.app[LIVE].subscribe(endpoint.id)
        try:
            await response.write(b"retry: 2000\n: connected\n\n")
            while True:
                if await subscription.wait(LIVE_HEARTBEAT_S):
                    await response.write(b"event: hits\ndata: new\n\n")
                    await asyncio.sleep(LIVE_MIN_INTERVAL_S)
                else:
                    await response.write(b": keep-alive\n\n")
        except (LiveClosed, ConnectionResetError):
            pass
        finally:
            subscription.close()
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
    return response


async def hit_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    hit = await request.app[HITS].get(hit_id(request))
    endpoint = await request.app[ENDPOINTS].get(hit["endpoint_id"])
    base = request.app[CONFIG].base_url
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
    context = {
        "hit": hit,
        "endpoint": endpoint,
        "url": present.full_url(base, hit),
        "params": params,
        "flags": [
            {**f, "help": present.FLAG_HELP.get(f.get("flag", ""), "")} for f in hit["flags"]
        ],
        "amount": present.amount(hit, endpoint.rules),
        "body": present.body_view(hit),
        "curl": present.curl_command(base, hit),
        "body_file": present.body_file_name(hit),
        "body_preview_bytes": present.BODY_PREVIEW_BYTES,
        "first_hit_id": first,
        "click_url": click_url(hit["click_id"]) if hit["click_id"] else None,
        "forwards": forward_state.forwards(endpoint),
        "around": await request.app[HITS].neighbours(hit),
        "deleted": request.query.get("deleted") == "1",
        "error": error,
        "crumbs": [
            pages.HOME_CRUMB,
            (endpoint.name, f"/endpoints/{endpoint.id}"),
            (f"Hit {present.short_id(hit['id'])}", None),
        ],
    }
    return pages.render(request, "hit.html", context, status=status)


async def hit_body(request: web.Request) -> web.Response:
    """The stored body, byte for byte, as a download. The bytes are the sender's, so
    the browser must never render or sniff them: octet-stream, an attachment, nosniff
    (and the pages' CSP, added to every response)."""
    hit = await request.app[HITS].get(hit_id(request))
    return web.Response(
        body=present.body_bytes(hit),
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{present.body_file_name(hit)}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


async def delete_hit(request: web.Request) -> web.Response:
    """Delete the hit (``HitStore.delete`` says what else goes), then show the next
    one down the list, so a run of junk hits can be deleted one after another."""
    ident = hit_id(request)
    form = await pages.read_form(request)
    if form.get("confirm") != "yes":
        return await hit_page(request, "Tick the box to confirm: the hit is deleted.", 400)
    hit = await request.app[HITS].get(ident)
    around = await request.app[HITS].neighbours(hit)
    endpoint_id = await request.app[HITS].delete(ident)
    audit.note(request, endpoint_id=endpoint_id)
    after = around["older"] or around["newer"]
    raise web.HTTPSeeOther(f"/hits/{after}?deleted=1" if after else f"/endpoints/{endpoint_id}")
