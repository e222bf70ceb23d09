"""Reconciliation runs and their items: the tables of sql/005_reconciliation.sql.

A run is written by one connection for its whole life (``RunWriter``), which holds a
session advisory lock on the run's id: a run still ``running`` whose lock nobody
holds belongs to a process that died, and ``fail_interrupted`` (at every startup)
marks it failed. The lock is taken before the run's row is committed, so another
process starting meanwhile never takes a new run for a dead one.

Reading (``ReconciliationStore``) pages runs newest first by id and items in their
insertion order (``seq``), with opaque cursors.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from monitor.model.errors import Conflict, InvalidInput, NotFound
from monitor.storage import reconciliation_match

# The advisory lock class of runs (pg_advisory_lock(int, int)); the object is the id.
RUN_LOCK_CLASS = 0x7265_636E  # "recn"
RUN_LOCK = f"{RUN_LOCK_CLASS}, ($1::bigint % 2147483647)::int"
ITEM_KINDS = (*reconciliation_match.KINDS, "unparsed_row")
MAX_PAGE = 500
DEFAULT_PAGE = 50
ROW_COLUMNS = ("run_id", "line", "click_id", "event", "amount", "currency", "time")
RUN_COLUMNS = """id, created_at, finished_at, status, error, endpoint_ids, since, until,
    options, layout, summary, rows_read, bytes_read, bytes_total"""
ITEM_COLUMNS = "seq, kind, click_id, event, report, captured, hit_ids"
INSERT_RUN = """
INSERT INTO reconciliations (endpoint_ids, since, until, options, bytes_total)
VALUES ($1, $2, $3, $4, $5) RETURNING id"""
FAIL_INTERRUPTED = f"""
UPDATE reconciliations SET status = 'failed', error = 'interrupted', finished_at = now()
WHERE status = 'running' AND pg_try_advisory_lock({RUN_LOCK_CLASS}, (id % 2147483647)::int)
RETURNING id"""
FINISH = """
UPDATE reconciliations SET status = 'done', finished_at = now(), summary = $2,
    since = $3, until = $4
WHERE id = $1"""
FAIL = """
UPDATE reconciliations SET status = 'failed', finished_at = now(), error = $2
WHERE id = $1 AND status = 'running'"""
# Each existing endpoint's newest finished run (a run spans several endpoints):
# what the reconciliation gauges show. Runs are few; this reads them all.
LATEST_PER_ENDPOINT = """
SELECT DISTINCT ON (e.id) e.id AS endpoint_id, r.id AS run_id, r.finished_at, r.summary
FROM reconciliations r
CROSS JOIN LATERAL unnest(r.endpoint_ids) AS u(id)
JOIN endpoints e ON e.id = u.id
WHERE r.status = 'done'
ORDER BY e.id, r.finished_at DESC, r.id DESC"""
# The endpoint's newest finished run whose summary counted delays per bucket (runs
# made before delay_buckets was kept, or without report times, have none), of those
# whose endpoints are all within $2 (a restricted token's; NULL: any).
NEWEST_DELAYS = """
SELECT id, finished_at, summary->'delay_buckets' AS buckets FROM reconciliations
WHERE status = 'done' AND endpoint_ids @> ARRAY[$1::bigint]
    AND ($2::bigint[] IS NULL OR endpoint_ids <@ $2)
    AND jsonb_typeof(summary->'delay_buckets') = 'array'
