"""One click id's hits across endpoints, oldest first: the click timeline.

Support answers "my conversion is missing" from this, so it crosses endpoints; the
caller passes the endpoints it may show (every one for the admin token), which is
also what makes the query cheap: ``endpoint_id = ANY($2) AND click_id = $1`` is one
probe of ``hits_endpoint_click`` (endpoint_id, click_id; sql/001) per endpoint and
partition, so no index led by click_id is needed and capture pays for none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from monitor.storage.hits import LIST_COLUMNS, hit_json

# Enough for any real click's life (a lead, a sale, a few retries and reversals);
# past it the answer says it is cut rather than paging.
MAX_TIMELINE = 500
TIMELINE = f"""
SELECT {LIST_COLUMNS} FROM hits
WHERE click_id = $1 AND endpoint_id = ANY($2::bigint[])
ORDER BY received_at, id LIMIT $3"""


async def click_timeline(
    pool: asyncpg.Pool, click_id: str, endpoint_ids: Sequence[int], limit: int = MAX_TIMELINE
) -> tuple[list[dict[str, Any]], bool]:
    """The hits of ``endpoint_ids`` with this click id, oldest first (by
    (received_at, id), the order they arrived in), at most ``limit``; and whether
    more were left out."""
    if not endpoint_ids:
        return [], False
    rows = await pool.fetch(TIMELINE, click_id, list(endpoint_ids), limit + 1)
    return [hit_json(r, with_body=False) for r in rows[:limit]], len(rows) > limit
