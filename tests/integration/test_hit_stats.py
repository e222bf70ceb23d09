"""The stats and the endpoints page's counters read from the hourly rollup
(storage/hit_stats.py) give what the queries over hits gave before it: the old SQL
is kept here as the oracle, run on the same hits at the same ``now``."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from monitor.model.hit import Hit
from monitor.rules.charts import HOUR, floor_time
from monitor.storage.db import connect, create_pool
from monitor.storage.hit_rows import COPY_COLUMNS, copy_record
from monitor.storage.hit_stats import STATS_WINDOWS
from monitor.storage.hits import HitStore
from monitor.storage.migrate import load_migrations, migrate
from tests.helpers.hits import judged_hit
from tests.helpers.pg import ScratchDatabase

# The queries over hits that the rollup replaced, with the database's now() a parameter.
OLD_SUMMARIES = """
SELECT e.id AS endpoint_id, coalesce(d.hits_24h, 0) AS hits_24h,
    coalesce(d.flagged_24h, 0) AS flagged_24h, coalesce(d.test_24h, 0) AS test_24h,
    l.received_at AS last_hit_at
FROM unnest($1::bigint[]) AS e(id)
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE NOT is_test) AS hits_24h,
        count(*) FILTER (WHERE flagged AND NOT is_test) AS flagged_24h,
        count(*) FILTER (WHERE is_test) AS test_24h
    FROM hits WHERE endpoint_id = e.id AND received_at >= $2::timestamptz - interval '1 day'
) d ON true
LEFT JOIN LATERAL (
    SELECT received_at FROM hits WHERE endpoint_id = e.id AND NOT is_test
    ORDER BY received_at DESC, id DESC LIMIT 1
) l ON true"""
OLD_STATS = """
WITH all_hits AS MATERIALIZED (
    SELECT flagged, flags, is_test FROM hits
    WHERE endpoint_id = $1 AND received_at >= $3::timestamptz - $2::interval
), w AS (SELECT flagged, flags FROM all_hits WHERE NOT is_test)
SELECT
    (SELECT count(*) FROM w) AS total,
    (SELECT count(*) FROM all_hits WHERE is_test) AS test_hits,
    (SELECT count(*) FROM w WHERE flagged) AS flagged,
    (SELECT coalesce(jsonb_object_agg(flag, n), '{}'::jsonb) FROM (
        SELECT f.flag, count(*) AS n
        FROM w, LATERAL (SELECT DISTINCT e->>'flag' AS flag FROM jsonb_array_elements(w.flags) e) f
        WHERE w.flagged
        GROUP BY f.flag
    ) per_flag) AS by_flag,
    (SELECT received_at FROM hits WHERE endpoint_id = $1 AND NOT is_test
     ORDER BY received_at DESC, id DESC LIMIT 1) AS last_hit_at
"""

MACRO = {"flag": "unreplaced_macro", "param": "click_id", "value": "{clickid}"}
# What each kind of hit carries: a flag name twice (counted once), several flags, a
# duplicate, test postbacks (flagged, but counted only as tests) and clean hits.
KINDS: dict[str, list[dict[str, Any]]] = {
    "clean": [],
    "macros": [MACRO, {**MACRO, "param": "sub1"}, {"flag": "invalid_amount", "param": "payout"}],
    "duplicate": [{"flag": "duplicate_click_id", "click_id": "c"}],
    "test": [{"flag": "test_traffic", "param": "status", "value": "ping"}],
    "test_duplicate": [{"flag": "test_traffic"}, {"flag": "duplicate_click_id"}],
}


async def old_summaries(
    db: asyncpg.Connection, ids: list[int], now: datetime
) -> dict[int, dict[str, Any]]:
    rows = await db.fetch(OLD_SUMMARIES, ids, now)
    return {r["endpoint_id"]: {k: v for k, v in r.items() if k != "endpoint_id"} for r in rows}


async def old_stats(
    db: asyncpg.Connection, endpoint_id: int, window: str, now: datetime
) -> dict[str, Any]:
    """HitStore.stats as it was: the old query's row shaped the same way."""
    row = await db.fetchrow(OLD_STATS, endpoint_id, STATS_WINDOWS[window], now)
    by_flag: dict[str, int] = dict(sorted(row["by_flag"].items()))
    total = row["total"]
    last = row["last_hit_at"]
    return {
        "window": window,
        "total": total,
        "flagged": row["flagged"],
        "test_hits": row["test_hits"],
        "by_flag": by_flag,
        "duplicate_rate": round(by_flag.get("duplicate_click_id", 0) / total, 6) if total else 0.0,
        "last_hit_at": None if last is None else last.isoformat(),
    }


def hit(endpoint_id: int, when: datetime, kind: str, n: int) -> Hit:
    made = judged_hit(endpoint_id, {}, f"click_id=c{n}", when)
    return dataclasses.replace(made, flags=[dict(f) for f in KINDS[kind]])


@pytest.fixture
async def hit_store(db: asyncpg.Connection, pg_url: str) -> AsyncIterator[HitStore]:
    pool = await create_pool(pg_url)
    try:
        yield HitStore(pool)
    finally:
        await pool.close()


