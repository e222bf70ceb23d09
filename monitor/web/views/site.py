"""Web pages: sign-in, endpoints (list, create, settings), and their wiring.

Server-rendered with aiohttp-jinja2 (templates in ``monitor/web/views/templates``, autoescaped,
so captured text can never become markup); ``monitor/web/views/static`` holds one stylesheet and
one script. Pages read through the same stores as the JSON API. The hit pages and the
live stream are in ``hit_views``.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from monitor.rules.endpoint_fields import validate_fields
from monitor.rules.presets import PRESETS
from monitor.storage.endpoints import Endpoint
from monitor.web import api_tokens, audit, live
from monitor.web.alert_channels import check_channels, named_channel_ids
from monitor.web.api.routes import endpoint_id
from monitor.web.appkeys import ADMIN_TOKEN, CHANNELS, CHARTS, CONFIG, ENDPOINTS, HITS, POOL
from monitor.web.auth import (
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    end_session,
    safe_next,
    start_session,
    token_matches,
)
from monitor.web.errors import ERROR_PAGE, BadRequest, DomainError
from monitor.web.inputs import check_json, database_id, whole_number
from monitor.web.scopes import access_of
from monitor.web.views import audit as audit_views
from monitor.web.views import charts as chart_views
from monitor.web.views import hits as hit_views
from monitor.web.views import (
    present,
    reference,
    senders_card,
    settings_form,
    share_card,
    shared,
)
from monitor.web.views import render as pages

STATIC_DIR = Path(__file__).parent / "static"
LOGIN_CSRF_COOKIE = "pbm_login"
LOGIN_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def setup(app: web.Application) -> None:
    """Templates, page routes, security headers and the live stream's resources."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("monitor.web.views", "templates"),
        autoescape=True,
        default_helpers=False,
        filters={"ago": present.ago, "utc": present.utc},
    )
    app.cleanup_ctx.append(live.live_ctx)
    app.on_shutdown.append(live.close_streams)
    app.on_response_prepare.append(pages.security_headers)
    app[ERROR_PAGE] = pages.error_page
    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/endpoints", endpoints_page)
    app.router.add_post("/endpoints", create_endpoint)
    app.router.add_get("/endpoints/{endpoint_id}/settings", settings_page)
    app.router.add_post("/endpoints/{endpoint_id}/settings", update_settings)
    app.router.add_post("/endpoints/{endpoint_id}/rotate", rotate_token)
    app.router.add_post("/endpoints/{endpoint_id}/delete", delete_endpoint)
    app.router.add_post("/endpoints/{endpoint_id}/clear", clear_hits)
    hit_views.add_routes(app)
    chart_views.add_routes(app)
    share_card.add_routes(app, settings_page)
    senders_card.add_routes(app)
    shared.add_routes(app)
    reference.add_routes(app)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)


async def index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/endpoints")


async def favicon(request: web.Request) -> web.FileResponse:
    """The SVG icon the pages link to, for browsers that ask /favicon.ico anyway."""
    return web.FileResponse(
        STATIC_DIR / "favicon.svg",
        headers={"Content-Type": "image/svg+xml", "Cache-Control": "public, max-age=86400"},
    )


def login_nonce(request: web.Request) -> str | None:
    """The sign-in form's nonce cookie, if it is one we could have set (cookies are
    the sender's bytes: they go back into the page only when they are a token)."""
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return nonce if LOGIN_NONCE.fullmatch(nonce) else None


async def login_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    nonce = login_nonce(request) or secrets.token_urlsafe(16)
    context = {"next": safe_next(request.query.get("next")), "error": error, "nonce": nonce}
    response = pages.render(request, "login.html", context, status=status)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, nonce, httponly=True, samesite="Strict", path="/login",
        secure=is_https(request),
    )  # fmt: skip
    return response