ORDER BY finished_at DESC, id DESC LIMIT 1"""
PROGRESS = "UPDATE reconciliations SET rows_read = $2, bytes_read = $3 WHERE id = $1"
LAYOUT = "UPDATE reconciliations SET layout = $2 WHERE id = $1"
TIME_RANGE = "SELECT min(time), max(time) FROM reconciliation_rows WHERE run_id = $1"
INSERT_UNPARSED = """
INSERT INTO reconciliation_items (run_id, kind, report)
SELECT $1, 'unparsed_row', jsonb_build_object('line', line, 'reason', reason, 'text', text)
FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(line, reason, text)
ORDER BY line"""


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("invalid_cursor", "cursor: not a cursor this service returned") from None


def run_json(row: asyncpg.Record) -> dict[str, Any]:
    """A run as the API shows it."""
    layout = row["layout"] or {}
    return {
        "id": row["id"],
        "status": row["status"],
        "error": row["error"],
        "created_at": row["created_at"].isoformat(),
        "finished_at": None if row["finished_at"] is None else row["finished_at"].isoformat(),
        "endpoint_ids": list(row["endpoint_ids"]),
        "since": None if row["since"] is None else row["since"].isoformat(),
        "until": None if row["until"] is None else row["until"].isoformat(),
        "options": row["options"],
        "columns": layout.get("columns"),
        "detected_format": layout.get("detected_format"),
        "delimiter": layout.get("delimiter"),
        "progress": {
            "rows_read": row["rows_read"],
            "bytes_read": row["bytes_read"],
            "bytes_total": row["bytes_total"],
        },
        "summary": row["summary"],
    }


async def newest_delays(
    pool: asyncpg.Pool, endpoint_id: int, within: Collection[int] | None = None
) -> dict[str, Any] | None:
    """The delay buckets of the endpoint's newest finished run that has them (the
    run's as a whole, all its endpoints) with the run's id and end; else None. Only
    runs of endpoints ``within`` those given, unless None (as ``runs``)."""
    row = await pool.fetchrow(NEWEST_DELAYS, endpoint_id, None if within is None else list(within))
    if row is None:
        return None
    return {
        "run_id": row["id"],
        "finished_at": row["finished_at"].isoformat(),
        "buckets": row["buckets"],
    }


def item_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "kind": row["kind"],
        "click_id": row["click_id"],
        "event": row["event"],
        "report": row["report"],
        "captured": row["captured"],
        "hit_ids": [str(h) for h in row["hit_ids"]],
    }


class ReconciliationStore:
    """Runs and items for the API, the CLI and the run itself (through ``RunWriter``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def unknown_endpoints(self, endpoint_ids: Sequence[int]) -> list[int]:
        """The ids among ``endpoint_ids`` that name no endpoint, in the order given."""
        found = await self.pool.fetch(
            "SELECT id FROM endpoints WHERE id = ANY($1::bigint[])", list(endpoint_ids)
        )
        known = {r["id"] for r in found}
        return [i for i in endpoint_ids if i not in known]

    async def latest_per_endpoint(self) -> list[asyncpg.Record]:
        """(endpoint_id, run_id, finished_at, summary) of each endpoint's newest
        finished run, endpoints without one left out."""
        return list(await self.pool.fetch(LATEST_PER_ENDPOINT))

    async def get(self, run_id: int) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            f"SELECT {RUN_COLUMNS} FROM reconciliations WHERE id = $1", run_id
        )
        if row is None:
            raise NotFound("reconciliation_not_found", f"no reconciliation with id {run_id}")
        return run_json(row)

    async def runs(
        self,
        *,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
        within: Collection[int] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of runs, newest first, and the next page's cursor (or None); only
        runs of endpoints ``within`` those given, unless None."""
        before = decode_cursor(cursor) if cursor is not None else None
        rows = await self.pool.fetch(
            f"SELECT {RUN_COLUMNS} FROM reconciliations WHERE ($1::bigint IS NULL OR id < $1) "
            "AND ($3::bigint[] IS NULL OR endpoint_ids <@ $3) ORDER BY id DESC LIMIT $2",
            before,
            limit + 1,
            None if within is None else list(within),
        )
        next_cursor = encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
        return [run_json(r) for r in rows[:limit]], next_cursor

    async def items(
        self, run_id: int, *, kind: str | None, limit: int = DEFAULT_PAGE, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of a run's items (of one kind, or all), in the run's order."""
        await self.get(run_id)  # 404 for an unknown run, not an empty page
        after = decode_cursor(cursor) if cursor is not None else 0
        rows = await self.pool.fetch(
            f"SELECT {ITEM_COLUMNS} FROM reconciliation_items WHERE run_id = $1 "
            "AND ($2::text IS NULL OR kind = $2) AND seq > $3 ORDER BY seq LIMIT $4",
            run_id,
            kind,
            after,
            limit + 1,
        )
        next_cursor = encode_cursor(rows[limit - 1]["seq"]) if len(rows) > limit else None
        return [item_json(r) for r in rows[:limit]], next_cursor

    async def stream_items(
        self, run_id: int, *, kind: str | None = None, batch: int = 1000
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a run in order, a batch of rows at a time (exports)."""
        after = 0
        while True:
            rows = await self.pool.fetch(
                f"SELECT {ITEM_COLUMNS} FROM reconciliation_items WHERE run_id = $1 "
                "AND ($2::text IS NULL OR kind = $2) AND seq > $3 ORDER BY seq LIMIT $4",
                run_id,
                kind,
                after,
                batch,
            )
            for row in rows:
                yield item_json(row)
            if len(rows) < batch:
                return
            after = rows[-1]["seq"]

    async def delete(self, run_id: int) -> None:
        """Delete a finished run with its items; a running one is refused (its worker
        would go on writing items for it)."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval(
                "DELETE FROM reconciliations WHERE id = $1 RETURNING status", run_id
            )
            if status is None:
                raise NotFound("reconciliation_not_found", f"no reconciliation with id {run_id}")
            if status == "running":
                raise Conflict(
                    "reconciliation_running", "the reconciliation is still running; try later"
                )
            await conn.execute("DELETE FROM reconciliation_items WHERE run_id = $1", run_id)
            await conn.execute("DELETE FROM reconciliation_rows WHERE run_id = $1", run_id)

    async def fail_interrupted(self) -> list[int]:
        """Mark failed the runs left running by a process that is gone (no one holds
        their lock); the locks this takes to find out are let go at once."""
        async with self.pool.acquire() as conn:
            try:
                rows = await conn.fetch(FAIL_INTERRUPTED)
                await conn.execute(
                    "DELETE FROM reconciliation_rows WHERE run_id = ANY($1::bigint[])",
                    [r["id"] for r in rows],
                )
            finally:
                for row in await conn.fetch(
                    "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 "
                    "AND pid = pg_backend_pid()",
                    RUN_LOCK_CLASS,
                ):
                    await conn.execute(
                        f"SELECT pg_advisory_unlock({RUN_LOCK_CLASS}, $1::int)", int(row["objid"])
                    )
        return [r["id"] for r in rows]


class RunWriter:
    """One run's writes, on the connection the run holds for its whole life."""

    def __init__(self, conn: asyncpg.Connection, run_id: int) -> None:
        self.conn = conn
        self.run_id = run_id

    @classmethod
    async def create(
        cls,
        conn: asyncpg.Connection,
        endpoint_ids: Sequence[int],
        since: datetime | None,
        until: datetime | None,
        options: dict[str, Any],
        bytes_total: int,
    ) -> RunWriter:
        """Insert the run and lock it in one transaction (see the module's docstring)."""
        async with conn.transaction():
            run_id = await conn.fetchval(
                INSERT_RUN, list(endpoint_ids), since, until, options, bytes_total
            )
            await conn.execute(f"SELECT pg_advisory_lock({RUN_LOCK})", run_id)
        return cls(conn, run_id)

    async def set_layout(self, layout: dict[str, Any]) -> None:
        await self.conn.execute(LAYOUT, self.run_id, layout)

    async def add_rows(self, records: list[tuple[Any, ...]]) -> None:
        """COPY report rows ``(line, click_id, event, amount, currency, time)``."""
        await self.conn.copy_records_to_table(
            "reconciliation_rows",
            records=[(self.run_id, *r) for r in records],
            columns=ROW_COLUMNS,
        )

    async def add_unparsed(self, unparsed: list[tuple[int, str, str]]) -> None:
        """Keep the lines the reader could not use, for listing: (line, reason, text)."""
        if unparsed:
            lines, reasons, texts = zip(*unparsed, strict=True)
            await self.conn.execute(
                INSERT_UNPARSED, self.run_id, list(lines), list(reasons), list(texts)
            )

    async def progress(self, rows_read: int, bytes_read: int) -> None:
        await self.conn.execute(PROGRESS, self.run_id, rows_read, bytes_read)

    async def time_range(self) -> tuple[datetime | None, datetime | None]:
        row = await self.conn.fetchrow(TIME_RANGE, self.run_id)
        return row[0], row[1]

    async def match(
        self,
        endpoint_ids: list[int],
        since: datetime | None,
        until: datetime | None,
        *,
        tolerance: Decimal,
        has_event: bool,
        has_time: bool,
    ) -> dict[str, Any]:
        return await reconciliation_match.match(
            self.conn,
            self.run_id,
            endpoint_ids,
            since,
            until,
            tolerance=tolerance,
            has_event=has_event,
            has_time=has_time,
        )

    async def finish(
        self, summary: dict[str, Any], since: datetime | None, until: datetime | None
    ) -> None:
        await self.conn.execute(FINISH, self.run_id, summary, since, until)

    async def fail(self, error: str) -> None:
        await self.conn.execute(FAIL, self.run_id, error[:1000])

    async def close(self) -> None:
        """Drop the scratch rows and let the run's lock go (the run's row stays)."""
        await self.conn.execute("DELETE FROM reconciliation_rows WHERE run_id = $1", self.run_id)
        await self.conn.execute(f"SELECT pg_advisory_unlock({RUN_LOCK})", self.run_id)
