"""Retention drops whole daily partitions where it can and deletes rows where it must."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from monitor.storage.partitions import ensure_partitions, partition_name
from monitor.storage.retention import enforce

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


async def endpoint(db: asyncpg.Connection, settings: dict[str, object]) -> int:
    return int(
        await db.fetchval(
            "INSERT INTO endpoints (token, name, settings) VALUES ($1, 'r', $2) RETURNING id",
            uuid.uuid4().hex,
            settings,
        )
    )


async def hit(db: asyncpg.Connection, endpoint_id: int, days_ago: float) -> None:
    await db.execute(
        "INSERT INTO hits (id, endpoint_id, received_at, method, path, raw_query, params,"
        " headers, body, body_size)"
        " VALUES ($1, $2, $3, 'GET', '/p/x', ''::bytea, '[]', '[]', ''::bytea, 0)",
        uuid.uuid4(),
        endpoint_id,
        NOW - timedelta(days=days_ago),
    )
    await db.execute(
        "INSERT INTO click_keys VALUES ($1, $2, '', $3, $4) ON CONFLICT DO NOTHING",
        endpoint_id,
        f"c{days_ago}",
        uuid.uuid4(),
        NOW - timedelta(days=days_ago),
    )


async def partitions(db: asyncpg.Connection) -> set[str]:
    rows = await db.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    )
    return {r["relname"] for r in rows}


async def count(db: asyncpg.Connection, endpoint_id: int) -> int:
    return int(await db.fetchval("SELECT count(*) FROM hits WHERE endpoint_id = $1", endpoint_id))


async def test_partitions_older_than_every_retention_are_dropped(db: asyncpg.Connection) -> None:
    await ensure_partitions(db, today=(NOW - timedelta(days=40)).date(), days_ahead=45)
    short = await endpoint(db, {"retention_days": 7})
    default = await endpoint(db, {})
    for days_ago in (1, 10, 20, 35):
        await hit(db, short, days_ago)
        await hit(db, default, days_ago)
    old_day = partition_name((NOW - timedelta(days=35)).date())
    assert old_day in await partitions(db)

    report = await enforce(db, default_days=30, now=NOW)

    assert old_day in report.dropped_partitions
    assert old_day not in await partitions(db)
    assert partition_name((NOW - timedelta(days=20)).date()) in await partitions(db)
    assert await count(db, default) == 3  # 1, 10 and 20 days old
    assert await count(db, short) == 1  # only the 1-day-old hit
    keys = await db.fetchval("SELECT count(*) FROM click_keys WHERE endpoint_id = $1", short)
    assert keys == 1


async def test_an_endpoint_kept_forever_blocks_partition_drops(db: asyncpg.Connection) -> None:
    await ensure_partitions(db, today=(NOW - timedelta(days=40)).date(), days_ahead=45)
    forever = await endpoint(db, {})
    short = await endpoint(db, {"retention_days": 2})
    await hit(db, forever, 35)
    await hit(db, short, 35)
    await hit(db, short, 1)

    report = await enforce(db, default_days=None, now=NOW)

    assert report.dropped_partitions == []
    assert await count(db, forever) == 1
    assert await count(db, short) == 1
    assert json.dumps(report.deleted_hits) == "1"
