"""The charts' counts: hits per bucket (clean, flagged, per flag), payout per currency,
and the delay from conversion to postback, for one endpoint's page and API, and the
endpoints page's sparklines; summed over a window, the stats and the endpoints page's
counters (``storage/hit_stats.py``), test hits apart.

Capture pays nothing for them. Closed hours come from ``hit_hours`` (sql/017), filled
here on read from the ``hits_endpoint_newest`` index range of the hours missing; the
hour still open (and the one that closed under two minutes ago, ``CLOSED_AFTER``) is
counted from hits on every read, one hour's index range. A delete of hits deletes the
rows of their hours (``forget_*`` below), under an advisory lock per endpoint that a
fill takes shared, so a fill never writes back counts from before a delete.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import structlog

from monitor.rules.charts import (
    HOUR,
    RANGES,
    ChartRange,
    delay_buckets_json,
    delay_histogram,
    open_from,
)
from monitor.storage.reconciliations import newest_delays

log = structlog.get_logger(__name__)

LOCK_CLASS = 0x6368_7274  # "chrt": the two-key advisory locks, (LOCK_CLASS, endpoint)
LOCK_SHARED = f"""
SELECT count(pg_advisory_xact_lock_shared({LOCK_CLASS}, (id % 2147483647)::int))
FROM (SELECT DISTINCT id FROM unnest($1::bigint[]) AS u(id) ORDER BY id) AS s"""
LOCK_ONE = f"SELECT pg_advisory_xact_lock({LOCK_CLASS}, ($1::bigint % 2147483647)::int)"
# Per endpoint and bucket: the non-test hits and flagged ones, hits per flag name
# (once per hit), payout per currency, and apart from them the test hits (is_test:
# the stats show them on their own). One pass over the range of
# hits_endpoint_newest; buckets are UTC-aligned (date_bin from the Unix epoch).
AGGREGATE = """
WITH w AS MATERIALIZED (
    SELECT endpoint_id, flagged, flags, amount, currency, is_test,
        date_bin($4::interval, received_at, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket
    FROM hits
    WHERE endpoint_id = ANY($1::bigint[]) AND received_at >= $2 AND received_at < $3
)
SELECT endpoint_id, bucket, 'hits' AS kind, '' AS key,
    count(*) FILTER (WHERE NOT is_test)::numeric AS n,
    count(*) FILTER (WHERE flagged AND NOT is_test) AS flagged,
    count(*) FILTER (WHERE is_test) AS tests
FROM w GROUP BY endpoint_id, bucket
UNION ALL
SELECT w.endpoint_id, w.bucket, 'flag', f.flag, count(*)::numeric, 0, 0
FROM w, LATERAL (SELECT DISTINCT e->>'flag' AS flag FROM jsonb_array_elements(w.flags) e) f
WHERE w.flagged AND NOT w.is_test AND f.flag IS NOT NULL
GROUP BY w.endpoint_id, w.bucket, f.flag
UNION ALL
SELECT endpoint_id, bucket, 'payout', coalesce(currency, ''), sum(amount), 0, 0
FROM w WHERE amount IS NOT NULL AND NOT is_test
GROUP BY endpoint_id, bucket, coalesce(currency, '')"""
ROLLED = """
SELECT endpoint_id, hour, hits, flagged, tests, by_flag, payouts FROM hit_hours
WHERE endpoint_id = ANY($1::bigint[]) AND hour >= $2 AND hour < $3"""
FILL = """
INSERT INTO hit_hours (endpoint_id, hour, hits, flagged, tests, by_flag, payouts)
SELECT e, h, n, f, t, b::jsonb, p::jsonb
FROM unnest($1::bigint[], $2::timestamptz[], $3::int[], $4::int[], $5::int[], $6::text[],
    $7::text[]) AS u(e, h, n, f, t, b, p)
ON CONFLICT DO NOTHING"""
# The newest hits of the range with the endpoint's conversion-time parameter's value
# (query or form body; the first of that name), newest first: a bounded sample.
DELAYS = """
SELECT received_at,
    (SELECT p->>1 FROM jsonb_array_elements(params || body_params) p
     WHERE p->>0 = $3 LIMIT 1) AS value
FROM hits WHERE endpoint_id = $1 AND received_at >= $2 AND NOT is_test
ORDER BY received_at DESC, id DESC LIMIT $4"""
DELAY_SAMPLE = 5000

# Invalidation, each in the deleting transaction after its hits are gone.
FORGET_HOUR = "DELETE FROM hit_hours WHERE endpoint_id = $1 AND hour = $2"
FORGET_ENDPOINT = "DELETE FROM hit_hours WHERE endpoint_id = $1"
FORGET_BEFORE = "DELETE FROM hit_hours WHERE endpoint_id = $1 AND hour < $2"
FORGET_ALL_BEFORE = "DELETE FROM hit_hours WHERE hour < $1"
FILL_LOCK_KEY = 0x6368_6172_7473  # "charts": one process sweeps at a time
FILL_FIRST_DELAY_S = 30.0
# Charts go back 7 days: older rows are never read again.
KEEP = timedelta(days=8)


@dataclass(slots=True)
class Bucket:
    start: datetime
    hits: int = 0
    flagged: int = 0
    # Test postbacks, apart: none of the other counts include them.
    tests: int = 0
    by_flag: dict[str, int] = field(default_factory=dict)
    payouts: dict[str, Decimal] = field(default_factory=dict)

    def add(self, other: Bucket) -> None:
        """``other``'s counts added to these (a window's total from its hours)."""
        self.hits += other.hits
        self.flagged += other.flagged
        self.tests += other.tests
        for name, n in other.by_flag.items():
            self.by_flag[name] = self.by_flag.get(name, 0) + n
        for currency, amount in other.payouts.items():
            self.payouts[currency] = self.payouts.get(currency, Decimal(0)) + amount

    def json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "hits": self.hits,
            "clean": self.hits - self.flagged,
            "flagged": self.flagged,
            "by_flag": dict(sorted(self.by_flag.items())),
            "payouts": {c: decimal_text(v) for c, v in sorted(self.payouts.items())},
        }


def decimal_text(value: Decimal) -> str:
    """An exact sum as plain digits (never "1E-7"), as the API's schema says."""
    return format(value, "f")


