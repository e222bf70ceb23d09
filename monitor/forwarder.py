"""Forwarding, the worker: a Postgres outbox relayed at least once, with retries.

The writer's transaction hook inserts an outbox row for each hit that should be
forwarded, so the row commits with its hit (and a replayed batch inserts nothing
twice). Workers in any number of processes claim due rows with ``FOR UPDATE SKIP
LOCKED`` and push ``next_attempt_at`` ahead by a lease before sending, so a row is
sent by one process at a time, and a crashed process's rows come due again when the
lease runs out. Each attempt is logged with the outcome in one transaction; failures
are retried with doubling, jittered delays until ``forward_max_attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import structlog
from aiohttp import web

from monitor import metrics
from monitor.endpoints import EndpointCache
from monitor.errors import NotFound
from monitor.forwarding import ForwardRequest, backoff_s, build_request
from monitor.hit import Hit
from monitor.outbound import Guard, OutboundClient, OutboundError, OutboundRefused
from monitor.typedefs import CONFIG, ENDPOINT_CACHE, FORWARDER, OUTBOUND, POOL
from monitor.writer import HitWriter

log = structlog.get_logger(__name__)

RESPONSE_HEAD_BYTES = 1024
MAX_ERROR_CHARS = 500
# Endpoints looked at per claim; each gets at most its free concurrency slots.
CLAIM_MAX_ENDPOINTS = 100
LEASE_MARGIN_S = 30.0

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
LOAD_HIT = """
SELECT id, endpoint_id, received_at, method, path, raw_query, params, body_params, headers,
    content_type, body, body_size, remote_ip, flags
FROM hits WHERE id = $1 AND received_at = $2"""
LOAD_HIT_ANY_TIME = """
SELECT id, endpoint_id, received_at, method, path, raw_query, params, body_params, headers,
    content_type, body, body_size, remote_ip, flags
FROM hits WHERE id = $1"""
ATTEMPT_COLUMNS = """id, endpoint_id, hit_id, kind, attempt, started_at, method, url, status,
    latency_ms, response_head, error, flags"""
# Logged only while the endpoint exists, its row key-share locked as the writer does
# (monitor.writer): an attempt that ends after the endpoint's delete leaves no row.
INSERT_ATTEMPT = f"""
INSERT INTO forward_attempts (endpoint_id, hit_id, kind, attempt, started_at, method, url,
    status, latency_ms, response_head, error, flags)
SELECT $1, $2, $3,
    coalesce($4, (SELECT count(*) + 1 FROM forward_attempts WHERE hit_id = $2 AND kind = $3)),
    $5::timestamptz, $6::text, $7::text, $8::integer, $9::float8, $10::text, $11::text,
    $12::jsonb
FROM endpoints WHERE id = $1 FOR KEY SHARE
RETURNING {ATTEMPT_COLUMNS}"""
SET_STATE = """
UPDATE forward_outbox SET state = $3, updated_at = now()
WHERE endpoint_id = $1 AND hit_id = $2"""
SET_RETRY = """
UPDATE forward_outbox SET next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
WHERE endpoint_id = $1 AND hit_id = $2"""
# A claim given back unsent (shutdown): due again at once, the attempt not counted.
RELEASE = """
UPDATE forward_outbox SET attempts = attempts - 1, next_attempt_at = now(), updated_at = now()
WHERE endpoint_id = $1 AND hit_id = $2 AND state = 'pending'"""
SELECT_ATTEMPTS = f"""
SELECT {ATTEMPT_COLUMNS} FROM forward_attempts WHERE hit_id = $1 ORDER BY started_at, id"""
HIT_EXISTS = "SELECT 1 FROM hits WHERE id = $1"
SELECT_OUTBOX = """
SELECT state, attempts, next_attempt_at, created_at, updated_at
FROM forward_outbox WHERE hit_id = $1"""


class AttemptResult:
    """What one outbound request came to."""

    __slots__ = ("error", "latency_ms", "refused", "response_head", "started_at", "status")

    def __init__(self) -> None:
        self.started_at = datetime.now(UTC)
        self.status: int | None = None
        self.latency_ms: float | None = None
        self.response_head: str | None = None
        self.error: str | None = None
        self.refused = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


async def send(client: OutboundClient, req: ForwardRequest) -> AttemptResult:
    """Fire one forward; never raises for network trouble, it is in the result."""
    result = AttemptResult()
    started = time.perf_counter()
    try:
        resp = await client.request(
            req.method, req.url, headers=req.headers, body=req.body,
            max_body_bytes=RESPONSE_HEAD_BYTES,
        )  # fmt: skip
    except OutboundRefused as exc:
        result.refused = True
        result.error = f"refused: {exc.message}"
    except OutboundError as exc:
        result.error = exc.message
    except TimeoutError:
        result.error = "timed out"
    except aiohttp.ClientError as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    except (ValueError, UnicodeError) as exc:
        result.refused = True  # a URL that cannot be sent will not improve with retries
        result.error = f"invalid request: {exc}"[:MAX_ERROR_CHARS]
    else:
        result.status = resp.status
        result.response_head = resp.body.decode("utf-8", "replace").replace("\x00", "\ufffd")
        if 300 <= resp.status < 400:
            location = dict((k.lower(), v) for k, v in resp.headers).get("location", "")
            result.error = f"redirect to {location[:300]!r} not followed; forward there directly"
    result.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return result


def attempt_json(row: Any) -> dict[str, Any]:
    status = row["status"]
    return {
        "id": row["id"],
        "kind": row["kind"],
        "attempt": row["attempt"],
        "started_at": row["started_at"].isoformat(),
        "method": row["method"],
        "url": row["url"],
        "status": status,
        "ok": status is not None and 200 <= status < 300,
        "latency_ms": row["latency_ms"],
        "response_head": row["response_head"],
        "error": row["error"],
        "flags": row["flags"],
    }


async def log_attempt(
    conn: asyncpg.Connection,
    hit: Any,
    kind: str,
    attempt: int | None,
    req: ForwardRequest,
    result: AttemptResult,
) -> Any:
    """The attempt's row; None when the endpoint was deleted meanwhile."""
    return await conn.fetchrow(
        INSERT_ATTEMPT, hit["endpoint_id"], hit["id"], kind, attempt, result.started_at,
        req.method, req.url, result.status, result.latency_ms, result.response_head,
        result.error, req.flags,
    )  # fmt: skip


