"""One batch of hits, one transaction: the database work behind the group commit.

A batch locks its endpoints' rows, settles duplicates in the ledger and status
flags in the click lifecycle, COPYs its hits, runs the transaction hooks and
commits, retrying on deadlocks and serialization failures. Both the writer's new
batches and spool replays go through here, so a replayed hit is settled and stored
exactly like a new one.

A batch stores only hits whose endpoint row still exists, checked under a lock
that orders it with the endpoint's delete (``settle``): the hits of
a deleted endpoint never outlive it, whichever process or spool they come from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import structlog

from monitor.model.hit import Hit
from monitor.storage.amount_outliers import AmountOutliers
from monitor.storage.hit_rows import copy_hits
from monitor.storage.ledger import LedgerTurns, Turn, insert_keys_step, plan_keys, settle_keys
from monitor.storage.lifecycle import plan_clicks, settle_clicks, upsert_step
from monitor.storage.senders import Senders

log = structlog.get_logger(__name__)

HITS_CHANNEL = "pbm_hits"
RETRYABLE_ERRORS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
BATCH_ATTEMPTS = 3

# One statement, one round trip, settles what a batch must know before its COPY:
# - ``live``: FOR KEY SHARE orders the batch with an endpoint's delete, which locks
#   the row first: a delete waits for batches holding the row, then deletes what they
#   wrote; a batch that waited for a delete finds the row gone. Ordered, like the keys.
# - the NOTIFY of the live endpoints' ids ($2 the channel), which Postgres sends at
#   COMMIT and drops on rollback: the payload is made by the database from integer
#   ids, no SQL text is built.
# - ``keys``: the duplicate ledger's insert ($3-$7), ``clicks``: the lifecycle's upsert
#   ($8-$14), both only for live endpoints; each hands back what the batch needs.
# Each was a round trip of its own; the ledger and lifecycle ones ran while later
# batches waited for their turn.
SETTLE = f"""
WITH live AS (
    SELECT id FROM endpoints WHERE id = ANY($1::bigint[]) ORDER BY id FOR KEY SHARE
), keys AS ({insert_keys_step(3)}
), clicks AS ({upsert_step(8)}
)
SELECT ARRAY(SELECT id FROM live ORDER BY id) AS live,
    (SELECT pg_notify($2, string_agg(id::text, ',' ORDER BY id)) FROM live
     HAVING count(*) > 0) AS announced,
    ARRAY(SELECT ROW(endpoint_id, click_id, event) FROM keys) AS keys,
    ARRAY(SELECT ROW(endpoint_id, click_id, prev_last_status, prev_last_hit_id,
        prev_converted, prev_reversed_hit_id) FROM clicks) AS clicks
"""

# Called once the batch it ran in has committed; must not block or raise.
AfterCommit = Callable[[], None]
# Awaited inside a batch's transaction after its hits are copied; may return an
# AfterCommit for that batch alone.
TransactionHook = Callable[[asyncpg.Connection, Sequence[Hit]], Awaitable[AfterCommit | None]]


class BatchCommitter:
    """Writes batches on connections kept across batches, in ledger order."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        commit_timeout_s: float,
        amount_outliers: AmountOutliers | None = None,
        senders: Senders | None = None,
    ) -> None:
        self.pool = pool
        # Learns the endpoints' senders and flags unknown ones before the COPY; None: never.
        self.senders = senders
        # Flags amounts far from the endpoint's recent ones before the COPY; None: never.
        self.amount_outliers = amount_outliers
        self.commit_timeout_s = commit_timeout_s
        # Awaited inside each batch's transaction after the hits are inserted, so
        # rows they write (an outbox, say) commit or roll back with the hits.
        # Hooks must be idempotent: a spooled batch may be replayed more than once.
        self.transaction_hooks: list[TransactionHook] = []
        self.dropped_total = 0
        # Connections kept across batches: releasing one to the pool after every
        # batch would cost a reset round trip each time.
        self._idle_conns: list[asyncpg.Connection] = []
        self._ledger_turns = LedgerTurns()

    async def write(
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

    async def close(self) -> None:
        while self._idle_conns:
            await self.pool.release(self._idle_conns.pop())

    async def _write(self, hits: list[Hit], *, replay: bool) -> list[Hit]:
        for hit in hits:  # a retried batch settles duplicates and lifecycles afresh
            hit.duplicate = None
            hit.lifecycle = None
            hit.outlier = None
            hit.sender_flags = []
        turn = self._ledger_turns.take()
        try:
            conn = self._idle_conns.pop() if self._idle_conns else await self.pool.acquire()
        except BaseException:
            turn.done()
            raise
        try:
            stored, after_commit = await self._transaction(conn, hits, replay=replay, turn=turn)
        except BaseException:
            # Whatever state the connection is in (mid-transaction after a timeout,
            # broken by an outage), the next batch starts on a fresh one.
            conn.terminate()
            await self.pool.release(conn)
            raise
        finally:
            turn.done()
        self._idle_conns.append(conn)
        for callback in after_commit:
            try:
                callback()
            except Exception:
                log.exception("writer.after_commit_failed")
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

    async def _transaction(
        self, conn: asyncpg.Connection, hits: list[Hit], *, replay: bool, turn: Turn
    ) -> tuple[list[Hit], list[AfterCommit]]:
        # BEGIN and COMMIT by hand rather than conn.transaction(): on any error
        # _write throws the connection away, which rolls the transaction back
        # without a ROLLBACK round trip on a connection that may be broken.
        await conn.execute("BEGIN")
        # The settling statement takes turns with the batches before: the ledger and
        # lifecycle rows it writes stay locked until this commit, so a later batch's
        # statement waits for it wherever their keys meet and may start now.
        await turn.wait()
        hits = await settle(conn, hits)
        turn.done()
        if not hits:
            await conn.execute("COMMIT")
            return hits, []
        remember: list[AfterCommit] = []
        if self.amount_outliers is not None:
            if (remember_amounts := await self.amount_outliers.judge(conn, hits)) is not None:
                remember.append(remember_amounts)
        if self.senders is not None:
            remember.append(await self.senders.judge(conn, hits))
        await copy_hits(conn, hits, replay=replay)
        after_commit = [
            callback for hook in self.transaction_hooks if (callback := await hook(conn, hits))
        ]
        after_commit.extend(remember)
        await conn.execute("COMMIT")
        return hits, after_commit


async def settle(conn: asyncpg.Connection, hits: list[Hit]) -> list[Hit]:
    """Lock the live endpoints, settle duplicates and lifecycles: the hits kept.

    Which endpoints still exist is settled by the database, not by a process's
    endpoint cache, which may not yet have heard of a delete. The lock makes the
    delete and this batch take turns: a delete that came first has removed the row,
    so its hits are left out here; one that comes later waits for this commit and
    deletes what it stored. The live endpoints are announced on HITS_CHANNEL when
    the transaction commits.
    """
    keys, clicks = plan_keys(hits), plan_clicks(hits)
    endpoint_ids = sorted({h.endpoint_id for h in hits})
    row = await conn.fetchrow(
        SETTLE, endpoint_ids, HITS_CHANNEL, *keys.columns(), *clicks.columns()
    )
    live = set(row["live"])
    if len(live) < len(endpoint_ids):
        hits = [h for h in hits if h.endpoint_id in live]
        keys = keys.only(live)
    if keys.firsts:
        await settle_keys(conn, keys, {(k[0], k[1], k[2]) for k in row["keys"]})
    settle_clicks(clicks, row["clicks"])
    return hits
