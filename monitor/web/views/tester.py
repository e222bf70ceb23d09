"""Web pages of the outbound side: the postback tester, and a hit's forwards with
replay buttons. Same functions as the JSON API (``tester.run``, ``Forwarder``)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from monitor.forwarding import tester
from monitor.rules import SettingsError
from monitor.rules.presets import PRESETS
from monitor.web.api.forwards import hit_id, replay_request
from monitor.web.appkeys import ENDPOINT_CACHE, FORWARDER, OUTBOUND
from monitor.web.errors import DomainError, http_status
from monitor.web.views import present
from monitor.web.views import render as pages


def add_routes(app: web.Application) -> None:
    app.router.add_get("/tester", tester_page)
    app.router.add_post("/tester", run_tester)
    app.router.add_get("/hits/{hit_id}/forwards", forwards_page)
    app.router.add_post("/hits/{hit_id}/replay", replay)


async def tester_page(
    request: web.Request,
    form: dict[str, str] | None = None,
    report: dict[str, Any] | None = None,
    error: str = "",
    status: int = 200,
) -> web.Response:
    context = {
        "form": form or {"method": "GET"},
        "report": report,
        "report_json": json.dumps(report, indent=2, ensure_ascii=False) if report else "",
        "methods": tester.METHODS,
        "presets": PRESETS.values(),
        "error": error,
        "crumbs": [("Tester", None)],
    }
    return pages.render(request, "tester.html", context, status=status)


async def run_tester(request: web.Request) -> web.Response:
    form = await pages.read_form(request)
    doc: dict[str, Any] = {
        "url": form.get("url", ""),
        "method": form.get("method", "GET"),
        "body": form.get("body", ""),
        "dry_run": form.get("dry_run") == "yes",
    }
    if form.get("preset"):
        doc["settings"] = {"preset": form["preset"]}
    try:
        report = await tester.run(request.app[OUTBOUND], tester.parse_request(doc))
    except (ValueError, SettingsError) as exc:
        return await tester_page(request, form, error=str(exc), status=400)
    return await tester_page(request, form, report)


async def forwards_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    forwarder = request.app[FORWARDER]
    ident = hit_id(request)
    hit = await forwarder.load_hit(ident)
    endpoint = await request.app[ENDPOINT_CACHE].lookup_id(hit["endpoint_id"])
    forwards = await forwarder.attempts(ident)
    # "Replayed" only for an attempt of this hit that the target accepted: the
    # redirect after a replay names it, and a refused one never gets here.
    replayed = request.query.get("replayed", "")
    # Deleted while we read its hit: the breadcrumb still names where it was.
    endpoint_name = endpoint.name if endpoint else f"Endpoint {hit['endpoint_id']}"
    context = {
        "hit_id": str(ident),
        "endpoint_id": hit["endpoint_id"],
        "received_at": hit["received_at"],
        "forwards": forwards,
        "has_target": endpoint is not None and endpoint.compiled.forward is not None,
        "replayed": any(str(a["id"]) == replayed and a["ok"] for a in forwards["items"]),
        "error": error,
        "crumbs": [
            pages.HOME_CRUMB,
            (endpoint_name, f"/endpoints/{hit['endpoint_id']}"),
            (f"Hit {present.utc(hit['received_at'])}", f"/hits/{ident}"),
            ("Forwards", None),
        ],
    }
    return pages.render(request, "forwards.html", context, status=status)


async def replay(request: web.Request) -> web.Response:
    form = await pages.read_form(request)
    doc = {k: form[k] for k in ("url", "mode") if form.get(k)}
    try:
        hit, req, to_target = await replay_request(request, hit_id(request), doc)
    except DomainError as exc:
        return await forwards_page(request, exc.message, status=http_status(exc))
    attempt = await request.app[FORWARDER].replay(hit, req, to_target=to_target)
    if not attempt["ok"]:
        answer = attempt["error"] or f"the target answered {attempt['status']}"
        return await forwards_page(request, f"Replay failed: {answer}", status=502)
    raise web.HTTPSeeOther(f"/hits/{hit['id']}/forwards?replayed={attempt['id']}")
