"""An endpoint's stats over a window (GET /api/endpoints/{id}/stats, the endpoint
page's summary strip) and the endpoints page's counters of the last day.

The counts come from the hourly rollup of the charts (``ChartStore.totals``: its
closed hours from ``hit_hours``, the part of an hour at the window's start and the
open hours from hits), so a read no longer walks a whole window of hits: at 10 M hits
the endpoints page's counters took 0.4 s on an idle machine and 3.4–5.3 s under load
(docs/scaling.md). Test postbacks (``is_test``, sql/012) are left out of every count
and of the newest hit, and counted on their own: a tracker's periodic ping must not
make a silent endpoint look alive. A hit counts once per flag name it carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from monitor.model.errors import InvalidInput
from monitor.storage.charts import ChartStore

STATS_WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
SUMMARY_WINDOW = timedelta(days=1)
# Each endpoint's newest hit of all time that is not a test, so an endpoint that went
# quiet shows when it stopped: one probe of hits_endpoint_newest per partition.
LAST_HITS = """
SELECT e.id AS endpoint_id, l.received_at AS last_hit_at
FROM unnest($1::bigint[]) AS e(id)
LEFT JOIN LATERAL (
    SELECT received_at FROM hits WHERE endpoint_id = e.id AND NOT is_test
    ORDER BY received_at DESC, id DESC LIMIT 1
) l ON true"""


async def last_hits(pool: asyncpg.Pool, endpoint_ids: list[int]) -> dict[int, datetime | None]:
    rows = await pool.fetch(LAST_HITS, endpoint_ids)
    return {r["endpoint_id"]: r["last_hit_at"] for r in rows}


async def summaries(
    pool: asyncpg.Pool, endpoint_ids: Sequence[int], now: datetime
) -> dict[int, dict[str, Any]]:
    """Per endpoint: its hits, flagged hits and test hits in the day before ``now``
    (and any later), and when its newest hit arrived (None if never)."""
    ids = list(endpoint_ids)
    if not ids:
        return {}
    totals = await ChartStore(pool).totals(ids, now - SUMMARY_WINDOW, now)
    last = await last_hits(pool, ids)
    return {
        e: {
            "hits_24h": t.hits,
            "flagged_24h": t.flagged,
            "test_24h": t.tests,
            "last_hit_at": last[e],
        }
        for e, t in totals.items()
    }


async def stats(pool: asyncpg.Pool, endpoint_id: int, window: str, now: datetime) -> dict[str, Any]:
    """The stats over ``window`` (a key of STATS_WINDOWS) before ``now``, and the newest hit."""
    span = STATS_WINDOWS.get(window)
    if span is None:
        raise InvalidInput("invalid_query", f"window: one of {', '.join(STATS_WINDOWS)}")
    total = (await ChartStore(pool).totals([endpoint_id], now - span, now))[endpoint_id]
    last = (await last_hits(pool, [endpoint_id]))[endpoint_id]
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