async def test_stats_and_summaries_from_the_rollup_equal_the_queries_over_hits(
    db: asyncpg.Connection, hit_store: HitStore
) -> None:
    # The newest whole hour in the past: every "now" below is within it or at its start.
    top = floor_time(datetime.now(UTC), HOUR) - HOUR
    rng = random.Random(20)
    kinds = list(KINDS)
    hits = [
        # Endpoint 1: over 8 days, so every window has a partial first hour to split.
        hit(1, top - timedelta(seconds=rng.randrange(8 * 86400)), rng.choice(kinds), n)
        for n in range(1500)
    ]
    hits += [
        # Endpoint 1's open hour, the hour before it, and hits later than every now.
        hit(1, top + timedelta(seconds=rng.randrange(3600)), rng.choice(kinds), 2000 + n)
        for n in range(60)
    ]
    hits += [hit(1, top - timedelta(seconds=rng.randrange(3600)), "macros", 3000 + n)
             for n in range(20)]  # fmt: skip
    hits += [
        hit(2, top - timedelta(hours=30), "clean", 4000),  # only older than a day
        hit(2, top - timedelta(hours=3, minutes=5), "test", 4001),  # tests only
        hit(2, top - timedelta(hours=2), "test_duplicate", 4002),
    ]
    await db.copy_records_to_table(
        "hits", records=[copy_record(h) for h in hits], columns=COPY_COLUMNS
    )
    ids = [1, 2, 3]  # 3: never a hit
    # Mid-hour; two minutes into an hour (the hour before is not closed yet); on the hour.
    nows = [top + timedelta(minutes=37, seconds=12), top + timedelta(minutes=1), top]

    async def check() -> None:
        for now in nows:
            assert await hit_store.summaries(ids, now=now) == await old_summaries(db, ids, now)
            for endpoint_id in ids:
                for window in STATS_WINDOWS:
                    assert await hit_store.stats(endpoint_id, window, now=now) == await old_stats(
                        db, endpoint_id, window, now
                    ), (now, endpoint_id, window)

    await check()
    # The closed hours were filled, with their test hits, and the figures are not empty.
    rolled = await db.fetchrow(
        "SELECT count(*) AS hours, sum(tests) AS tests FROM hit_hours WHERE endpoint_id = 1"
    )
    assert rolled["hours"] >= 7 * 24 - 2 and rolled["tests"] > 0
    week = await hit_store.stats(1, "7d", now=nows[0])
    assert week["test_hits"] > 0 and week["flagged"] > 0 and week["duplicate_rate"] > 0
    assert set(week["by_flag"]) == {"duplicate_click_id", "invalid_amount", "unreplaced_macro"}
    summary = (await hit_store.summaries(ids, now=nows[0]))[2]
    assert (summary["hits_24h"], summary["test_24h"]) == (0, 2)

    # Read again, now from the rollup alone for the closed hours: still the same.
    await check()
    # A hit deleted from a closed hour whose row was filled: the hour is counted again.
    victim = next(
        h for h in hits
        if h.endpoint_id == 1 and 5 * HOUR < top - h.received_at < 20 * HOUR and not h.is_test
    )  # fmt: skip
    assert await db.fetchval(
        "SELECT count(*) FROM hit_hours WHERE endpoint_id = 1 AND hour = $1",
        floor_time(victim.received_at, HOUR),
    )
    before = await hit_store.stats(1, "24h", now=nows[0])
    await hit_store.delete(victim.id)
    assert (await hit_store.stats(1, "24h", now=nows[0]))["total"] == before["total"] - 1
    await check()

    # Served from the rollup: a row changed behind its back shows (so check() compared
    # the rollup's figures, not the hits' again).
    await db.execute(
        "UPDATE hit_hours SET hits = hits + 100, tests = tests + 7 "
        "WHERE endpoint_id = 1 AND hour = $1",
        top - 5 * HOUR,
    )
    changed = await hit_store.stats(1, "24h", now=nows[0])
    expected = await old_stats(db, 1, "24h", nows[0])
    assert (changed["total"], changed["test_hits"]) == (
        expected["total"] + 100,
        expected["test_hits"] + 7,
    )


async def test_the_tests_column_forgets_the_rows_counted_without_it(
    test_db: ScratchDatabase,
) -> None:
    """sql/018: rows of hit_hours made before it never counted test hits, so they go
    (and are counted again from hits on the next read)."""
    url = await asyncio.to_thread(test_db.fresh_database_url)
    known = load_migrations()
    conn = await connect(url)
    try:
        await migrate(conn, [m for m in known if m.version < 18])
        await conn.execute(
            "INSERT INTO hit_hours (endpoint_id, hour, hits, flagged) VALUES (1, $1, 5, 1)",
            floor_time(datetime.now(UTC), HOUR) - 3 * HOUR,
        )
        await migrate(conn, known)
        assert await conn.fetchval("SELECT count(*) FROM hit_hours") == 0
        assert (
            await conn.fetchval(
                "SELECT is_nullable FROM information_schema.columns "
                "WHERE table_name = 'hit_hours' AND column_name = 'tests'"
            )
            == "NO"
        )
    finally:
        await conn.close()
