"""Liveness and readiness probes for load balancers and orchestrators.

Both listeners answer them with the same words: the management side through the
handlers here, the capture front through ``readiness`` passed to it (a balancer in
front of capture asks the capture port, an orchestrator may ask either).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp import web

from monitor.embedded import KeepRunning
from monitor.typedefs import DATABASE_KEEPER, POOL, WRITER
from monitor.writer import HitWriter

READY_DB_TIMEOUT_S = 2.0
ALIVE: dict[str, Any] = {"status": "ok"}


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(ALIVE)


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    status, body = await readiness(app[POOL], app[WRITER], app[DATABASE_KEEPER])
    return web.json_response(body, status=status)


async def readiness(
    pool: asyncpg.Pool, writer: HitWriter, keeper: KeepRunning | None
) -> tuple[int, dict[str, Any]]:
    """(status, JSON body): ready when the database answers and the writer is not backed up."""
    problems = []
    try:
        async with asyncio.timeout(READY_DB_TIMEOUT_S):
            await pool.fetchval("SELECT 1")
    except Exception as exc:
        problems.append(f"database: {_database_problem(writer, keeper, exc)}")
    if writer.queue_depth >= writer.queue_max_hits // 2:
        problems.append(f"writer: {writer.queue_depth} hits queued")
    if problems:
        return 503, {"status": "unavailable", "problems": problems}
    if writer.spool is not None and writer.spool.has_pending():
        # Capture still answers (into the spool), but the database is not keeping up.
        return 503, {
            "status": "degraded",
            "problems": [f"spool: {writer.spool_pending} hits pending"],
        }
    return 200, {"status": "ready", "queue_depth": writer.queue_depth}


def _database_problem(writer: HitWriter, keeper: KeepRunning | None, exc: Exception) -> str:
    """What is wrong with the database and what the service does about it, in words."""
    problem = keeper.problem() if keeper is not None else None
    if problem is None:
        problem = f"PostgreSQL is not answering ({_reason(exc)})"
    pending = writer.spool_pending
    if pending:
        problem += f"; hits are being spooled ({pending} pending)"
    return problem


def _reason(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer in {READY_DB_TIMEOUT_S:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()  # "connection refused", not "[Errno 111] Connection refused"
    return str(exc) or type(exc).__name__