def fold(
    rows: Iterable[Any],
    into: Mapping[Any, Bucket],
    key: Callable[[Any], Any] = lambda r: (r["endpoint_id"], r["bucket"]),
) -> None:
    """AGGREGATE's rows added to the buckets they name (buckets outside are dropped);
    ``key`` names a row's bucket in ``into``: (endpoint, bucket start) by default."""
    for r in rows:
        bucket = into.get(key(r))
        if bucket is None:
            continue
        if r["kind"] == "hits":
            bucket.hits += int(r["n"])
            bucket.flagged += int(r["flagged"])
            bucket.tests += int(r["tests"])
        elif r["kind"] == "flag":
            bucket.by_flag[r["key"]] = bucket.by_flag.get(r["key"], 0) + int(r["n"])
        else:
            bucket.payouts[r["key"]] = bucket.payouts.get(r["key"], Decimal(0)) + r["n"]


async def forget_hours(conn: asyncpg.Connection, hours: Iterable[tuple[int, datetime]]) -> None:
    """Delete the rollup rows of these (endpoint, hour start) pairs: their hits
    changed. In the caller's transaction; takes each endpoint's lock, in order."""
    for endpoint_id, hour in sorted(set(hours)):
        await conn.execute(LOCK_ONE, endpoint_id)
        await conn.execute(FORGET_HOUR, endpoint_id, hour)


async def forget_endpoint(conn: asyncpg.Connection, endpoint_id: int) -> None:
    """Every rollup row of the endpoint (its hits were cleared or it was deleted)."""
    await conn.execute(LOCK_ONE, endpoint_id)
    await conn.execute(FORGET_ENDPOINT, endpoint_id)


