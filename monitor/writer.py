"""The one path by which hits reach the database: a group-commit writer.

Capture hands each hit to ``submit`` and waits. A single task takes everything
queued (up to ``batch_max_hits``), settles duplicate click ids against the
``click_keys`` ledger and COPYs the batch in one transaction, then releases every
waiting request. One commit serves hundreds of requests, so durability stays cheap.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import structlog

from monitor.hit import Hit
from monitor.rules import duplicate_flag

log = structlog.get_logger(__name__)

HITS_CHANNEL = "pbm_hits"
COPY_COLUMNS = (
    "id", "endpoint_id", "received_at", "method", "path", "raw_query", "params",
    "body_params", "headers", "content_type", "body", "body_size", "remote_ip",
    "user_agent", "click_id", "event", "flags", "flagged",
)  # fmt: skip
RETRYABLE_ERRORS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
BATCH_ATTEMPTS = 3

# Keys are sorted so concurrent writers lock ledger rows in one order (no deadlocks).
# DO NOTHING leaves existing keys alone; they come back from SELECT_KEYS below.
INSERT_KEYS = """
INSERT INTO click_keys (endpoint_id, click_id, event, first_hit_id, first_seen_at)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::uuid[], $5::timestamptz[])
ORDER BY 1, 2, 3
ON CONFLICT DO NOTHING
RETURNING endpoint_id, click_id, event
"""
SELECT_KEYS = """
SELECT k.endpoint_id, k.click_id, k.event, k.first_hit_id, k.first_seen_at
FROM click_keys k
JOIN unnest($1::bigint[], $2::text[], $3::text[]) AS u(endpoint_id, click_id, event)
  USING (endpoint_id, click_id, event)
ORDER BY 1, 2, 3
FOR UPDATE OF k
"""
RESET_KEY = """
UPDATE click_keys SET first_hit_id = $4, first_seen_at = $5
WHERE endpoint_id = $1 AND click_id = $2 AND event = $3
"""
NOTIFY_HITS = f"SELECT pg_notify('{HITS_CHANNEL}', $1)"

Key = tuple[int, str, str]
TransactionHook = Callable[[asyncpg.Connection, Sequence[Hit]], Awaitable[None]]


class WriterClosed(Exception):
    """The writer is shutting down and takes no more hits."""


class WriterOverloaded(Exception):
    """The queue is full; the caller should answer 503 with Retry-After."""


class WriteFailed(Exception):
    """The batch holding this hit could not be committed."""


class HitWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        batch_max_hits: int = 500,
        batch_max_wait_s: float = 0.002,
        queue_max_hits: int = 20000,
    ) -> None:
        self.pool = pool
        self.batch_max_hits = batch_max_hits
        self.batch_max_wait_s = batch_max_wait_s
        self.queue_max_hits = queue_max_hits
        # Called after each commit with (hits, seconds); must not block or raise.
        self.committed_listeners: list[Callable[[Sequence[Hit], float], None]] = []
        # Awaited inside each batch's transaction after the hits are inserted, so
        # rows they write (an outbox, say) commit or roll back with the hits.
        self.transaction_hooks: list[TransactionHook] = []
        self._queue: collections.deque[tuple[Hit, asyncio.Future[None]]] = collections.deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hit-writer")

    async def submit(self, hit: Hit) -> None:
        """Queue a hit and return once it is committed; raises if it cannot be."""
        if self._closing:
            raise WriterClosed
        if len(self._queue) >= self.queue_max_hits:
            raise WriterOverloaded
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((hit, future))
        self._wake.set()
        # Shielded: a client hanging up must not cancel a write others share.
        await asyncio.shield(future)

    async def close(self) -> None:
        """Take no more hits, commit everything queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if (
                len(self._queue) < self.batch_max_hits
                and self.batch_max_wait_s > 0
                and not self._closing
            ):
                await asyncio.sleep(self.batch_max_wait_s)
            count = min(len(self._queue), self.batch_max_hits)
            batch = [self._queue.popleft() for _ in range(count)]
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Hit, asyncio.Future[None]]]) -> None:
        hits = [hit for hit, _ in batch]
        started = time.perf_counter()
        error: BaseException | None = None
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                await self._write(hits)
                error = None
                break
            except RETRYABLE_ERRORS as exc:
                error = exc
                log.warning("writer.retry", attempt=attempt, error=str(exc))
            except Exception as exc:
                error = exc
                break
        seconds = time.perf_counter() - started
        if error is None:
            self.last_error = None
            for listener in self.committed_listeners:
                try:
                    listener(hits, seconds)
                except Exception:
                    log.exception("writer.listener_failed")
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            return
        self.last_error = f"{type(error).__name__}: {error}"
        log.error("writer.batch_failed", hits=len(hits), error=self.last_error)
        for _, future in batch:
            if not future.done():
                future.set_exception(WriteFailed(self.last_error))

    async def _write(self, hits: list[Hit]) -> None:
        for hit in hits:  # a retried batch settles duplicates afresh
            hit.duplicate = None
        async with self.pool.acquire() as conn, conn.transaction():
            await settle_duplicates(conn, hits)
            await conn.copy_records_to_table(
                "hits", records=[copy_record(h) for h in hits], columns=COPY_COLUMNS
            )
            for hook in self.transaction_hooks:
                await hook(conn, hits)
            endpoint_ids = sorted({h.endpoint_id for h in hits})
            await conn.execute(NOTIFY_HITS, ",".join(map(str, endpoint_ids)))


