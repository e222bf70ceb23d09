"""Daily partitions of the hits table, created ahead of time.

Each day gets ``hits_pYYYYMMDD``; rows outside every dated partition fall into
``hits_default`` (clock skew), so an insert never fails for lack of a partition.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg
import structlog

log = structlog.get_logger(__name__)

DAYS_AHEAD = 7
# Serialises partition creation across processes starting together.
PARTITION_LOCK_KEY = 0x706F_7374_7061_7274

EXISTING = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname = 'hits'
"""


def partition_name(day: date) -> str:
    return f"hits_p{day:%Y%m%d}"


def create_statement(day: date) -> str:
    # Identifiers and bounds are made from a date, never from user input.
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF hits "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )


async def ensure_partitions(
    conn: asyncpg.Connection, today: date | None = None, days_ahead: int = DAYS_AHEAD
) -> list[str]:
    """Create the partitions from yesterday to ``days_ahead`` days on; returns the new ones."""
    today = today or datetime.now(UTC).date()
    created = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
        existing = {r["relname"] for r in await conn.fetch(EXISTING)}
        for offset in range(-1, days_ahead + 1):
            day = today + timedelta(days=offset)
            if partition_name(day) in existing:
                continue
            await conn.execute(create_statement(day))
            created.append(partition_name(day))
    if created:
        log.info("partitions.created", partitions=created)
    return created
