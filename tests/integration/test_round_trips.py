"""Round trips per batch: each one is latency the next batch may wait on (issue #18).

A steady-state batch (known senders, seeded amounts, existing endpoint, new click
ids with statuses) costs BEGIN, one settling statement (endpoint lock and NOTIFY,
ledger, lifecycle), the COPY and COMMIT. Counted on real connections to a real
PostgreSQL, so a change that adds a statement to every batch fails here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from monitor.rules.outliers import compile_amount_outlier
from monitor.rules.senders import compile_senders
from monitor.storage.amount_outliers import AmountOutliers
from monitor.storage.batch_commit import BatchCommitter
from monitor.storage.db import close_pool, create_pool
from monitor.storage.senders import Senders
from tests.helpers.hits import judged_hit

SETTINGS = {"event_param": "event", "amount_param": "payout"}


class CountingConnection(asyncpg.Connection):  # type: ignore[misc]
    """Records the first word of every statement the writer sends."""

    sent: list[str] | None = None

    def _note(self, query: str) -> None:
        if self.sent is not None:
            self.sent.append(query.split()[0].upper())

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self._note(query)
        return await super().execute(query, *args, **kwargs)

    async def executemany(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self._note(query)
        return await super().executemany(query, *args, **kwargs)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self._note(query)
        return await super().fetch(query, *args, **kwargs)

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self._note(query)
        return await super().fetchrow(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self._note(query)
        return await super().fetchval(query, *args, **kwargs)

    async def copy_records_to_table(self, table: str, **kwargs: Any) -> Any:
        self._note("COPY")
        return await super().copy_records_to_table(table, **kwargs)


def batch(endpoint_id: int, start: int, when: datetime) -> list[Any]:
    hits = []
    for i in range(start, start + 20):
        query = f"click_id=rt-{i}&event=sale&payout=1.5"
        hit = judged_hit(endpoint_id, SETTINGS, query, when + timedelta(0, i))
        hit.remote_ip = "198.51.100.7"  # learning counts the hits of a network
        hits.append(hit)
    return hits


async def test_a_steady_batch_is_four_round_trips(db: asyncpg.Connection, pg_url: str) -> None:
    endpoint_id = await db.fetchval(
        "INSERT INTO endpoints (token, name) VALUES ($1, 'rt') RETURNING id", uuid.uuid4().hex
    )
    senders_rule, _ = compile_senders({"learn_hits": 5})
    outlier_rule, _ = compile_amount_outlier({})
    pool = await create_pool(pg_url, connection_class=CountingConnection)
    committer = BatchCommitter(
        pool,
        commit_timeout_s=10,
        senders=Senders(lambda _: senders_rule),
        amount_outliers=AmountOutliers(lambda _: outlier_rule),
    )
    try:
        when = datetime.now(UTC)
        for start in (0, 20):  # learning ends, amounts are seeded, the shape is known
            stored, error = await committer.write(batch(endpoint_id, start, when), replay=False)
            assert error is None and len(stored) == 20
        sent: list[str] = []
        CountingConnection.sent = sent  # every connection of the pool counts from here
        stored, error = await committer.write(batch(endpoint_id, 40, when), replay=False)
        assert error is None and len(stored) == 20
        assert sent == ["BEGIN", "WITH", "COPY", "COMMIT"]
        statuses = await db.fetchval(
            "SELECT count(*) FROM click_lifecycle WHERE endpoint_id = $1", endpoint_id
        )
        assert statuses == 60  # the settling statement did upsert every click
    finally:
        CountingConnection.sent = None
        await committer.close()
        await close_pool(pool)