async def forget_before(conn: asyncpg.Connection, endpoint_id: int, cutoff: datetime) -> None:
    """Retention deleted the endpoint's hits older than ``cutoff``: their hours go."""
    async with conn.transaction():
        await conn.execute(LOCK_ONE, endpoint_id)
        await conn.execute(FORGET_BEFORE, endpoint_id, cutoff)


async def prune(conn: asyncpg.Connection, before: datetime) -> None:
    """Rows of hours before ``before``: dropped partitions, or older than charts read."""
    await conn.execute(FORGET_ALL_BEFORE, before)


async def fill_recent(pool: asyncpg.Pool, now: datetime | None = None) -> int:
    """Every endpoint's closed hours of the last 7 days into the rollup, one endpoint at
    a time, by one process at a time (a session advisory lock); returns the endpoints
    swept (0 when another process holds the lock)."""
    store = ChartStore(pool)
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", FILL_LOCK_KEY):
            return 0
        try:
            ids = [r["id"] for r in await conn.fetch("SELECT id FROM endpoints ORDER BY id")]
            for endpoint_id in ids:
                await store.fill([endpoint_id], now or datetime.now(UTC))
            return len(ids)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", FILL_LOCK_KEY)


async def fill_forever(
    pool: asyncpg.Pool, first_delay_s: float = FILL_FIRST_DELAY_S, interval_s: float = 3600.0
) -> None:
    """Shortly after start and then hourly, ``fill_recent``: a chart read then finds
    its closed hours counted (the first 7-day chart of an endpoint with 10 million
    hits took 22 s to fill on read; README, Performance)."""
    await asyncio.sleep(first_delay_s)
    while True:
        try:
            began = time.perf_counter()
            swept = await fill_recent(pool)
            if swept:
                log.info("charts.filled", endpoints=swept, s=round(time.perf_counter() - began, 2))
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("charts.fill_failed", error=str(exc))
        await asyncio.sleep(interval_s)


