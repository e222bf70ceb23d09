"""The HTTP answers of errors, and the one error middleware.

Storage and rules raise domain errors (``domain_errors``) that know nothing of
HTTP; this module maps each to its status.

``/api/`` answers ``{"error": {"code", "message"}}``; a browser asking for any other
path gets an HTML page (the web views' page inside their layout, registered under
``ERROR_PAGE``; this module's bare page if there is none or it fails), anything else
plain text. Unexpected exceptions are logged with their traceback and answered with a generic 500
that reveals nothing about the internals.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from monitor.model.errors import Conflict, DomainError, InvalidInput, NotFound
from monitor.model.paths import CAPTURE_PREFIX

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# (request, status, message) -> the page; set by the web views, which this module cannot
# import (they import it), and kept beside its user like auth.SESSION.
ErrorPage = Callable[[web.Request, int, str], web.Response]
ERROR_PAGE: web.AppKey[ErrorPage] = web.AppKey("error_page")


class Unauthorized(DomainError):
    """The admin token or session is missing or wrong; raised by the web layer itself."""


class Forbidden(DomainError):
    """A scoped token (or its session) lacks what the route needs (``access``): 403."""

    status = 403


# The old name of InvalidInput, for the modules that still import it from here.
BadRequest = InvalidInput


class BodyTooLarge(DomainError):
    """A request body (or an uploaded report) past its limit: 413."""

    status = 413


# Each domain error's answer. A web-layer error may carry its own ``status`` instead
# (BodyTooLarge: 413).
STATUS_OF: dict[type[DomainError], int] = {
    InvalidInput: 400,
    Unauthorized: 401,
    NotFound: 404,
    Conflict: 409,
}


def http_status(exc: DomainError) -> int:
    """The HTTP status that answers a domain error."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 400


def error_response(request: web.Request, status: int, code: str, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="postback-monitor"'} if status == 401 else None
    if request.path.startswith("/api/"):
        return web.json_response(
            {"error": {"code": code, "message": message}}, status=status, headers=headers
        )
    if wants_html(request):
        response = _layout_page(request, status, message) or web.Response(
            status=status, text=error_page(status, message), content_type="text/html"
        )
        response.headers.extend(headers or {})
        return response
    return web.Response(status=status, text=f"{message}\n", headers=headers)


def wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def _layout_page(request: web.Request, status: int, message: str) -> web.Response | None:
    render = request.app.get(ERROR_PAGE)
    if render is None:
        return None
    try:
        return render(request, status, message)
    except Exception:  # an error page must not fail the answer: the bare page will do
        log.exception("request.error_page_failed", status=status, path=safe_path(request))
        return None


def error_page(status: int, message: str) -> str:
    """A browser's error page: the message escaped, a way back, nothing internal."""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{status}</title>'
        '<link rel="stylesheet" href="/static/style.css"></head><body><main class="card narrow">'
        f"<h1>{status}</h1><p>{html.escape(message)}</p>"
        '<p><a href="/endpoints">Back to endpoints</a></p></main></body></html>'
    )


def safe_path(request: web.Request) -> str:
    """The request path fit for logs: capture tokens are secrets and never logged (a
    postback sent to the management listener by mistake carries one)."""
    path = request.rel_url.path
    if path.startswith(CAPTURE_PREFIX):
        return f"{CAPTURE_PREFIX}<token>" + ("/..." if path.count("/") > 2 else "")
    return path


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    431: "headers_too_large",
    503: "unavailable",
}


def http_message(exc: web.HTTPException) -> str:
    """An HTTP exception's own text when a handler gave one, else its reason phrase."""
    text = (exc.text or "").strip()
    return exc.reason if not text or text == f"{exc.status}: {exc.reason}" else text


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        return error_response(request, http_status(exc), exc.code, exc.message)
    except web.HTTPException as exc:
        # aiohttp's own answers (no route: 404, wrong method: 405, ...) and the pages'
        # raised ones; a browser gets them as a page with a way back, not "404: Not Found".
        api = request.path.startswith("/api/")
        if exc.status < 400 or not (api or wants_html(request)):
            raise
        code = HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if api else http_message(exc)
        response = error_response(request, exc.status, code, message)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        log.exception("request.failed", method=request.method, path=safe_path(request))
        return error_response(request, 500, "internal_error", "internal server error")
