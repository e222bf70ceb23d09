"""Liveness and readiness probes on the management listener, for load balancers and
orchestrators; the words come from ``storage.readiness``, shared with the capture front.
"""

from __future__ import annotations

from aiohttp import web

from monitor.storage.readiness import ALIVE, readiness
from monitor.web.appkeys import DATABASE_KEEPER, POOL, WRITER


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(ALIVE)


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    status, body = await readiness(app[POOL], app[WRITER], app[DATABASE_KEEPER])
    return web.json_response(body, status=status)
