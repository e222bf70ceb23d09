"""Alerts: every query on the ``alerts`` table (sql/009_alerts.sql), and the
evaluator's advisory lock.

Each transition is one statement that only succeeds from the state the evaluator
saw: a firing row is inserted with ``ON CONFLICT DO NOTHING`` on the partial unique
index (one open alert per endpoint and condition), a resolve or a reminder updates
only a row still firing (a reminder also only when nobody reminded meanwhile). A
statement that changes nothing means another evaluator got there first, and the
caller sends nothing.

``EvaluatorLock`` keeps one connection open holding a session-level advisory lock:
while it does, this process is the deployment's evaluator. When the process dies its
connection closes, Postgres releases the lock, and another process takes it on its
next try.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from monitor.rules.alerts import Firing

log = structlog.get_logger(__name__)

# Any constant works; every process of this service must use the same one.
EVALUATOR_LOCK_KEY = 0x616C_6572_7473  # "alerts"
APPLICATION_NAME = "postback-monitor alerts pid={pid}"
COLUMNS = "id, endpoint_id, condition, state, fired_at, resolved_at, last_notified_at, sentence"
SELECT_FIRING = """
SELECT id, endpoint_id, condition, fired_at, last_notified_at FROM alerts
WHERE state = 'firing'"""
FIRE = """
INSERT INTO alerts (endpoint_id, condition, fired_at, last_notified_at, sentence, value,
    threshold)
SELECT $1, $2, $3, $3, $4, $5, $6 WHERE EXISTS (SELECT FROM endpoints WHERE id = $1)
ON CONFLICT (endpoint_id, condition) WHERE state = 'firing' DO NOTHING
RETURNING id"""
RESOLVE = """
UPDATE alerts SET state = 'resolved', resolved_at = $2, value = $3
WHERE id = $1 AND state = 'firing' RETURNING id"""
RESOLVE_QUIETLY = """
UPDATE alerts SET state = 'resolved', resolved_at = $2
WHERE id = ANY($1::bigint[]) AND state = 'firing'"""
REMIND = """
UPDATE alerts SET last_notified_at = $2, value = $3
WHERE id = $1 AND state = 'firing' AND last_notified_at IS NOT DISTINCT FROM $4
RETURNING id"""
SELECT_CURRENT = f"""
SELECT {COLUMNS} FROM alerts WHERE endpoint_id = $1 AND state = 'firing' ORDER BY id DESC"""
SELECT_PAST = f"""
SELECT {COLUMNS} FROM alerts WHERE endpoint_id = $1 AND state = 'resolved'
ORDER BY id DESC LIMIT $2"""
PAST_LIMIT = 100


def alert_json(row: Any) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "id": row["id"],
        "endpoint_id": row["endpoint_id"],
        "condition": row["condition"],
        "state": row["state"],
        "fired_at": iso(row["fired_at"]),
        "resolved_at": iso(row["resolved_at"]),
        "last_notified_at": iso(row["last_notified_at"]),
        "sentence": row["sentence"],
    }


class AlertStore:
    """The alerts table: open alerts for the evaluator, history for the API and pages."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def firing(self) -> list[Firing]:
        """Every open alert of the deployment (few: one per endpoint and condition)."""
        rows = await self.pool.fetch(SELECT_FIRING)
        return [
            Firing(r["id"], r["endpoint_id"], r["condition"], r["fired_at"], r["last_notified_at"])
            for r in rows
        ]

    async def fire(
        self, endpoint_id: int, condition: str, now: datetime, sentence: str,
        value: float, threshold: float,
    ) -> int | None:  # fmt: skip
        """The new alert's id; None when it was open already or the endpoint is gone."""
        return await self.pool.fetchval(
            FIRE, endpoint_id, condition, now, sentence, value, threshold
        )

    async def resolve(self, alert_id: int, now: datetime, value: float) -> bool:
        """True when this call resolved it (it was still firing)."""
        return await self.pool.fetchval(RESOLVE, alert_id, now, value) is not None

    async def resolve_quietly(self, alert_ids: Sequence[int], now: datetime) -> None:
        if alert_ids:
            await self.pool.execute(RESOLVE_QUIETLY, list(alert_ids), now)

    async def remind(
        self, alert_id: int, now: datetime, value: float, seen: datetime | None
    ) -> bool:
        """True when this call took the reminder (nobody reminded since ``seen``)."""
        return await self.pool.fetchval(REMIND, alert_id, now, value, seen) is not None

    async def of_endpoint(
        self, endpoint_id: int, past_limit: int = PAST_LIMIT
    ) -> dict[str, list[dict[str, Any]]]:
        """``{"current": [...], "past": [...]}``, newest first, past at most ``past_limit``."""
        current = await self.pool.fetch(SELECT_CURRENT, endpoint_id)
        past = await self.pool.fetch(SELECT_PAST, endpoint_id, past_limit)
        return {"current": [alert_json(r) for r in current], "past": [alert_json(r) for r in past]}


class EvaluatorLock:
    """The deployment-wide evaluator lock on a dedicated connection kept open.

    ``hold`` is called every interval: it connects if needed, tries the lock if not
    held, and checks that a held lock's connection still answers. Any error drops the
    connection (Postgres then releases the lock) and answers False; the next interval
    tries again. The connection's application_name carries this process's pid, so an
    operator (and the system test) can see in pg_stat_activity who evaluates.
    """

    def __init__(self, dsn: str, key: int = EVALUATOR_LOCK_KEY) -> None:
        self.dsn = dsn
        self.key = key
        self._conn: asyncpg.Connection | None = None
        self.held = False

    async def hold(self) -> bool:
        try:
            if self._conn is None or self._conn.is_closed():
                self.held = False
                name = APPLICATION_NAME.format(pid=os.getpid())
                self._conn = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": name}, timeout=10
                )
            if self.held:
                await self._conn.fetchval("SELECT 1", timeout=10)
            else:
                self.held = bool(
                    await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key)
                )
                if self.held:
                    log.info("alerts.evaluator_active", pid=os.getpid())
        except Exception as exc:  # whatever broke, the connection is not to be trusted
            log.warning("alerts.lock_lost", error=str(exc), was_held=self.held)
            await self.close()
        return self.held

    async def close(self) -> None:
        """Drop the connection (and with it the lock)."""
        conn, self._conn, self.held = self._conn, None, False
        if conn is not None and not conn.is_closed():
            conn.terminate()
