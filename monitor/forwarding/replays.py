"""Bulk replay: every hit of a filtered set sent again to its endpoint's forward target.

An operator who fixed a broken target replays "all failed forwards of endpoint 7
since T" in one go instead of hit by hit. A job takes a snapshot of the matching hit
ids (at most ``MAX_REPLAY_HITS``, newest first), then sends them with at most
``concurrency`` in flight through the single-hit replay (``attempts.replay``): each
is logged as a ``replay`` attempt and a success settles a failed forward.

Jobs live in the memory of the process that started them (``--workers N`` or several
nodes: ask the same process for progress), are kept ``KEEP_FINISHED_S`` after they
finish, and stop with the process. One job runs per endpoint at a time, in every
process and machine together (``storage/replay_lock.py``): a second click while one
runs would send every hit twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from monitor.forwarding import attempts
from monitor.forwarding.outbound import OutboundClient
from monitor.model.errors import Conflict, NotFound
from monitor.rules.forwards import build_request
from monitor.storage.endpoint_cache import EndpointCache
from monitor.storage.hits import HitFilter, HitStore
from monitor.storage.replay_lock import ReplayLock

log = structlog.get_logger(__name__)

MAX_REPLAY_HITS = 10_000
DEFAULT_CONCURRENCY = 4
KEEP_FINISHED_S = 3600.0
MAX_JOBS_KEPT = 200


@dataclass
class ReplayJob:
    """One bulk replay and its progress; ``as_json`` is the API's ReplayJob."""

    id: str
    endpoint_id: int
    filters: dict[str, Any]
    total: int
    capped: bool
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    state: str = "running"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    finished_mono: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "filters": self.filters,
            "state": self.state,
            "total": self.total,
            "capped": self.capped,
            "done": self.done,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "started_at": self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
        }


class ReplayJobs:
    """The bulk replays of this process: started, run in the background, looked up."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        hits: HitStore,
        cache: EndpointCache,
        client: OutboundClient,
        *,
        dsn: str,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_hits: int = MAX_REPLAY_HITS,
    ) -> None:
        self.pool = pool
        self.hits = hits
        self.cache = cache
        self.client = client
        self.dsn = dsn  # for each running replay's lock connection
        self.concurrency = concurrency
        self.max_hits = max_hits
        self._jobs: dict[str, ReplayJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._starting: set[int] = set()

    async def count(self, endpoint_id: int, flt: HitFilter) -> int:
        """How many hits match ``flt``; above ``max_hits``: more than a replay sends
        (it takes the newest ``max_hits``)."""
        return await self.hits.count(endpoint_id, flt, self.max_hits)

    async def start(self, endpoint_id: int, flt: HitFilter, filters: dict[str, Any]) -> ReplayJob:
        """Snapshot the matching hits and start sending them; ``filters`` is what the
        caller asked for, kept with the job. Conflict when the endpoint has no
        forward target or a replay of it is already running."""
        endpoint = await self.cache.lookup_id(endpoint_id)
        if endpoint is None:
            raise NotFound("endpoint_not_found", f"no endpoint with id {endpoint_id}")
        if endpoint.compiled.forward is None:
            raise Conflict(
                "no_forward_target",
                "this endpoint has no forward target (settings: forward_url); set one "
                "before replaying, or replay single hits to a URL given then",
            )
        running = any(
            j.endpoint_id == endpoint_id and j.state == "running" for j in self._jobs.values()
        )
        if running or endpoint_id in self._starting:
            raise Conflict(
                "replay_running",
                "a replay of this endpoint is already running; wait for it to finish",
            )
        # Held while the snapshot is read: a second request meanwhile is refused too.
        self._starting.add(endpoint_id)
        try:
            lock = await ReplayLock.take(self.dsn, endpoint_id)
            if lock is None:
                raise Conflict(
                    "replay_running",
                    "a replay of this endpoint is already running in another process; "
                    "wait for it to finish",
                )
            try:
                ids = await self.hits.matching_ids(endpoint_id, flt, self.max_hits + 1)
            except BaseException:
                await lock.release()
                raise
        finally:
            self._starting.discard(endpoint_id)
        capped = len(ids) > self.max_hits
        ids = ids[: self.max_hits]
        self._forget_old()
        job = ReplayJob(secrets.token_urlsafe(12), endpoint_id, filters, len(ids), capped)
        self._jobs[job.id] = job
        if not ids:
            self._finish(job)
            await lock.release()
            return job
        task = asyncio.create_task(self._run(job, ids, lock), name=f"replay-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("replay.started", job=job.id, endpoint_id=endpoint_id, hits=len(ids))
        return job

    def get(self, job_id: str) -> ReplayJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(
                "replay_not_found",
                f"no replay job {job_id[:40]!r} in this process (jobs are kept for an "
                "hour after they finish, in the process that started them)",
            )
        return job

    async def close(self) -> None:
        """Stop every running job (the process is stopping); what was sent is logged."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, job: ReplayJob, ids: Sequence[Any], lock: ReplayLock) -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for item in reversed(ids):  # oldest first, as they were meant to arrive
            queue.put_nowait(item)
        try:
            workers = min(self.concurrency, len(ids))
            await asyncio.gather(*(self._work(job, queue) for _ in range(workers)))
        finally:
            self._finish(job)
            await lock.release()
            log.info(
                "replay.finished", job=job.id, endpoint_id=job.endpoint_id, done=job.done,
                succeeded=job.succeeded, failed=job.failed,
            )  # fmt: skip

    async def _work(self, job: ReplayJob, queue: asyncio.Queue[Any]) -> None:
        while not queue.empty():
            hit_id, received_at = queue.get_nowait()
            ok = False
            try:
                ok = await self._replay_one(job.endpoint_id, hit_id, received_at)
            except asyncio.CancelledError:
                raise
            except Exception:  # one hit's trouble (a lost database) must not stop the rest
                log.exception("replay.hit_failed", job=job.id, hit_id=str(hit_id))
            job.done += 1
            if ok:
                job.succeeded += 1
            else:
                job.failed += 1

    async def _replay_one(self, endpoint_id: int, hit_id: Any, received_at: Any) -> bool:
        """Send one hit to the endpoint's current target; False when it failed or
        there is nothing to send (hit expired, target removed meanwhile)."""
        endpoint = await self.cache.lookup_id(endpoint_id)
        forward = None if endpoint is None else endpoint.compiled.forward
        hit = await self.pool.fetchrow(attempts.LOAD_HIT, endpoint_id, hit_id, received_at)
        if forward is None or hit is None:
            return False
        with contextlib.suppress(NotFound):  # deleted with its endpoint meanwhile
            attempt = await attempts.replay(
                self.pool, self.client, hit, build_request(forward, hit), to_target=True
            )
            return bool(attempt["ok"])
        return False

    def _finish(self, job: ReplayJob) -> None:
        job.state = "finished"
        job.finished_at = datetime.now(UTC)
        job.finished_mono = time.monotonic()

    def _forget_old(self) -> None:
        now = time.monotonic()
        finished = [j for j in self._jobs.values() if j.finished_mono is not None]
        for job in finished:
            if now - (job.finished_mono or now) > KEEP_FINISHED_S:
                del self._jobs[job.id]
        finished = sorted(
            (j for j in self._jobs.values() if j.finished_mono is not None),
            key=lambda j: j.finished_mono or 0.0,
        )
        for job in finished[: max(0, len(self._jobs) - MAX_JOBS_KEPT + 1)]:
            del self._jobs[job.id]
