"""What every web page shares: rendering with the session's CSRF token, reading a
posted form safely, security headers, and the setup lines shown for an endpoint."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from monitor.rules.presets import get_preset
from monitor.storage.endpoints import Endpoint
from monitor.web.appkeys import ADMIN_TOKEN, CONFIG
from monitor.web.auth import SESSION, csrf_ok
from monitor.web.errors import BadRequest
from monitor.web.inputs import check_form
from monitor.web.scopes import access_of
from monitor.web.views import present

MAX_FORM_BYTES = 256 * 1024
# The first breadcrumb of every page under the endpoint list.
HOME_CRUMB = ("Endpoints", "/endpoints")
# No inline script or style anywhere: the policy can forbid both.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    session = request.get(SESSION)
    access = access_of(request)
    context = {
        "csrf": session.csrf_token(request.app[ADMIN_TOKEN]) if session else "",
        "signed_in": SESSION in request,
        # What the page offers follows the caller's token; access.check refuses the rest.
        "may_write": access.has("write"),
        "may_admin": access.has("admin") and access.endpoint_ids is None,
        "may_create": access.has("write") and access.endpoint_ids is None,
        "static": lambda name: request.app.router["static"].url_for(filename=name),
        **context,
    }
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """A browser's error page inside the layout: the status in words, the message
    (escaped by the template), and links back. ``errors.ERROR_PAGE`` calls it."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    context = {
        "status": status,
        "title": title,
        "message": message,
        "crumbs": [HOME_CRUMB, (f"{title} ({status})", None)],
    }
    return render(request, "error.html", context, status=status)


async def form_fields(request: web.Request) -> dict[str, str]:
    """The posted form's text fields, each checked to be text (``inputs.check_form``)."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise BadRequest("body_too_large", f"form: at most {MAX_FORM_BYTES} bytes")
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    check_form(fields)
    return fields


async def read_form(request: web.Request) -> dict[str, str]:
    """The posted form, after checking its CSRF token."""
    fields = await form_fields(request)
    if not csrf_ok(request, fields.get("csrf")):
        raise web.HTTPForbidden(text="the form's CSRF token is missing or stale: reload the page\n")
    return fields


def setup_lines(request: web.Request, endpoint: Endpoint) -> dict[str, str]:
    preset = get_preset(str(endpoint.settings.get("preset") or ""))
    base = request.app[CONFIG].base_url
    return {
        **present.setup_lines(endpoint.capture_url(base), preset),
        "postback_url": endpoint.postback_url(base) or "",
        "preset": preset.name if preset else "",
        "notes": preset.notes if preset else "",
    }