class ChartStore:
    """Reads for the charts; holds nothing but the pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def buckets(
        self, endpoint_ids: Sequence[int], rng: ChartRange, now: datetime
    ) -> dict[int, list[Bucket]]:
        """Each endpoint's buckets of the range ending with the one ``now`` is in."""
        starts = rng.starts(now)
        cells = {(e, s): Bucket(s) for e in endpoint_ids for s in starts}
        end = starts[-1] + rng.bucket
        live_from = starts[0]
        if rng.bucket == HOUR:
            live_from = max(starts[0], open_from(now))
            await self.closed_hours(list(endpoint_ids), starts[0], live_from, cells)
        if live_from < end:
            rows = await self.pool.fetch(AGGREGATE, list(endpoint_ids), live_from, end, rng.bucket)
            fold(rows, cells)
        return {e: [cells[(e, s)] for s in starts] for e in endpoint_ids}

    async def closed_hours(
        self,
        ids: list[int],
        start: datetime,
        end: datetime,
        cells: dict[tuple[int, datetime], Bucket],
    ) -> None:
        """Closed hours from the rollup into ``cells``; the missing ones counted from
        hits and stored (the charts, and the stats' windows in ``storage/hit_stats``)."""
        if start >= end:
            return
        # Read without a transaction: a page view with every hour counted is one query.
        present = set()
        for r in await self.pool.fetch(ROLLED, ids, start, end):
            present.add((r["endpoint_id"], r["hour"]))
            cell = cells.get((r["endpoint_id"], r["hour"]))
            if cell is not None:
                cell.hits, cell.flagged, cell.tests = r["hits"], r["flagged"], r["tests"]
                cell.by_flag = dict(r["by_flag"])
                cell.payouts = {k: Decimal(v) for k, v in r["payouts"].items()}
        hours = [start + HOUR * i for i in range(int((end - start) / HOUR))]
        missing = [(e, h) for e in ids for h in hours if (e, h) not in present]
        if not missing:
            return
        lacking = sorted({e for e, _ in missing})
        first = min(h for _, h in missing)
        last = max(h for _, h in missing) + HOUR
        counted = {key: Bucket(key[1]) for key in missing}
        async with self.pool.acquire() as conn, conn.transaction():
            # Shared with other fills, exclusive for deleters (forget_*): the counts
            # below are never from before a delete that has already forgotten its hour.
            await conn.fetchval(LOCK_SHARED, lacking)
            fold(await conn.fetch(AGGREGATE, lacking, first, last, HOUR), counted)
            await conn.execute(
                FILL,
                [e for e, _ in missing],
                [h for _, h in missing],
                [counted[k].hits for k in missing],
                [counted[k].flagged for k in missing],
                [counted[k].tests for k in missing],
                [json.dumps(counted[k].by_flag) for k in missing],
                [
                    json.dumps({c: decimal_text(v) for c, v in counted[k].payouts.items()})
                    for k in missing
                ],
            )
        for key, bucket in counted.items():
            if key in cells:
                cells[key] = bucket

    async def chart(
        self,
        endpoint_id: int,
        range_key: str,
        conversion_param: str | None,
        now: datetime | None = None,
        *,
        runs_within: Collection[int] | None = None,
    ) -> dict[str, Any]:
        """GET /api/endpoints/{id}/charts: the hits and payout buckets of the range and
        the conversion delays (``conversion_delays``)."""
        now = now or datetime.now(UTC)
        rng = RANGES[range_key]
        buckets = (await self.buckets([endpoint_id], rng, now))[endpoint_id]
        currencies = sorted({c for b in buckets for c in b.payouts})
        return {
            "endpoint_id": endpoint_id,
            "range": rng.key,
            "bucket_seconds": int(rng.bucket.total_seconds()),
            "start": buckets[0].start.isoformat(),
            "end": (buckets[-1].start + rng.bucket).isoformat(),
            "now": now.isoformat(),
            "currencies": currencies,
            "buckets": [b.json() for b in buckets],
            "delays": await self.conversion_delays(
                endpoint_id, conversion_param, buckets[0].start, runs_within
            ),
        }

    async def conversion_delays(
        self,
        endpoint_id: int,
        param: str | None,
        since: datetime,
        runs_within: Collection[int] | None = None,
    ) -> dict[str, Any] | None:
        """The delay chart's counts: from the conversion_time_param when the endpoint
        has one (it wins: it is this endpoint's own hits of the range), else from its
        newest finished reconciliation run with report times (counted over all that
        run's endpoints when it covered several; only runs whose endpoints are all
        ``runs_within``, a restricted caller's, unless None); None with neither."""
        if param is not None:
            return {"source": "param", **await self.delays(endpoint_id, param, since)}
        run = await newest_delays(self.pool, endpoint_id, runs_within)
        return None if run is None else {"source": "reconciliation", **run}

    async def delays(self, endpoint_id: int, param: str, since: datetime) -> dict[str, Any]:
        rows = await self.pool.fetch(DELAYS, endpoint_id, since, param, DELAY_SAMPLE)
        pairs = [(r["received_at"], r["value"]) for r in rows]
        counts, unreadable = delay_histogram(pairs)
        return {
            "param": param,
            "hits_read": len(rows),
            "sample_limit": DELAY_SAMPLE,
            "unreadable": unreadable,
            "buckets": delay_buckets_json(counts),
        }

    async def fill(self, endpoint_ids: Sequence[int], now: datetime) -> None:
        """Count the closed hours of the last 7 days the rollup lacks (none: one read)."""
        rng = RANGES["7d"]
        start = rng.starts(now)[0]
        await self.closed_hours(list(endpoint_ids), start, open_from(now), {})

    async def sparklines(
        self, endpoint_ids: Sequence[int], now: datetime | None = None
    ) -> dict[int, list[Bucket]]:
        """The endpoints page: each endpoint's hourly buckets of the last 24 hours."""
        if not endpoint_ids:
            return {}
        return await self.buckets(endpoint_ids, RANGES["24h"], now or datetime.now(UTC))
