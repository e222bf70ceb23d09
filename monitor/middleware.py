"""The app's one middleware: each request goes down the chain its kind needs.

aiohttp runs every handler through each registered middleware (and one of its own)
on every request, a coroutine layer apiece. Management requests need error
handling, authentication and the query check; capture requests need none of those
and are the hot path, so their handler guards itself (``capture_handler``) and
they pass straight through here.
"""

from __future__ import annotations

from functools import partial

from aiohttp import web

from monitor import capture, metrics
from monitor.auth import auth_middleware
from monitor.errors import Handler, error_middleware
from monitor.openapi import unknown_query_middleware

# Measured first, so that a 500 from the error guard is counted as a capture error.
capture_handler: Handler = metrics.measured_capture(
    partial(error_middleware, handler=capture.capture)
)


@web.middleware
async def service_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.handler is capture_handler:
        return await handler(request)
    query_checked = partial(unknown_query_middleware, handler=handler)
    return await error_middleware(request, partial(auth_middleware, handler=query_checked))
