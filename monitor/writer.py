"""The one path by which hits reach the database: a group-commit writer.

Capture hands each hit to ``submit`` and waits. A single task takes everything
queued (up to ``batch_max_hits``), settles duplicate click ids against the
``click_keys`` ledger and COPYs the batch in one transaction, then releases every
waiting request. One commit serves hundreds of requests, so durability stays cheap.

Two batches may be in flight at once, each on its own connection, so that the
process parses the next batch while the database commits the last one. Their
ledger steps still run one after the other in arrival order (``_LedgerTurn``):
the first hit of a click id stays the original.

A batch stores only hits whose endpoint row still exists, checked under a lock
that orders it with the endpoint's delete (``keep_live_endpoints``): the hits of
a deleted endpoint never outlive it, whichever process or spool they come from.
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
from monitor.spool import Spool, SpoolFull

log = structlog.get_logger(__name__)

HITS_CHANNEL = "pbm_hits"
COPY_COLUMNS = (
    "id", "endpoint_id", "received_at", "method", "path", "raw_query", "params",
    "body_params", "headers", "content_type", "body", "body_size", "remote_ip",
    "user_agent", "click_id", "event", "flags", "flagged",
)  # fmt: skip
RETRYABLE_ERRORS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
BATCH_ATTEMPTS = 3
# Batches committing at once while the database is healthy; one while the spool
# holds hits, so that replay and new batches keep arrival order.
PIPELINE_DEPTH = 2

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
# FOR KEY SHARE orders the batch with an endpoint's delete, which locks the row
# first: a delete waits for batches holding the row, then deletes what they wrote;
# a batch that waited for a delete finds the row gone. Ordered, like the ledger keys.
LOCK_LIVE_ENDPOINTS = """
SELECT id FROM endpoints WHERE id = ANY($1::bigint[]) ORDER BY id FOR KEY SHARE
"""
# Sent with COMMIT in one round trip; the payload is endpoint ids (integers only).
NOTIFY_AND_COMMIT = f"SELECT pg_notify('{HITS_CHANNEL}', '{{endpoint_ids}}'); COMMIT"
CREATE_REPLAY_TABLE = "CREATE TEMP TABLE hits_replay (LIKE hits INCLUDING DEFAULTS) ON COMMIT DROP"
INSERT_REPLAYED = f"""
INSERT INTO hits ({", ".join(COPY_COLUMNS)})
SELECT {", ".join(COPY_COLUMNS)} FROM hits_replay
ON CONFLICT DO NOTHING
"""
# Errors in the data of a hit rather than in reaching the database: retrying
# the same hit cannot help, so it is set aside (kept on disk) instead.
DATA_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, ValueError, TypeError)

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
        batch_max_wait_s: float = 0.0,
        queue_max_hits: int = 20000,
        commit_timeout_s: float = 10.0,
        spool: Spool | None = None,
        drain_retry_s: float = 1.0,
    ) -> None:
        self.pool = pool
        self.batch_max_hits = batch_max_hits
        self.batch_max_wait_s = batch_max_wait_s
        self.queue_max_hits = queue_max_hits
        self.commit_timeout_s = commit_timeout_s
        self.spool = spool
        self.drain_retry_s = drain_retry_s
        # Called after each commit with (hits, seconds); must not block or raise.
        self.committed_listeners: list[Callable[[Sequence[Hit], float], None]] = []
        # Awaited inside each batch's transaction after the hits are inserted, so
        # rows they write (an outbox, say) commit or roll back with the hits.
        # Hooks must be idempotent: a spooled batch may be replayed more than once.
        self.transaction_hooks: list[TransactionHook] = []
        self._queue: collections.deque[tuple[Hit, asyncio.Future[None]]] = collections.deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._next_drain_at = 0.0
        # Connections kept across batches: releasing one to the pool after every
        # batch would cost a reset round trip each time.
        self._idle_conns: list[asyncpg.Connection] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._ledger_turn = _LedgerTurn()
        self._batch_done = asyncio.Event()
        self._spool_full_logged = False
        self.last_error: str | None = None
        self.spool_full_total = 0
        self.spooled_total = 0
        self.dropped_total = 0

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def spool_pending(self) -> int:
        """Acknowledged hits waiting in this process's view of the spool."""
        return 0 if self.spool is None else self.spool.pending_hits

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hit-writer")

    def enqueue(self, hit: Hit) -> asyncio.Future[None]:
        """Queue a hit; the future is done once it is committed or spooled, or failed
        with WriteFailed. Raises WriterClosed or WriterOverloaded at once."""
        if self._closing:
            raise WriterClosed
        if len(self._queue) >= self.queue_max_hits:
            raise WriterOverloaded
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((hit, future))
        self._wake.set()
        return future

    async def submit(self, hit: Hit) -> None:
        """Queue a hit and return once it is committed or spooled; raises if neither."""
        # Not shielded: a request cancelled here cancels only its own future; the
        # hit stays queued and is committed with its batch (_resolve skips it).
        await self.enqueue(hit)

    async def close(self) -> None:
        """Take no more hits, commit (or spool) everything queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        while self._idle_conns:
            await self.pool.release(self._idle_conns.pop())
        if self.spool is not None:
            self.spool.close()

    async def drain_spool(self) -> int:
        """Replay the spool until it is empty or the database refuses; hits left."""
        if self.spool is None:
            return 0
        self._next_drain_at = 0.0
        while await self._drain_one():
            pass
        return self.spool.pending_hits

    async def _run(self) -> None:
        while True:
            spooling = self.spool is not None and self.spool.has_pending()
            depth = 1 if spooling or self._closing else PIPELINE_DEPTH
            if len(self._in_flight) >= depth:
                self._batch_done.clear()
                await self._batch_done.wait()
                continue
            if not self._queue:
                if self._closing:
                    return  # nothing in flight: depth is 1 while closing
                self._wake.clear()
                if spooling:
                    # Idle with hits in the spool: replay them between arrivals.
                    if not await self._drain_one():
                        try:
                            await asyncio.wait_for(self._wake.wait(), self.drain_retry_s)
                        except TimeoutError:
                            pass
                    continue
                await self._wake.wait()
                continue
            if len(self._queue) < self.batch_max_hits and not self._closing:
                # Let the requests already read from their sockets join this batch;
                # sleep(0) is one turn of the loop. Under load the batch grows by
                # itself while the previous one commits (self-clocking group commit).
                await asyncio.sleep(self.batch_max_wait_s)
            count = min(len(self._queue), self.batch_max_hits)
            batch = [self._queue.popleft() for _ in range(count)]
            task = asyncio.create_task(self._commit_guarded(batch), name="hit-writer-batch")
            self._in_flight.add(task)
            task.add_done_callback(self._batch_finished)

    def _batch_finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._batch_done.set()

    async def _commit_guarded(self, batch: list[tuple[Hit, asyncio.Future[None]]]) -> None:
        """A batch's task: whatever goes wrong, every request waiting on it gets an answer."""
        try:
            await self._commit(batch)
        except BaseException as exc:
            log.exception("writer.batch_crashed", hits=len(batch))
            _resolve(batch, WriteFailed(f"{type(exc).__name__}: {exc}"))
            if not isinstance(exc, Exception):
                raise

    async def _commit(self, batch: list[tuple[Hit, asyncio.Future[None]]]) -> None:
        hits = [hit for hit, _ in batch]
        if self.spool is not None and self.spool.has_pending():
            # Older hits wait in the spool: queue behind them so duplicates are
            # settled in arrival order when the spool is replayed.
            await self._to_spool(batch)
            await self._drain_one()
            return
        started = time.perf_counter()
        stored, error = await self._try_write(hits, replay=False)
        if error is None:
            self.last_error = None
            self._notify(stored, time.perf_counter() - started)
            _resolve(batch, None)
            return
        self.last_error = f"{type(error).__name__}: {error}"
        if self.spool is not None:
            log.warning("writer.spooling", hits=len(hits), error=self.last_error)
            self._next_drain_at = time.monotonic() + self.drain_retry_s
            await self._to_spool(batch)
            return
        log.error("writer.batch_failed", hits=len(hits), error=self.last_error)
        _resolve(batch, WriteFailed(self.last_error))

    async def _try_write(
        self, hits: list[Hit], *, replay: bool
    ) -> tuple[list[Hit], BaseException | None]:
        """The hits stored (all but those of deleted endpoints), or the error."""
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                async with asyncio.timeout(self.commit_timeout_s):
                    return await self._write(hits, replay=replay), None
            except RETRYABLE_ERRORS as exc:
                log.warning("writer.retry", attempt=attempt, error=str(exc))
                error: BaseException = exc
            except Exception as exc:
                return [], exc
        return [], error

    async def _to_spool(self, batch: list[tuple[Hit, asyncio.Future[None]]]) -> None:
        assert self.spool is not None
        hits = [hit for hit, _ in batch]
        try:
            await asyncio.to_thread(self.spool.append, hits)
        except SpoolFull as exc:
            self.spool_full_total += len(hits)
            if not self._spool_full_logged:
                log.error("spool.full", error=str(exc), pending_hits=self.spool.pending_hits)
                self._spool_full_logged = True
            _resolve(batch, WriteFailed(str(exc)))
            return
        except OSError as exc:
            log.error("spool.write_failed", error=str(exc))
            _resolve(batch, WriteFailed(f"spool: {exc}"))
            return
        self._spool_full_logged = False
        self.spooled_total += len(hits)
        _resolve(batch, None)

    async def _drain_one(self) -> bool:
        """Replay the oldest spool segment; True when one was replayed."""
        assert self.spool is not None
        if time.monotonic() < self._next_drain_at:
            return False
        claimed = await asyncio.to_thread(self.spool.claim_oldest)
        if claimed is None:
            return False
        path, handle, hits = claimed
        started = time.perf_counter()
        error = None
        replayed: list[Hit] = []
        for chunk in _chunks(hits, self.batch_max_hits):
            stored, error = await self._try_write(chunk, replay=True)
            if isinstance(error, DATA_ERRORS):
                stored, error = await self._write_one_by_one(chunk)
            if error is not None:
                break
            replayed += stored
        if error is not None:
            self._next_drain_at = time.monotonic() + self.drain_retry_s
            log.warning(
                "spool.replay_failed", segment=path.name, error=f"{type(error).__name__}: {error}"
            )
            await asyncio.to_thread(
                self.spool.release, path, handle, replayed=False, hits=len(hits)
            )
            return False
        await asyncio.to_thread(self.spool.release, path, handle, replayed=True, hits=len(hits))
        self._notify(replayed, time.perf_counter() - started)
        log.info(
            "spool.replayed", segment=path.name, hits=len(hits), pending=self.spool.pending_hits
        )
        return True

    async def _write_one_by_one(self, hits: list[Hit]) -> tuple[list[Hit], BaseException | None]:
        """Replay hits singly after a data error; set aside only the ones that fail."""
        assert self.spool is not None
        replayed: list[Hit] = []
        for hit in hits:
            stored, error = await self._try_write([hit], replay=True)
            if isinstance(error, DATA_ERRORS):
                log.error("spool.hit_refused", hit_id=str(hit.id), error=str(error))
                await asyncio.to_thread(self.spool.set_aside, hit)
            elif error is not None:
                return replayed, error
            replayed += stored
        return replayed, None

    def _notify(self, hits: Sequence[Hit], seconds: float) -> None:
        if not hits:
            return  # every hit's endpoint was deleted: nothing was stored
        for listener in self.committed_listeners:
            try:
                listener(hits, seconds)
            except Exception:
                log.exception("writer.listener_failed")

    async def _write(self, hits: list[Hit], *, replay: bool = False) -> list[Hit]:
        for hit in hits:  # a retried batch settles duplicates afresh
            hit.duplicate = None
        turn = self._ledger_turn.take()
        try:
            conn = self._idle_conns.pop() if self._idle_conns else await self.pool.acquire()
        except BaseException:
            turn.done()
            raise
        try:
            stored = await self._write_with(conn, hits, replay=replay, turn=turn)
        except BaseException:
            # Whatever state the connection is in (mid-transaction after a timeout,
            # broken by an outage), the next batch starts on a fresh one.
            conn.terminate()
            await self.pool.release(conn)
            raise
        finally:
            turn.done()
        self._idle_conns.append(conn)
        if len(stored) < len(hits):
            kept = {hit.id for hit in stored}
            self._dropped([hit for hit in hits if hit.id not in kept])
        return stored

    def _dropped(self, hits: list[Hit]) -> None:
        """Hits whose endpoint was deleted before they were written are not stored.

        Their sender may have had its 2xx already (a spooled hit) or gets it now:
        either way the hit arrived while the endpoint existed, and the user then
        deleted the endpoint with everything of it, which is what happens here.
        """
        self.dropped_total += len(hits)
        endpoint_ids = sorted({hit.endpoint_id for hit in hits})
        log.info("writer.dropped_deleted_endpoint", hits=len(hits), endpoint_ids=endpoint_ids)

    async def _write_with(
        self, conn: asyncpg.Connection, hits: list[Hit], *, replay: bool, turn: _Turn
    ) -> list[Hit]:
        # BEGIN and COMMIT by hand rather than conn.transaction(): the NOTIFY rides
        # in COMMIT's round trip. On any error _write throws the connection away,
        # which rolls the transaction back.
        await turn.wait()
        await conn.execute("BEGIN")
        hits = await keep_live_endpoints(conn, hits)
        if not hits:
            await conn.execute("COMMIT")
            return hits
        await settle_duplicates(conn, hits)
        # Ledger rows are locked now: a later batch's ledger step waits for this
        # transaction wherever their keys meet, so it may start.
        turn.done()
        records = [copy_record(h) for h in hits]
        if replay:
            # A replayed hit may already be stored (a replay cut short after its
            # commit): go through a scratch table and skip ids already there.
            await conn.execute(CREATE_REPLAY_TABLE)
            await conn.copy_records_to_table("hits_replay", records=records, columns=COPY_COLUMNS)
            await conn.execute(INSERT_REPLAYED)
        else:
            await conn.copy_records_to_table("hits", records=records, columns=COPY_COLUMNS)
        for hook in self.transaction_hooks:
            await hook(conn, hits)
        endpoint_ids = ",".join(str(int(i)) for i in sorted({h.endpoint_id for h in hits}))
        await conn.execute(NOTIFY_AND_COMMIT.format(endpoint_ids=endpoint_ids))
        return hits


