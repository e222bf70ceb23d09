"""Read speed at scale: 10 million hits over 100 endpoints, then the service's reads.

    python bench/dataset.py [--hits 10000000] [--endpoints 100] [--days 30] [--keep]
    python bench/dataset.py --url postgresql://.../pbm_dataset_x   # measure again

Builds the data set in a fresh database (embedded PostgreSQL in a temp dir, or
DATABASE_URL's server) with server-side generate_series in chunks, spread over
daily partitions, ~5% flagged; then times, with the service's own queries, the
newest 50 hits of an endpoint, the newest 50 flagged hits, a lookup by click id,
one hit by its id alone (as the hit page and GET /api/hits/{id} find it), that
hit's neighbours, an endpoint's 24-hour stats and the endpoints page's summaries
(from the hourly rollup, filled by their first read), printing each median time
(and the list reads' EXPLAIN ANALYZE plans) and the bytes each stored hit takes with
its indexes. ``--keep`` leaves the database
(DATABASE_URL's server only) for a later ``--url`` run, e.g. after a migration; then the charts
(``storage/charts.py``, as the endpoint page and GET /api/endpoints/{id}/charts read
them): the first 7-day chart (which fills the hourly rollup from hits), then each
range's median once filled, and the endpoints page's sparklines of every endpoint.
``--endpoints 1`` puts all the hits on one endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.rules.charts import RANGES  # noqa: E402
from monitor.storage.charts import ChartStore  # noqa: E402
from monitor.storage.db import close_pool, connect, create_pool  # noqa: E402
from monitor.storage.hits import (  # noqa: E402
    NEIGHBOURS,
    ONE_HIT,
    HitFilter,
    HitStore,
    find_hit_key,
    list_query,
)
from monitor.storage.migrate import migrate  # noqa: E402
from monitor.storage.partitions import ensure_partitions  # noqa: E402

CHUNK_ROWS = 500_000
TARGET_MS = 50.0
# A chart must render in under this much server time (issue #20).
CHART_TARGET_MS = 200.0

# Rows are made by the server: no Python loop, no round trip per row. The hit id is
# a UUIDv7-shaped value whose time prefix matches received_at.
GENERATE = """
INSERT INTO hits (id, endpoint_id, received_at, method, path, raw_query, params,
                  headers, content_type, body, body_size, remote_ip, user_agent,
                  click_id, event, flags, flagged, amount, currency)
SELECT
    (lpad(to_hex((extract(epoch FROM t.at) * 1000)::bigint), 12, '0')
        || '7' || substr(md5(g::text), 1, 3) || '8' || substr(md5(g::text), 4, 15))::uuid,
    1 + (g % $3),
    t.at,
    'GET',
    '/p/token',
    convert_to('click_id=c' || g || '&payout=1.50&currency=USD', 'UTF8'),
    jsonb_build_array(jsonb_build_array('click_id', 'c' || g),
                      jsonb_build_array('payout', '1.50'), jsonb_build_array('currency', 'USD')),
    '[["Host","bench"],["User-Agent","bench/1.0"]]'::jsonb,
    '',
    ''::bytea,
    0,
    '203.0.113.7'::inet,
    'bench/1.0',
    'c' || g,
    'purchase',
    CASE WHEN (g / $3) % 20 = 0
         THEN '[{"flag":"missing_param","param":"payout","value":"","message":"bench"}]'::jsonb
         ELSE '[]'::jsonb END,
    (g / $3) % 20 = 0,
    1.50,
    'USD'
FROM generate_series($1::bigint, $2::bigint) AS g,
     LATERAL (SELECT $4::timestamptz + (g::float8 / $5) * $6::interval AS at) AS t
