"""Retention: old hits go, whole partitions at a time where possible.

The effective retention of an endpoint is its ``retention_days`` setting, else
the server's ``--retention-days``, else forever. A daily partition is dropped
once it is older than every endpoint's retention (one cheap DROP, no vacuum
debt); endpoints that keep less than that have their older rows deleted in
batches. The duplicate ledger forgets keys first seen before the same horizon,
so duplicates are detected within the retention period, and the click lifecycle
forgets clicks last seen before it (none of their hits is left). The audit log keeps
entries for the server's ``--retention-days`` (an endpoint's own setting is about
its hits, not about who changed it): one bounded DELETE an hour.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import structlog

from monitor.model.errors import SettingsError
from monitor.rules.endpoint_settings import compile_endpoint_settings
from monitor.storage import audit, charts
from monitor.storage.lifecycle import forget_old
from monitor.storage.partitions import EXISTING, PARTITION_LOCK_KEY, ensure_partitions

log = structlog.get_logger(__name__)

DELETE_BATCH_ROWS = 10_000
CHECK_INTERVAL_S = 3600.0
PARTITION_NAME = re.compile(r"^hits_p(\d{8})$")

ENDPOINT_SETTINGS = "SELECT id, settings FROM endpoints"
# In batches, so a large delete never holds one long transaction. Not by ctid:
# ctids repeat across partitions.
DELETE_OLD_HITS = """
DELETE FROM hits WHERE endpoint_id = $1 AND (id, received_at) IN (
    SELECT id, received_at FROM hits WHERE endpoint_id = $1 AND received_at < $2 LIMIT $3
)"""
DELETE_OLD_KEYS = "DELETE FROM click_keys WHERE endpoint_id = $1 AND first_seen_at < $2"
DELETE_OLD_DEFAULT = "DELETE FROM hits_default WHERE received_at < $1"


@dataclass(frozen=True)
class RetentionReport:
    dropped_partitions: list[str]
    deleted_hits: int
    deleted_keys: int
    deleted_audit: int = 0


def partition_day(name: str) -> date | None:
    match = PARTITION_NAME.match(name)
    return datetime.strptime(match[1], "%Y%m%d").date() if match else None


async def enforce(
    conn: asyncpg.Connection, default_days: int | None, now: datetime | None = None
) -> RetentionReport:
    now = now or datetime.now(UTC)
    per_endpoint: dict[int, int | None] = {}
    for row in await conn.fetch(ENDPOINT_SETTINGS):
        try:
            days = compile_endpoint_settings(row["settings"]).retention_days
        except SettingsError:
            days = None
        per_endpoint[row["id"]] = days if days is not None else default_days
    dropped: list[str] = []
    deleted_hits = deleted_keys = 0

    keep_all = default_days is None or None in per_endpoint.values()
    horizon_days = (
        None if keep_all else max([default_days or 0, *[d for d in per_endpoint.values() if d]])
    )
    prune_before = now - charts.KEEP
    if horizon_days is not None:
        horizon = now - timedelta(days=horizon_days)
        prune_before = max(prune_before, horizon)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
            for row in await conn.fetch(EXISTING):
                day = partition_day(row["relname"])
                if (
                    day is not None
                    and datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
                    <= horizon
                ):
                    # The name comes from the catalogue and matched PARTITION_NAME.
                    await conn.execute(f"DROP TABLE {row['relname']}")
                    dropped.append(row["relname"])
            status = await conn.execute(DELETE_OLD_DEFAULT, horizon)
            deleted_hits += int(status.split()[-1])

    for endpoint_id, days in per_endpoint.items():
        if days is None:
            continue
        cutoff = now - timedelta(days=days)
        while True:
            status = await conn.execute(DELETE_OLD_HITS, endpoint_id, cutoff, DELETE_BATCH_ROWS)
            count = int(status.split()[-1])
            deleted_hits += count
            if count < DELETE_BATCH_ROWS:
                break
        status = await conn.execute(DELETE_OLD_KEYS, endpoint_id, cutoff)
        deleted_keys += int(status.split()[-1])
        await forget_old(conn, endpoint_id, cutoff)
        await charts.forget_before(conn, endpoint_id, cutoff)
    # The charts' hourly rollup: what the partitions dropped, and what no chart reads.
    await charts.prune(conn, prune_before)

    deleted_audit = 0
    if default_days is not None:
        deleted_audit = await audit.delete_older_than(conn, now - timedelta(days=default_days))

    report = RetentionReport(dropped, deleted_hits, deleted_keys, deleted_audit)
    if dropped or deleted_hits or deleted_keys or deleted_audit:
        log.info(
            "retention.enforced",
            dropped_partitions=dropped,
            deleted_hits=deleted_hits,
            deleted_keys=deleted_keys,
            deleted_audit=deleted_audit,
        )
    return report


async def maintain_forever(
    pool: asyncpg.Pool, retention_days: int | None = None, interval_s: float = CHECK_INTERVAL_S
) -> None:
    """Hourly: create the coming partitions, then enforce retention.

    Here rather than in ``partitions`` because it needs both, and retention already
    builds on partitions (their names and lock): one direction, no cycle."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            async with pool.acquire() as conn:
                await ensure_partitions(conn)
                await enforce(conn, retention_days)
        except Exception as exc:
            log.warning("partitions.failed", error=str(exc))