class _Turn:
    """One batch's place in the ledger order: wait for the one before, then release."""

    __slots__ = ("_before", "_mine")

    def __init__(self, before: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> None:
        self._before = before
        self._mine = mine

    async def wait(self) -> None:
        if self._before is not None and not self._before.done():
            await asyncio.shield(self._before)  # cancelling this batch must not release it

    def done(self) -> None:
        if not self._mine.done():
            self._mine.set_result(None)


class _LedgerTurn:
    """Hands out turns in the order batches are written."""

    def __init__(self) -> None:
        self._last: asyncio.Future[None] | None = None

    def take(self) -> _Turn:
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        turn = _Turn(self._last, mine)
        self._last = mine
        return turn


def _resolve(batch: list[tuple[Hit, asyncio.Future[None]]], error: BaseException | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _chunks(hits: list[Hit], size: int) -> list[list[Hit]]:
    return [hits[i : i + size] for i in range(0, len(hits), size)]


def copy_record(hit: Hit) -> tuple[object, ...]:
    flags = hit.all_flags()
    return (
        hit.id, hit.endpoint_id, hit.received_at, hit.method, hit.path, hit.raw_query,
        hit.params, hit.body_params, hit.headers, hit.content_type, hit.body, hit.body_size,
        hit.remote_ip, hit.user_agent, hit.verdict.click_id, hit.verdict.event, flags,
        bool(flags),
    )  # fmt: skip


async def keep_live_endpoints(conn: asyncpg.Connection, hits: list[Hit]) -> list[Hit]:
    """The hits whose endpoint still exists, its row key-share locked until commit.

    Settled by the database, not by a process's endpoint cache, which may not yet
    have heard of a delete. The lock makes the delete and this batch take turns:
    a delete that came first has removed the row, so its hits are left out here;
    one that comes later waits for this commit and deletes what it stored.
    """
    endpoint_ids = sorted({h.endpoint_id for h in hits})
    live = {r["id"] for r in await conn.fetch(LOCK_LIVE_ENDPOINTS, endpoint_ids)}
    if len(live) == len(endpoint_ids):
        return hits
    return [h for h in hits if h.endpoint_id in live]


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
            elif row["first_hit_id"] == hit.id:
                original_of[key] = hit.id  # this very hit, stored by an earlier replay
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
