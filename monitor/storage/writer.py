"""The one path by which hits reach the database: a group-commit writer.

Capture hands each hit to ``submit`` and waits. A single task takes everything
queued (up to ``batch_max_hits``) as one batch and releases every waiting request
once the batch is committed (``batch_commit``) or, with the database unable to
take it, fsync'd to the spool (``spool_replay`` writes it later). One commit
serves hundreds of requests, so durability stays cheap.

Two batches may be in flight at once, each on its own connection, so that the
process parses the next batch while the database commits the last one; their
ledger steps still keep arrival order (``ledger``). While the spool holds hits,
one batch at a time, queued behind them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Sequence

import asyncpg
import structlog

from monitor.model.hit import Hit
from monitor.storage.amount_outliers import AmountOutliers
from monitor.storage.batch_commit import BatchCommitter
from monitor.storage.senders import Senders
from monitor.storage.spool import Spool, SpoolFull
from monitor.storage.spool_replay import SpoolReplay

log = structlog.get_logger(__name__)

# Batches committing at once while the database is healthy; one while the spool
# holds hits, so that replay and new batches keep arrival order.
PIPELINE_DEPTH = 2
# How often the senders step's counts of known networks and shapes are written.
SENDERS_FLUSH_S = 2.0

Batch = list[tuple[Hit, asyncio.Future[None]]]


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
        amount_outliers: AmountOutliers | None = None,
        senders: Senders | None = None,
    ) -> None:
        self.batch_max_hits = batch_max_hits
        self.batch_max_wait_s = batch_max_wait_s
        self.queue_max_hits = queue_max_hits
        self.spool = spool
        self._pool = pool
        self._senders = senders
        self._committer = BatchCommitter(
            pool,
            commit_timeout_s=commit_timeout_s,
            amount_outliers=amount_outliers,
            senders=senders,
        )
        self._replay = (
            None
            if spool is None
            else SpoolReplay(
                spool,
                self._committer,
                batch_max_hits=batch_max_hits,
                drain_retry_s=drain_retry_s,
                on_replayed=self._notify,
            )
        )
        # Called after each commit with (hits, seconds); must not block or raise.
        self.committed_listeners: list[Callable[[Sequence[Hit], float], None]] = []
        # Called with the number of hits refused because the spool was full.
        self.spool_full_listeners: list[Callable[[int], None]] = []
        # See BatchCommitter: awaited in each batch's transaction.
        self.transaction_hooks = self._committer.transaction_hooks
        self._queue: collections.deque[tuple[Hit, asyncio.Future[None]]] = collections.deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._batch_done = asyncio.Event()
        self._spool_full_logged = False

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def spool_pending(self) -> int:
        """Acknowledged hits waiting in this process's view of the spool."""
        return 0 if self.spool is None else self.spool.pending_hits

    @property
    def dropped_total(self) -> int:
        """Hits not stored because their endpoint was deleted while they were in flight."""
        return self._committer.dropped_total

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hit-writer")
        if self._senders is not None:
            self._flusher = asyncio.create_task(
                self._flush_senders(self._senders), name="senders-flush"
            )

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
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush_counts()  # the counts of the last batches
        await self._committer.close()
        if self.spool is not None:
            self.spool.close()

    async def drain_spool(self) -> int:
        """Replay the spool until it is empty or the database refuses; hits left."""
        return 0 if self._replay is None else await self._replay.drain()

    async def flush_counts(self) -> None:
        """Write the senders step's counts now rather than at the next interval."""
        if self._senders is not None:
            await self._senders.flush(self._pool)

    async def _flush_senders(self, senders: Senders) -> None:
        while True:
            await asyncio.sleep(SENDERS_FLUSH_S)
            await senders.flush(self._pool)

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
                if self._replay is not None and spooling:
                    # Idle with hits in the spool: replay them between arrivals.
                    if not await self._replay.replay_oldest():
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(self._replay.drain_retry_s):
                                await self._wake.wait()
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

    async def _commit_guarded(self, batch: Batch) -> None:
        """A batch's task: whatever goes wrong, every request waiting on it gets an answer."""
        try:
            await self._commit(batch)
        except BaseException as exc:
            log.exception("writer.batch_crashed", hits=len(batch))
            _resolve(batch, WriteFailed(f"{type(exc).__name__}: {exc}"))
            if not isinstance(exc, Exception):
                raise

    async def _commit(self, batch: Batch) -> None:
        hits = [hit for hit, _ in batch]
        if self._replay is not None and self._replay.spool.has_pending():
            # Older hits wait in the spool: queue behind them so duplicates are
            # settled in arrival order when the spool is replayed.
            await self._to_spool(self._replay.spool, batch)
            await self._replay.replay_oldest()
            return
        started = time.perf_counter()
        stored, error = await self._committer.write(hits, replay=False)
        if error is None:
            if stored:  # empty when every hit's endpoint was deleted meanwhile
                self._notify(stored, time.perf_counter() - started)
            _resolve(batch, None)
            return
        reason = f"{type(error).__name__}: {error}"
        if self._replay is not None:
            log.warning("writer.spooling", hits=len(hits), error=reason)
            self._replay.retry_later()
            await self._to_spool(self._replay.spool, batch)
            return
        log.error("writer.batch_failed", hits=len(hits), error=reason)
        _resolve(batch, WriteFailed(reason))

    async def _to_spool(self, spool: Spool, batch: Batch) -> None:
        hits = [hit for hit, _ in batch]
        try:
            await asyncio.to_thread(spool.append, hits)
        except SpoolFull as exc:
            if not self._spool_full_logged:
                log.error("spool.full", error=str(exc), pending_hits=spool.pending_hits)
                self._spool_full_logged = True
            for listener in self.spool_full_listeners:
                listener(len(hits))
            _resolve(batch, WriteFailed(str(exc)))
            return
        except OSError as exc:
            log.error("spool.write_failed", error=str(exc))
            _resolve(batch, WriteFailed(f"spool: {exc}"))
            return
        self._spool_full_logged = False
        _resolve(batch, None)

    def _notify(self, hits: Sequence[Hit], seconds: float) -> None:
        for listener in self.committed_listeners:
            try:
                listener(hits, seconds)
            except Exception:
                log.exception("writer.listener_failed")


def _resolve(batch: Batch, error: BaseException | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