"""


async def build(url: str, hits: int, endpoints: int, days: int) -> None:
    conn = await connect(url)
    try:
        await migrate(conn)
        start = datetime.now(UTC) - timedelta(days=days)
        await ensure_partitions(conn, today=start.date(), days_ahead=days + 2)
        for i in range(endpoints):
            await conn.execute(
                "INSERT INTO endpoints (token, name) VALUES ($1, $2)",
                secrets.token_hex(12),
                f"e{i}",
            )
        began = time.monotonic()
        for first in range(0, hits, CHUNK_ROWS):
            last = min(hits, first + CHUNK_ROWS) - 1
            await conn.execute(GENERATE, first, last, endpoints, start, hits, timedelta(days=days))
            print(f"  {last + 1:>10,} rows  {time.monotonic() - began:6.0f}s", flush=True)
        await conn.execute("ANALYZE hits")
        print(f"built {hits:,} hits in {time.monotonic() - began:.0f}s", flush=True)
    finally:
        await conn.close()


async def timed(
    conn: asyncpg.Connection, sql: str, args: list[object], runs: int = 15
) -> tuple[float, str]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await conn.fetch(sql, *args)
        times.append((time.perf_counter() - began) * 1000)
    plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args))
    return statistics.median(times), plan


# Every partition of hits with its indexes and TOAST, per stored row.
SIZE = """
SELECT sum(pg_total_relation_size(inhrelid))::bigint AS total,
       sum(pg_indexes_size(inhrelid))::bigint AS indexes
