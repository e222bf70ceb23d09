"""An endpoint's stats over a window (GET /api/endpoints/{id}/stats, the endpoint
page's summary strip) and the endpoints page's counters of the last day.

The counts come from the charts' hourly rollup (``totals``: the closed hours inside
the window from ``hit_hours``, filled and locked as the charts fill them; the part of
an hour at the window's start and the open hours from hits), so a read no longer
walks a whole window of hits: at 10 M hits the endpoints page's counters took 0.4 s
on an idle machine and 3.4–5.3 s under load (docs/scaling.md). Test postbacks
(``is_test``, sql/012) are left out of every count and of the newest hit, and counted
on their own: a tracker's periodic ping must not make a silent endpoint look alive.
A hit counts once per flag name it carries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from monitor.model.errors import InvalidInput
from monitor.rules.charts import HOUR, floor_time, open_from
from monitor.storage.charts import AGGREGATE, Bucket, ChartStore, fold

STATS_WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
SUMMARY_WINDOW = timedelta(days=1)
# A range with no end: asyncpg sends it as PostgreSQL's 'infinity'. The windows have
# none (a hit stamped later than now by another machine's clock counts, as it did).
FOREVER = datetime.max.replace(tzinfo=UTC)
# Per endpoint, its rollup rows of [$2, $3) summed in AGGREGATE's row shape (so
# ``fold`` adds them up), with how many hours it has: fewer than the range holds and
# the missing ones are counted first. One row per endpoint (and flag and currency)
# instead of one per hour to decode in Python; the flags and payouts only when $4 (the
# endpoints page needs neither: for its 2,300 hours they cost 11 ms of the server's).
ROLLED_TOTALS = """
WITH r AS MATERIALIZED (
    SELECT endpoint_id, hits, flagged, tests, by_flag, payouts FROM hit_hours
    WHERE endpoint_id = ANY($1::bigint[]) AND hour >= $2 AND hour < $3
)
SELECT endpoint_id, 'hits' AS kind, '' AS key, sum(hits)::numeric AS n,
    sum(flagged) AS flagged, sum(tests) AS tests, count(*) AS hours
