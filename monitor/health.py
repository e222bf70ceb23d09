"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from aiohttp import web

from monitor.typedefs import DATABASE_KEEPER, POOL, WRITER

READY_DB_TIMEOUT_S = 2.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and the writer is not backed up."""
    problems = []
    try:
        async with asyncio.timeout(READY_DB_TIMEOUT_S):
            await request.app[POOL].fetchval("SELECT 1")
    except Exception as exc:
        problems.append(f"database: {_database_problem(request.app, exc)}")
    writer = request.app[WRITER]
    if writer.queue_depth >= writer.queue_max_hits // 2:
        problems.append(f"writer: {writer.queue_depth} hits queued")
    if problems:
        return web.json_response({"status": "unavailable", "problems": problems}, status=503)
    if writer.spool is not None and writer.spool.has_pending():
        # Capture still answers (into the spool), but the database is not keeping up.
        return web.json_response(
            {"status": "degraded", "problems": [f"spool: {writer.spool_pending} hits pending"]},
            status=503,
        )
    return web.json_response({"status": "ready", "queue_depth": writer.queue_depth})


def _database_problem(app: web.Application, exc: Exception) -> str:
    """What is wrong with the database and what the service does about it, in words."""
    keeper = app[DATABASE_KEEPER]
    problem = keeper.problem() if keeper is not None else None
    if problem is None:
        problem = f"PostgreSQL is not answering ({_reason(exc)})"
    pending = app[WRITER].spool_pending
    if pending:
        problem += f"; hits are being spooled ({pending} pending)"
    return problem


def _reason(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer in {READY_DB_TIMEOUT_S:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()  # "connection refused", not "[Errno 111] Connection refused"
    return str(exc) or type(exc).__name__
