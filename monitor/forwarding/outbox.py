"""The forwarding outbox: rows written with their hits, claimed by any process.

The writer's transaction hook (``OutboxFeed``) inserts a row for each hit that
should be forwarded, so the row commits with its hit (and a replayed batch inserts
nothing twice). Workers in any number of processes claim due rows with ``FOR
UPDATE SKIP LOCKED`` and push ``next_attempt_at`` ahead by a lease before sending,
so a row is sent by one process at a time, and a crashed process's rows come due
again when the lease runs out.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg

from monitor.model.hit import Hit
from monitor.storage.batch_commit import AfterCommit
from monitor.storage.endpoint_cache import EndpointCache

# Endpoints looked at per claim; each gets at most its free concurrency slots.
CLAIM_MAX_ENDPOINTS = 100

INSERT_OUTBOX = """
INSERT INTO forward_outbox (endpoint_id, hit_id, hit_received_at)
SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::timestamptz[])
ON CONFLICT DO NOTHING"""
# $1 endpoints at their limit (skipped), $2/$3 endpoints with fewer free slots than
# the default $4, $5 lease in seconds. The outer UPDATE re-checks nothing: the rows
# are locked by this statement, and a row another process claimed and committed
# meanwhile fails the re-checked WHERE (READ COMMITTED re-evaluates locked rows).
CLAIM = """
WITH due_endpoints AS (
    SELECT DISTINCT endpoint_id FROM forward_outbox
    WHERE state = 'pending' AND next_attempt_at <= now() AND endpoint_id <> ALL($1::bigint[])
    LIMIT $6
), claimed AS (
    SELECT o.endpoint_id, o.hit_id FROM due_endpoints d
    CROSS JOIN LATERAL (
        SELECT endpoint_id, hit_id FROM forward_outbox
        WHERE endpoint_id = d.endpoint_id AND state = 'pending' AND next_attempt_at <= now()
        ORDER BY next_attempt_at
        LIMIT coalesce(
            (SELECT f.free FROM unnest($2::bigint[], $3::int[]) AS f(id, free)
             WHERE f.id = d.endpoint_id), $4)
        FOR UPDATE SKIP LOCKED
    ) o
)
UPDATE forward_outbox o
SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $5),
    updated_at = now()
FROM claimed c
WHERE o.endpoint_id = c.endpoint_id AND o.hit_id = c.hit_id
RETURNING o.endpoint_id, o.hit_id, o.hit_received_at, o.attempts"""
SET_STATE = """
UPDATE forward_outbox SET state = $3, updated_at = now()
WHERE endpoint_id = $1 AND hit_id = $2"""
SET_RETRY = """
UPDATE forward_outbox SET next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
WHERE endpoint_id = $1 AND hit_id = $2"""
# A replay to the endpoint's own forward target that succeeded: a forward given up
# (failed) or called off (cancelled) is delivered after all. A pending row is left to
# the worker (it may hold a claim on it), a never-queued hit stays without a row.
SETTLE_REPLAYED = """
UPDATE forward_outbox SET state = 'delivered', updated_at = now()
WHERE endpoint_id = $1 AND hit_id = $2 AND state IN ('failed', 'cancelled')"""
# A claim given back unsent (shutdown): due again at once, the attempt not counted.
RELEASE = """
UPDATE forward_outbox SET attempts = attempts - 1, next_attempt_at = now(), updated_at = now()
WHERE endpoint_id = $1 AND hit_id = $2 AND state = 'pending'"""


class OutboxFeed:
    """The writer's transaction hook: outbox rows for the hits of forwarding endpoints."""

    def __init__(self, cache: EndpointCache, wake: Callable[[], None]) -> None:
        self.cache = cache
        self.wake = wake

    async def __call__(self, conn: asyncpg.Connection, hits: Sequence[Hit]) -> AfterCommit | None:
        """Insert the batch's rows; the forwarder is woken once this batch commits.

        The wake-up belongs to this batch alone: with two batches in flight, the
        first one's commit must not use up the second's (its rows are not visible
        until it commits, and the poller would wait a whole poll interval).
        """
        rows: list[tuple[int, uuid.UUID, datetime]] = []
        for hit in hits:
            endpoint = self.cache.by_id(hit.endpoint_id)
            forward = None if endpoint is None else endpoint.compiled.forward
            if forward is None or (not forward.forward_flagged and hit.all_flags()):
                continue
            rows.append((hit.endpoint_id, hit.id, hit.received_at))
        if not rows:
            return None
        columns = [list(col) for col in zip(*rows, strict=True)]
        await conn.execute(INSERT_OUTBOX, *columns)
        return self.wake