FROM r GROUP BY endpoint_id
UNION ALL
SELECT endpoint_id, 'flag', f.key, sum(f.value::int)::numeric, 0, 0, 0
FROM r, jsonb_each_text(r.by_flag) AS f WHERE $4 GROUP BY endpoint_id, f.key
UNION ALL
SELECT endpoint_id, 'payout', p.key, sum(p.value::numeric), 0, 0, 0
FROM r, jsonb_each_text(r.payouts) AS p WHERE $4 GROUP BY endpoint_id, p.key"""
# Each endpoint's newest hit since $2 that is not a test: one probe of
# hits_endpoint_newest per partition from $2 on.
LAST_HITS = """
SELECT e.id AS endpoint_id, l.received_at AS last_hit_at
FROM unnest($1::bigint[]) AS e(id)
LEFT JOIN LATERAL (
    SELECT received_at FROM hits WHERE endpoint_id = e.id AND NOT is_test
        AND received_at >= $2
    ORDER BY received_at DESC, id DESC LIMIT 1
) l ON true"""
EVER = datetime.min.replace(tzinfo=UTC)


def by_endpoint(row: asyncpg.Record) -> int:
    return int(row["endpoint_id"])


async def totals(
    store: ChartStore, endpoint_ids: list[int], since: datetime, now: datetime, *, details: bool
) -> dict[int, Bucket]:
    """Each endpoint's counts of the hits received at or after ``since`` (later than
    ``now`` too), as one bucket: the closed hours from the rollup (an endpoint lacking
    some: its hours as the charts read them, the missing ones counted and stored), the
    part of an hour at ``since`` and the hours not closed at ``now`` from hits. Without
    ``details`` only hits, flagged and tests: by_flag and payouts stay empty."""

    def wanted(row: asyncpg.Record) -> bool:
        return details or row["kind"] == "hits"

    total = {e: Bucket(since) for e in endpoint_ids}
    closed_from = floor_time(since, HOUR)
    if closed_from < since:
        closed_from += HOUR
    closed_to = open_from(now)
    from_hits = [(since, FOREVER)]
    if closed_from < closed_to:
        rows = await store.pool.fetch(ROLLED_TOTALS, endpoint_ids, closed_from, closed_to, details)
        hours = {r["endpoint_id"]: r["hours"] for r in rows if r["kind"] == "hits"}
        expected = (closed_to - closed_from) // HOUR
        lacking = [e for e in endpoint_ids if hours.get(e, 0) < expected]
        if lacking:
            starts = [closed_from + HOUR * i for i in range(expected)]
            cells = {(e, h): Bucket(h) for e in lacking for h in starts}
            await store.closed_hours(lacking, closed_from, closed_to, cells)
            for (e, _), cell in cells.items():
                if not details:
                    cell = Bucket(
                        cell.start, hits=cell.hits, flagged=cell.flagged, tests=cell.tests
                    )
                total[e].add(cell)
        rolled = [r for r in rows if r["endpoint_id"] not in lacking and wanted(r)]
        fold(rolled, total, key=by_endpoint)
        from_hits = [(since, closed_from), (closed_to, FOREVER)]
    for start, end in from_hits:
        if start < end:
            rows = await store.pool.fetch(AGGREGATE, endpoint_ids, start, end, HOUR)
            fold([r for r in rows if wanted(r)], total, key=by_endpoint)
    return total


async def last_hits(
    pool: asyncpg.Pool, endpoint_ids: list[int], since: datetime
) -> dict[int, datetime | None]:
    """Each endpoint's newest hit of all time that is not a test (None: never), so an
    endpoint that went quiet shows when it stopped. Looked for since ``since`` first
    (the window's partitions: 100 endpoints' probes of 30 daily partitions took 11 ms),
    then, for the endpoints without one, in every partition."""
    found = {
        r["endpoint_id"]: r["last_hit_at"] for r in await pool.fetch(LAST_HITS, endpoint_ids, since)
    }
    quiet = [e for e, last in found.items() if last is None]
    if quiet:
        found.update(
            (r["endpoint_id"], r["last_hit_at"]) for r in await pool.fetch(LAST_HITS, quiet, EVER)
        )
    return found


async def summaries(
    pool: asyncpg.Pool, endpoint_ids: Sequence[int], now: datetime
) -> dict[int, dict[str, Any]]:
    """Per endpoint: its hits, flagged hits and test hits in the day before ``now``
    (and any later), and when its newest hit arrived (None if never)."""
    ids = list(endpoint_ids)
    if not ids:
        return {}
    # The counts and the newest hits on two connections at once: one wait, not two.
    since = now - SUMMARY_WINDOW
    counts, last = await asyncio.gather(
        totals(ChartStore(pool), ids, since, now, details=False), last_hits(pool, ids, since)
    )
    return {
        e: {
            "hits_24h": t.hits,
            "flagged_24h": t.flagged,
            "test_24h": t.tests,
            "last_hit_at": last[e],
        }
        for e, t in counts.items()
    }


async def stats(pool: asyncpg.Pool, endpoint_id: int, window: str, now: datetime) -> dict[str, Any]:
    """The stats over ``window`` (a key of STATS_WINDOWS) before ``now``, and the newest hit."""
    span = STATS_WINDOWS.get(window)
    if span is None:
        raise InvalidInput("invalid_query", f"window: one of {', '.join(STATS_WINDOWS)}")
    since = now - span
    counts, last_hit = await asyncio.gather(
        totals(ChartStore(pool), [endpoint_id], since, now, details=True),
        last_hits(pool, [endpoint_id], since),
    )
    total, last = counts[endpoint_id], last_hit[endpoint_id]
    by_flag = dict(sorted(total.by_flag.items()))
    duplicates = by_flag.get("duplicate_click_id", 0)
    return {
        "window": window,
        "total": total.hits,
        "flagged": total.flagged,
        "test_hits": total.tests,
        "by_flag": by_flag,
        "duplicate_rate": round(duplicates / total.hits, 6) if total.hits else 0.0,
        "last_hit_at": None if last is None else last.isoformat(),
    }