FROM pg_inherits WHERE inhparent = 'hits'::regclass"""


async def timed_call(call: Any, runs: int = 15) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


async def measure_by_id(conn: asyncpg.Connection, hit_store: HitStore, endpoints: int) -> bool:
    """The reads of one hit and of whole endpoints, timed as the service makes them."""
    endpoint_id = endpoints // 2
    hit = await conn.fetchrow(
        "SELECT id, received_at FROM hits WHERE endpoint_id = $1 "
        "ORDER BY received_at DESC, id DESC LIMIT 1 OFFSET 5000",
        endpoint_id,
    )

    async def by_id() -> None:
        key = await find_hit_key(conn, hit["id"])
        assert key is not None
        await conn.fetchrow(ONE_HIT, key[0], hit["id"], key[1])

    every = list(range(1, endpoints + 1))
    # The stats and the counters read the hourly rollup (storage/hit_stats.py): the
    # first read of a day counts the closed hours the rollup lacks from hits.
    began = time.perf_counter()
    await hit_store.summaries(every)
    print(f"== endpoints page summaries, first read (fills 24 hours of the rollup of "
          f"{endpoints} endpoints): {(time.perf_counter() - began) * 1000:.0f} ms")  # fmt: skip
    reads = {
        "one hit by its id alone (key, then the row)": by_id,
        "its neighbours": lambda: conn.fetchrow(
            NEIGHBOURS, endpoint_id, hit["received_at"], hit["id"]
        ),
        "24-hour stats of an endpoint": lambda: hit_store.stats(endpoint_id, "24h"),
        f"endpoints page summaries ({endpoints} endpoints)": lambda: hit_store.summaries(every),
    }
    ok = True
    for name, call in reads.items():
        median_ms = await timed_call(call)
        ok &= median_ms < TARGET_MS
        print(f"== {name}: median {median_ms:.2f} ms (target < {TARGET_MS:.0f} ms)")
    return ok


async def measure(url: str, endpoints: int) -> bool:
    conn = await connect(url)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM hits")
        size = await conn.fetchrow(SIZE)
        print(
            f"\n{rows:,} hits take {size['total'] / 2**30:.2f} GiB with their indexes: "
            f"{size['total'] / rows:.0f} bytes a hit, {size['indexes'] / rows:.0f} of them index"
        )
        # The middle endpoint with flagged hits (every endpoint has some in data sets
        # built now; before, only every twentieth did), so the flagged read finds 50.
        endpoint_id = await conn.fetchval(
            "SELECT min(endpoint_id) FROM hits WHERE flagged AND endpoint_id >= $1",
            endpoints // 2,
        )
        click = await conn.fetchval(
            "SELECT click_id FROM hits WHERE endpoint_id = $1 LIMIT 1 OFFSET 1000", endpoint_id
        )
        reads = {
            "newest 50 hits of an endpoint": list_query(endpoint_id, HitFilter(), None, 50),
            "newest 50 flagged hits of an endpoint": list_query(
                endpoint_id, HitFilter(flagged=True), None, 50
            ),
            "lookup by click id": list_query(endpoint_id, HitFilter(click_id=click), None, 50),
        }
        ok = True
        for name, (sql, args) in reads.items():
            median_ms, plan = await timed(conn, sql, args)
            ok &= median_ms < TARGET_MS
            print(f"\n== {name}: median {median_ms:.2f} ms (target < {TARGET_MS:.0f} ms)")
            print(plan)
        print()
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            return await measure_by_id(conn, HitStore(pool), endpoints) and ok
        finally:
            await close_pool(pool)
    finally:
        await conn.close()


async def measure_charts(url: str, endpoints: int, runs: int = 15) -> bool:
    """The charts' server time: the first read of 7 days fills the rollup (once per
    hour and endpoint, ever), then every read is the rollup plus the open hours."""
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        store = ChartStore(pool)
        endpoint_id = max(1, endpoints // 2)
        began = time.perf_counter()
        await store.chart(endpoint_id, "7d", None)
        first_ms = (time.perf_counter() - began) * 1000
        print(f"\n== chart 7d, first read (fills 168 hours of the rollup): {first_ms:.0f} ms")
        ok = True
        for key in RANGES:
            times = []
            for _ in range(runs):
                began = time.perf_counter()
                doc = await store.chart(endpoint_id, key, None)
                times.append((time.perf_counter() - began) * 1000)
            median_ms = statistics.median(times)
            ok &= median_ms < CHART_TARGET_MS
            total = sum(b["hits"] for b in doc["buckets"])
            print(
                f"== chart {key} ({len(doc['buckets'])} buckets, {total:,} hits): median "
                f"{median_ms:.1f} ms, max {max(times):.1f} ms (target < {CHART_TARGET_MS:.0f} ms)"
            )
        ids = list(range(1, endpoints + 1))
        began = time.perf_counter()
        await store.sparklines(ids)
        print(f"== sparklines of {endpoints} endpoints, first read: "
              f"{(time.perf_counter() - began) * 1000:.0f} ms")  # fmt: skip
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            await store.sparklines(ids)
            times.append((time.perf_counter() - began) * 1000)
        median_ms = statistics.median(times)
        ok &= median_ms < CHART_TARGET_MS
        print(
            f"== sparklines of {endpoints} endpoints: median {median_ms:.1f} ms "
            f"(target < {CHART_TARGET_MS:.0f} ms)"
        )
        return ok
    finally:
        await close_pool(pool)


async def main_async(args: argparse.Namespace) -> int:
    if args.url:
        return 0 if await measure(args.url, args.endpoints) else 1
    workdir = Path(tempfile.mkdtemp(prefix="pbm-dataset-"))
    embedded = None
    try:
        server = os.environ.get("DATABASE_URL")
        if not server:
            from monitor.storage.embedded import EmbeddedPostgres

            embedded = EmbeddedPostgres(workdir / "pg")
            server = await asyncio.to_thread(embedded.start)
        name = f"pbm_dataset_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(server)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        from urllib.parse import urlsplit, urlunsplit

        url = urlunsplit(urlsplit(server)._replace(path="/" + name))
        try:
            await build(url, args.hits, args.endpoints, args.days)
            ok = await measure(url, args.endpoints)
            ok &= await measure_charts(url, args.endpoints)
        finally:
            if args.keep and embedded is None:
                print(f"\nkept: {url}")
            else:
                admin = await asyncpg.connect(server)
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()
        print("\nall reads under target" if ok else "\nSOME READS OVER TARGET")
        return 0 if ok else 1
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hits", type=int, default=10_000_000)
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the database (DATABASE_URL)")
    parser.add_argument("--url", help="only measure this database, built before with --keep")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