class Forwarder:
    """Relays outbox rows of this and other processes; one per server process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: EndpointCache,
        client: OutboundClient,
        *,
        concurrency: int = 4,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 3600.0,
        poll_s: float = 1.0,
        lease_s: float = 60.0,
    ) -> None:
        self.pool = pool
        self.cache = cache
        self.client = client
        self.concurrency = concurrency
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.poll_s = poll_s
        self.lease_s = lease_s
        self._in_flight: defaultdict[int, int] = defaultdict(int)
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._queued_new = False
        self._closing = False
        self._runner: asyncio.Task[None] | None = None

    # -- the writer's side

    def attach(self, writer: HitWriter) -> None:
        """Insert outbox rows in each batch's transaction; wake up after its commit."""
        writer.transaction_hooks.append(self.transaction_hook)
        writer.committed_listeners.append(self._after_commit)

    async def transaction_hook(self, conn: asyncpg.Connection, hits: Sequence[Hit]) -> None:
        rows: list[tuple[int, uuid.UUID, datetime]] = []
        for hit in hits:
            endpoint = self.cache.by_id(hit.endpoint_id)
            forward = None if endpoint is None else endpoint.compiled.forward
            if forward is None or (not forward.forward_flagged and hit.all_flags()):
                continue
            rows.append((hit.endpoint_id, hit.id, hit.received_at))
        if rows:
            columns = [list(col) for col in zip(*rows, strict=True)]
            await conn.execute(INSERT_OUTBOX, *columns)
            self._queued_new = True

    def _after_commit(self, hits: Sequence[Hit], seconds: float) -> None:
        if self._queued_new:
            self._queued_new = False
            self._wake.set()

    # -- the worker

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="forwarder")

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop claiming; give in-flight sends a moment, then cancel and release them."""
        self._closing = True
        self._wake.set()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._closing:
            try:
                claimed = await self._claim()
            except Exception as exc:  # any loss of the database (it may be restarting)
                log.warning("forwarder.claim_failed", error=str(exc))
                claimed = []
            for row in claimed:
                self._in_flight[row["endpoint_id"]] += 1
                task = asyncio.create_task(self._deliver(row), name="forward")
                self._tasks.add(task)
                task.add_done_callback(self._done)
            if claimed:
                continue  # there may be more due rows for endpoints with free slots
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    async def _claim(self) -> list[asyncpg.Record]:
        full = [e for e, n in self._in_flight.items() if n >= self.concurrency]
        partial = [(e, self.concurrency - n) for e, n in self._in_flight.items() if 0 < n]
        partial = [(e, free) for e, free in partial if free > 0]
        rows: list[asyncpg.Record] = await self.pool.fetch(
            CLAIM, full, [e for e, _ in partial], [f for _, f in partial],
            self.concurrency, self.lease_s, CLAIM_MAX_ENDPOINTS,
        )  # fmt: skip
        return rows

    async def _deliver(self, row: asyncpg.Record) -> None:
        endpoint_id, hit_id, attempt = row["endpoint_id"], row["hit_id"], row["attempts"]
        sent = False
        try:
            endpoint = await self.cache.lookup_id(endpoint_id)
            forward = None if endpoint is None else endpoint.compiled.forward
            hit = await self.pool.fetchrow(LOAD_HIT, hit_id, row["hit_received_at"])
            if forward is None or hit is None:
                # The endpoint stopped forwarding, was deleted, or the hit has expired.
                await self.pool.execute(SET_STATE, endpoint_id, hit_id, "cancelled")
                metrics.record_forward(endpoint_id, "cancelled")
                return
            req = build_request(forward, hit)
            sent = True
            result = await send(self.client, req)
            await self._record(hit, attempt, req, result, forward.max_attempts)
        except asyncio.CancelledError:
            # Shutting down: give the claim back so the next process sends it at once.
            # (If the request was already out, the tracker may see it twice: at least once.)
            with contextlib.suppress(Exception):
                await asyncio.shield(self.pool.execute(RELEASE, endpoint_id, hit_id))
            raise
        except Exception:
            log.exception("forwarder.deliver_failed", endpoint_id=endpoint_id, sent=sent)
        finally:
            self._in_flight[endpoint_id] -= 1
            if self._in_flight[endpoint_id] <= 0:
                del self._in_flight[endpoint_id]

    async def _record(
        self, hit: Any, attempt: int, req: ForwardRequest, result: AttemptResult, max_attempts: int
    ) -> None:
        endpoint_id, hit_id = hit["endpoint_id"], hit["id"]
        delay_s = None
        async with self.pool.acquire() as conn, conn.transaction():
            await log_attempt(conn, hit, "forward", attempt, req, result)
            if result.ok:
                await conn.execute(SET_STATE, endpoint_id, hit_id, "delivered")
            elif result.refused or attempt >= max_attempts:
                await conn.execute(SET_STATE, endpoint_id, hit_id, "failed")
            else:
                delay_s = backoff_s(attempt, self.backoff_base_s, self.backoff_max_s)
                await conn.execute(SET_RETRY, endpoint_id, hit_id, delay_s)
        metrics.record_forward(
            endpoint_id,
            "delivered" if result.ok else "retrying" if delay_s is not None else "failed",
        )
        if result.ok:
            log.debug("forward.delivered", endpoint_id=endpoint_id, attempt=attempt)
        elif delay_s is None:
            log.warning(
                "forward.gave_up", endpoint_id=endpoint_id, attempts=attempt, error=result.error,
                status=result.status,
            )  # fmt: skip
        elif delay_s < self.poll_s:
            asyncio.get_running_loop().call_later(delay_s, self._wake.set)

    # -- reading and replaying

    async def attempts(self, hit_id: uuid.UUID) -> dict[str, Any]:
        """The outbox state of one hit and every attempt made for it, oldest first."""
        outbox = await self.pool.fetchrow(SELECT_OUTBOX, hit_id)
        rows = await self.pool.fetch(SELECT_ATTEMPTS, hit_id)
        if outbox is None and not rows and await self.pool.fetchval(HIT_EXISTS, hit_id) is None:
            raise NotFound("hit_not_found", f"no hit with id {hit_id}")
        return {
            "hit_id": str(hit_id),
            "forward": None
            if outbox is None
            else {
                "state": outbox["state"],
                "attempts": outbox["attempts"],
                "next_attempt_at": outbox["next_attempt_at"].isoformat()
                if outbox["state"] == "pending"
                else None,
                "updated_at": outbox["updated_at"].isoformat(),
            },
            "items": [attempt_json(r) for r in rows],
        }

    async def load_hit(self, hit_id: uuid.UUID) -> Any:
        hit = await self.pool.fetchrow(LOAD_HIT_ANY_TIME, hit_id)
        if hit is None:
            raise NotFound("hit_not_found", f"no hit with id {hit_id}")
        return hit

    async def replay(self, hit: Any, req: ForwardRequest) -> dict[str, Any]:
        """Send a stored hit now, outside the outbox; logged as a ``replay`` attempt."""
        result = await send(self.client, req)
        async with self.pool.acquire() as conn:
            row = await log_attempt(conn, hit, "replay", None, req, result)
        if row is None:
            raise NotFound("hit_not_found", f"hit {hit['id']} was deleted with its endpoint")
        return attempt_json(row)


async def forwarder_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outbound client and the forwarder; set up before the writer, which attaches it."""
    config = app[CONFIG]
    client = OutboundClient(
        Guard(config.forward_allow),
        connect_timeout_s=config.outbound_connect_timeout_s,
        total_timeout_s=config.outbound_timeout_s,
        max_response_bytes=config.outbound_max_response_bytes,
    )
    await client.start()
    forwarder = Forwarder(
        app[POOL],
        app[ENDPOINT_CACHE],
        client,
        concurrency=config.forward_concurrency,
        backoff_base_s=config.forward_backoff_s,
        backoff_max_s=config.forward_backoff_max_s,
        poll_s=config.forward_poll_s,
        lease_s=config.outbound_timeout_s + LEASE_MARGIN_S,
    )
    app[OUTBOUND] = client
    app[FORWARDER] = forwarder
    forwarder.start()
    try:
        yield
    finally:
        await forwarder.close()
        await client.close()
        log.info("forwarder.stopped")