def copy_record(hit: Hit) -> tuple[object, ...]:
    flags = hit.all_flags()
    return (
        hit.id, hit.endpoint_id, hit.received_at, hit.method, hit.path, hit.raw_query,
        hit.params, hit.body_params, hit.headers, hit.content_type, hit.body, hit.body_size,
        hit.remote_ip, hit.user_agent, hit.verdict.click_id, hit.verdict.event, flags,
        bool(flags),
    )  # fmt: skip


async def settle_duplicates(conn: asyncpg.Connection, hits: Sequence[Hit]) -> None:
    """Flag every hit whose (endpoint, click id, event) was seen before, in arrival order.

    Within the batch the first hit of a key is its candidate original; the ledger
    (inserted in this same transaction) decides against earlier batches, other
    processes and earlier runs. A key whose original is older than the endpoint's
    dedupe window is handed to the new hit, which then counts as an original.
    """
    firsts: dict[Key, Hit] = {}
    repeats: list[tuple[Hit, Hit]] = []
    for hit in hits:
        dedupe_key = hit.verdict.dedupe_key
        if dedupe_key is None:
            continue
        key = (hit.endpoint_id, dedupe_key[0], dedupe_key[1])
        first = firsts.get(key)
        if first is None:
            firsts[key] = hit
        else:
            repeats.append((hit, first))
    if not firsts:
        return
    keys = list(firsts)
    columns = [list(col) for col in zip(*keys, strict=True)]
    inserted = {
        (r["endpoint_id"], r["click_id"], r["event"])
        for r in await conn.fetch(
            INSERT_KEYS, *columns,
            [firsts[k].id for k in keys], [firsts[k].received_at for k in keys],
        )
    }  # fmt: skip
    existing = [k for k in keys if k not in inserted]
    original_of: dict[Key, object] = {k: firsts[k].id for k in inserted}
    if existing:
        columns = [list(col) for col in zip(*existing, strict=True)]
        for row in await conn.fetch(SELECT_KEYS, *columns):
            key = (row["endpoint_id"], row["click_id"], row["event"])
            hit = firsts[key]
            window_s = hit.verdict.dedupe_window_s
            expired = (
                window_s is not None
                and (hit.received_at - row["first_seen_at"]).total_seconds() > window_s
            )
            if expired:
                await conn.execute(RESET_KEY, *key, hit.id, hit.received_at)
                original_of[key] = hit.id
            else:
                original_of[key] = row["first_hit_id"]
                hit.duplicate = duplicate_flag(hit.verdict, row["first_hit_id"])
    for hit, first in repeats:
        key = (hit.endpoint_id, *hit.verdict.dedupe_key)  # type: ignore[misc]
        window_s = hit.verdict.dedupe_window_s
        if (
            window_s is not None
            and (hit.received_at - first.received_at).total_seconds() > window_s
        ):
            continue  # same batch, yet outside the window: rare enough to leave as original
        hit.duplicate = duplicate_flag(hit.verdict, original_of[key])  # type: ignore[arg-type]
