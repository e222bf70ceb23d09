"""The app's one middleware: error handling, authentication, the query check and the
audit log (an action's entry, once the handler has succeeded).

aiohttp runs every handler through each registered middleware (and one of its own)
on every request, a coroutine layer apiece; one middleware that calls the three
steps in order costs one layer. Capture is not here: it has its own listener
(``monitor.capture.front``).
"""

from __future__ import annotations

from functools import partial

from aiohttp import web

from monitor.web.api.openapi import unknown_query_middleware
from monitor.web.audit import audit_middleware
from monitor.web.auth import auth_middleware
from monitor.web.errors import Handler, error_middleware


@web.middleware
async def service_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    recorded = partial(audit_middleware, handler=handler)
    query_checked = partial(unknown_query_middleware, handler=recorded)
    return await error_middleware(request, partial(auth_middleware, handler=query_checked))
