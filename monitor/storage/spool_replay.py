"""Replaying the spool: hits acknowledged during an outage, written in arrival order.

The oldest segment is claimed (locked, so one process replays it), its hits are
written in batches through the same ledger and COPY as new hits, and the segment
is deleted only once all of them are stored. A replay cut short is tried again
after ``drain_retry_s``; a replayed hit already stored is skipped by id. A hit the
database refuses for its data is set aside on disk rather than blocking the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import asyncpg
import structlog

from monitor.model.hit import Hit
from monitor.rules.charts import HOUR, floor_time, open_from
from monitor.storage import charts
from monitor.storage.batch_commit import BatchCommitter
from monitor.storage.spool import Spool

log = structlog.get_logger(__name__)

# Errors in the data of a hit rather than in reaching the database: retrying
# the same hit cannot help, so it is set aside (kept on disk) instead.
DATA_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, ValueError, TypeError)


class SpoolReplay:
    """Replays one spool's segments, oldest first, at most once per retry interval."""

    def __init__(
        self,
        spool: Spool,
        committer: BatchCommitter,
        *,
        batch_max_hits: int,
        drain_retry_s: float,
        on_replayed: Callable[[Sequence[Hit], float], None],
    ) -> None:
        self.spool = spool
        self.committer = committer
        self.batch_max_hits = batch_max_hits
        self.drain_retry_s = drain_retry_s
        self.on_replayed = on_replayed
        self._next_attempt_at = 0.0

    def retry_later(self) -> None:
        """The database just failed: leave it alone for ``drain_retry_s``."""
        self._next_attempt_at = time.monotonic() + self.drain_retry_s

    async def drain(self) -> int:
        """Replay until the spool is empty or the database refuses; hits left."""
        self._next_attempt_at = 0.0
        while await self.replay_oldest():
            pass
        return self.spool.pending_hits

    async def replay_oldest(self) -> bool:
        """Replay the oldest spool segment; True when one was replayed."""
        if time.monotonic() < self._next_attempt_at:
            return False
        claimed = await asyncio.to_thread(self.spool.claim_oldest)
        if claimed is None:
            return False
        path, handle, hits = claimed
        started = time.perf_counter()
        error = None
        replayed: list[Hit] = []
        for start in range(0, len(hits), self.batch_max_hits):
            chunk = hits[start : start + self.batch_max_hits]
            stored, error = await self.committer.write(chunk, replay=True)
            if isinstance(error, DATA_ERRORS):
                stored, error = await self._write_one_by_one(chunk)
            if error is not None:
                break
            replayed += stored
        if error is not None:
            self.retry_later()
            log.warning(
                "spool.replay_failed", segment=path.name, error=f"{type(error).__name__}: {error}"
            )
            await asyncio.to_thread(
                self.spool.release, path, handle, replayed=False, hits=len(hits)
            )
            return False
        await asyncio.to_thread(self.spool.release, path, handle, replayed=True, hits=len(hits))
        if replayed:  # empty when every hit's endpoint was deleted meanwhile
            await self._forget_chart_hours(replayed)
            self.on_replayed(replayed, time.perf_counter() - started)
        log.info(
            "spool.replayed", segment=path.name, hits=len(hits), pending=self.spool.pending_hits
        )
        return True

    async def _forget_chart_hours(self, hits: Sequence[Hit]) -> None:
        """Replayed hits may belong to hours the charts' rollup already counted (an
        outage longer than ``CLOSED_AFTER``): those hours are counted again on read."""
        closed = open_from(datetime.now(UTC))
        hours = {(h.endpoint_id, floor_time(h.received_at, HOUR)) for h in hits}
        hours = {(e, hour) for e, hour in hours if hour < closed}
        if not hours:
            return
        try:
            async with self.committer.pool.acquire() as conn, conn.transaction():
                await charts.forget_hours(conn, hours)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("spool.chart_hours_kept", hours=len(hours), error=str(exc))

    async def _write_one_by_one(self, hits: list[Hit]) -> tuple[list[Hit], BaseException | None]:
        """Replay hits singly after a data error; set aside only the ones that fail."""
        replayed: list[Hit] = []
        for hit in hits:
            stored, error = await self.committer.write([hit], replay=True)
            if isinstance(error, DATA_ERRORS):
                log.error("spool.hit_refused", hit_id=str(hit.id), error=str(error))
                await asyncio.to_thread(self.spool.set_aside, hit)
            elif error is not None:
                return replayed, error
            replayed += stored
        return replayed, None
