"""Is the service ready to take postbacks: the database answers and the writer keeps up.

Both listeners answer the probes with these words: the management side through
``web.health``, the capture front through ``readiness`` passed to it (a balancer in
front of capture asks the capture port, an orchestrator may ask either).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from monitor.storage.embedded import KeepRunning
from monitor.storage.writer import HitWriter

READY_DB_TIMEOUT_S = 2.0
ALIVE: dict[str, Any] = {"status": "ok"}


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
