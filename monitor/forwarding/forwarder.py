"""Forwarding, the worker: the Postgres outbox relayed at least once, with retries.

Rows come from the writer's transactions (``outbox.OutboxFeed``) of this or any
other process. The worker claims due rows (``outbox.CLAIM``), at most
``concurrency`` in flight per endpoint, sends each (``forward_attempts.send``) and
logs the attempt with the outcome in one transaction; failures are retried with
doubling, jittered delays until the endpoint's ``forward_max_attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from typing import Any

import asyncpg
import structlog

from monitor.forwarding import attempts as forward_attempts
from monitor.forwarding.attempts import LOAD_HIT, AttemptResult, log_attempt, send
from monitor.forwarding.outbound import OutboundClient
from monitor.forwarding.outbox import (
    CLAIM,
    CLAIM_MAX_ENDPOINTS,
    RELEASE,
    SET_RETRY,
    SET_STATE,
    OutboxFeed,
)
from monitor.metrics import Metrics
from monitor.rules.forwards import ForwardRequest, backoff_s, build_request
from monitor.storage.endpoint_cache import EndpointCache
from monitor.storage.writer import HitWriter

log = structlog.get_logger(__name__)

LEASE_MARGIN_S = 30.0


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
        metrics: Metrics,
    ) -> None:
        self.pool = pool
        self.cache = cache
        self.client = client
        self.concurrency = concurrency
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.metrics = metrics
        self._in_flight: defaultdict[int, int] = defaultdict(int)
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None

    def attach(self, writer: HitWriter) -> None:
        """Insert outbox rows in each batch's transaction; wake up after its commit."""
        writer.transaction_hooks.append(OutboxFeed(self.cache, self.wake))

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
                async with asyncio.timeout(self.poll_s):  # not wait_for: it may eat a cancel
                    await self._wake.wait()
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
            hit = await self.pool.fetchrow(LOAD_HIT, endpoint_id, hit_id, row["hit_received_at"])
            if forward is None or hit is None:
                # The endpoint stopped forwarding, was deleted, or the hit has expired.
                await self.pool.execute(SET_STATE, endpoint_id, hit_id, "cancelled")
                self.metrics.record_forward(endpoint_id, "cancelled")
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
        self.metrics.record_forward(
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

    # -- for the API and the views, which reach forwarding through this object

    async def attempts(self, hit_id: uuid.UUID) -> dict[str, Any]:
        """The outbox state of one hit and every attempt made for it, oldest first."""
        return await forward_attempts.attempt_history(self.pool, hit_id)

    async def load_hit(self, hit_id: uuid.UUID) -> Any:
        return await forward_attempts.load_stored_hit(self.pool, hit_id)

    async def replay(
        self, hit: Any, req: ForwardRequest, *, to_target: bool = False
    ) -> dict[str, Any]:
        """Send a stored hit now, outside the outbox; logged as a ``replay`` attempt
        (``to_target``: a success settles a failed forward, see ``attempts.replay``)."""
        return await forward_attempts.replay(self.pool, self.client, hit, req, to_target=to_target)