async def login(request: web.Request) -> web.Response:
    form = await pages.form_fields(request)
    nonce = login_nonce(request)
    # Double-submit: a cross-site form cannot read or set our cookie to match.
    if not nonce or not secrets.compare_digest(form.get("nonce", "").encode(), nonce.encode()):
        return await login_page(request, "The sign-in form expired: try again.", 400)
    token = form.get("token", "").strip()
    scoped = None
    if not token_matches(token, request.app[ADMIN_TOKEN]):
        if api_tokens.looks_like_token(token):
            scoped = await api_tokens.authenticate(request.app[POOL], token)
        if scoped is None:
            return await login_page(
                request, "That is not the admin token or a live API token.", 401
            )
    response = web.HTTPSeeOther(safe_next(form.get("next")))
    pool, admin_token = request.app[POOL], request.app[ADMIN_TOKEN]
    cookie = await start_session(pool, admin_token, None if scoped is None else scoped.id)
    response.set_cookie(
        SESSION_COOKIE, cookie, max_age=SESSION_MAX_AGE_S,
        httponly=True, samesite="Lax", path="/", secure=is_https(request),
    )  # fmt: skip
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    raise response


async def logout(request: web.Request) -> web.Response:
    await pages.read_form(request)
    await end_session(request.app[POOL], request.cookies.get(SESSION_COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def is_https(request: web.Request) -> bool:
    return request.secure or request.app[CONFIG].base_url.startswith("https:")


async def endpoints_page(
    request: web.Request, error: str = "", form: dict[str, str] | None = None, status: int = 200
) -> web.Response:
    access = access_of(request)
    endpoints = [e for e in await request.app[ENDPOINTS].list() if access.sees(e.id)]
    summaries = await request.app[HITS].summaries([e.id for e in endpoints])
    sparks = await request.app[CHARTS].sparklines([e.id for e in endpoints])
    base = request.app[CONFIG].base_url
    rows = [
        {"endpoint": e, "capture_url": e.capture_url(base), "summary": summaries.get(e.id, {}),
         "spark": chart_views.sparkline(sparks[e.id])}
        for e in endpoints
    ]  # fmt: skip
    context = {
        "rows": rows,
        "presets": PRESETS.values(),
        "error": error,
        "form": form or {},
        "crumbs": [("Endpoints", None)],
    }
    return pages.render(request, "endpoints.html", context, status=status)


def split_names(raw: str) -> list[str]:
    return [n for n in raw.replace(",", " ").split() if n]


async def create_endpoint(request: web.Request) -> web.Response:
    form = await pages.read_form(request)
    settings: dict[str, Any] = {}
    if form.get("preset"):
        settings["preset"] = form["preset"]
    if form.get("required_params", "").strip():
        settings["required_params"] = split_names(form["required_params"])
    try:
        fields = validate_fields(
            {"name": form.get("name", ""), "settings": settings}, require_name=True
        )
    except DomainError as exc:
        return await endpoints_page(request, exc.message, form, status=400)
    endpoint = await request.app[ENDPOINTS].create(fields)
    audit.note_endpoint(request, after=endpoint)
    raise web.HTTPSeeOther(f"/endpoints/{endpoint.id}?created=1")


async def settings_page(
    request: web.Request,
    error: str = "",
    form: dict[str, str] | None = None,
    status: int = 200,
    endpoint: Endpoint | None = None,
    share: dict[str, str] | None = None,
) -> web.Response:
    """The form fields and the JSON editor, both from the stored endpoint; after a
    refused save, what the user posted (so nothing typed is lost) and the message
    beside the field it names. ``share``: a share link just made, or why not."""
    endpoint = endpoint or await request.app[ENDPOINTS].get(endpoint_id(request))
    values = {
        "name": endpoint.name,
        "description": endpoint.description,
        "settings": json.dumps(endpoint.settings, indent=2),
        "response_status": str(endpoint.response_status),
        "response_body": endpoint.response_body,
        "response_content_type": endpoint.response_content_type,
        **settings_form.field_values(endpoint.settings),
        **(form or {}),
    }
    json_error = bool(error and form and "settings" in form)
    channels = await request.app[CHANNELS].all() if sees_channels(request) else None
    context = {
        "channels": channels,
        "channel_ids": set(settings_form.names(values.get("alert_channel_ids", ""))),
        "endpoint": endpoint,
        "setup": pages.setup_lines(request, endpoint),
        "values": values,
        "error": error,
        "error_field": "" if json_error or not error else settings_form.field_of(error) or "",
        "json_open": json_error,
        "presets": PRESETS.values(),
        "saved": request.query.get("saved") == "1",
        "rotated": request.query.get("rotated") == "1",
        "cleared": database_id(request.query.get("cleared", "")),
        "share": await share_card.card(request, endpoint, **(share or {})),
        "senders": await senders_card.card(request, endpoint.id),
        "history": await audit_views.recent(request, endpoint.id),
        "crumbs": [
            ("Endpoints", "/endpoints"),
            (endpoint.name, f"/endpoints/{endpoint.id}"),
            ("Settings", None),
        ],
    }
    return pages.render(request, "settings.html", context, status=status)


async def update_settings(request: web.Request) -> web.Response:
    """Save the settings form, or the JSON editor's whole document (a form that posts
    ``settings``). Either way the endpoint store validates the result as the API's
    does; name, description and response change only when the form carries them."""
    ident = endpoint_id(request)
    form = await pages.read_form(request)
    try:
        stored = await request.app[ENDPOINTS].get(ident)
        if "settings" in form:
            try:
                settings = json.loads(form["settings"].strip() or "{}")
            except (ValueError, RecursionError) as exc:
                raise BadRequest("invalid_settings", f"settings: not valid JSON ({exc})") from None
        else:
            await alert_form(request, form, stored)
            settings = settings_form.apply_form(stored.settings, form)
        check_json(settings, "settings")
        await check_channels(request.app, settings, named_channel_ids(stored.settings))
        doc: dict[str, Any] = {"settings": settings}
        for key in ("name", "description"):
            if key in form:
                doc[key] = form[key]
        if "response_status" in form:
            doc["response"] = {
                "status": whole_number("response status", form["response_status"], 200, 599),
                "body": form.get("response_body", ""),
                "content_type": form.get("response_content_type", ""),
            }
        after = await request.app[ENDPOINTS].update(ident, doc)
    except BadRequest as exc:
        return await settings_page(request, exc.message, form, status=400)
    audit.note_endpoint(request, stored, after)
    raise web.HTTPSeeOther(f"/endpoints/{ident}/settings?saved=1")


def sees_channels(request: web.Request) -> bool:
    """Channels are the admin's (the rule table): only then does the form list them."""
    access = access_of(request)
    return access.has("admin") and access.endpoint_ids is None


async def alert_form(request: web.Request, form: dict[str, str], current: Endpoint) -> None:
    """The Alerts fieldset's checkboxes as the text fields ``settings_form`` reads: an
    unticked box is not posted at all. Channels come from the ticked boxes when the
    form listed them, else the stored ones stay (a viewer who may not see channels)."""
    if "alert_silence_after" not in form:
        return  # the form had no Alerts fieldset
    form["alert_forwards_given_up"] = "true" if form.get("alert_forwards_given_up") else ""
    if form.get("alert_channels_shown") == "1" and sees_channels(request):
        ticked = (await request.post()).getall("alert_channel", [])
        form["alert_channel_ids"] = ",".join(v for v in ticked if isinstance(v, str))
    else:
        form["alert_channel_ids"] = settings_form.field_values(current.settings)[
            "alert_channel_ids"
        ]


async def rotate_token(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    form = await pages.read_form(request)
    if form.get("confirm") != "yes":
        return await settings_page(
            request, "Tick the box to confirm: the old capture URL stops working.", status=400
        )
    await request.app[ENDPOINTS].rotate_token(ident)
    raise web.HTTPSeeOther(f"/endpoints/{ident}/settings?rotated=1")


async def delete_endpoint(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    form = await pages.read_form(request)
    if form.get("confirm") != "yes":
        return await settings_page(
            request, "Tick the box to confirm: the endpoint and all its hits are deleted.",
            status=400,
        )  # fmt: skip
    before = await request.app[ENDPOINTS].get(ident)
    await request.app[ENDPOINTS].delete(ident)
    audit.note_endpoint(request, before=before)
    raise web.HTTPSeeOther("/endpoints")


async def clear_hits(request: web.Request) -> web.Response:
    """Delete every hit of the endpoint and keep it (``EndpointStore.clear``)."""
    ident = endpoint_id(request)
    form = await pages.read_form(request)
    if form.get("confirm") != "yes":
        return await settings_page(
            request, "Tick the box to confirm: every hit of this endpoint is deleted.",
            status=400,
        )  # fmt: skip
    deleted = await request.app[ENDPOINTS].clear(ident)
    audit.note(request, after={"hits_deleted": deleted})
    raise web.HTTPSeeOther(f"/endpoints/{ident}/settings?cleared={deleted}")
