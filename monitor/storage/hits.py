"""Reading hits: newest-first lists with keyset cursors and filters, and single hits.

Lists page by (received_at, id) so a cursor stays valid while new hits arrive.
The filter clauses are fixed SQL fragments chosen by which filters are present;
values always travel as parameters.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from monitor.model.errors import InvalidInput, NotFound
from monitor.model.hit import FORWARD_STATE_FILTERS, row_to_json
from monitor.model.ids import uuid7_time
from monitor.rules.charts import HOUR, floor_time
from monitor.storage import charts, hit_stats
from monitor.storage.batch_commit import HITS_CHANNEL
from monitor.storage.ledger import FORGET_HIT_KEY
from monitor.storage.lifecycle import forget_hit

# A hit's forward state: its outbox row, found by the outbox's primary key
# (endpoint_id, hit_id), one index probe per listed hit; NULL when never queued. The
# filter on failed or cancelled starts from those rows (forward_outbox_gave_up,
# sql/004) and finds each hit by its id; "none" is an anti-join, a scan of the range.
OUTBOX_ROW = "o.endpoint_id = hits.endpoint_id AND o.hit_id = hits.id"
FORWARD_STATE = f"(SELECT o.state FROM forward_outbox o WHERE {OUTBOX_ROW}) AS forward_state"
LIST_COLUMNS = f"""id, endpoint_id, received_at, method, path, raw_query, params, body_params,
    headers, content_type, body_size, remote_ip, user_agent, click_id, event, status, flags,
    {FORWARD_STATE}"""
# A hit named by its id alone (the hit page, GET and DELETE /api/hits/{id}, its
# forwards) is found by these two, the only reads of hits not narrowed to an endpoint
# (docs/scaling.md: under Citus they ask every shard, and everything after them is
# routed to one). The id's millisecond is received_at, so the first prunes to one
# partition; ids that are not UUIDv7 (made elsewhere) take the second.
HIT_KEY = """
SELECT endpoint_id, received_at FROM hits
WHERE id = $1 AND received_at >= $2 AND received_at < $3"""
HIT_KEY_ANY_TIME = "SELECT endpoint_id, received_at FROM hits WHERE id = $1"
# A hit by its whole key (endpoint_id, id, received_at): one probe of the primary key.
ONE_HIT = f"""
SELECT {LIST_COLUMNS}, body FROM hits
WHERE endpoint_id = $1 AND id = $2 AND received_at = $3"""
# The alert evaluator's figures: per endpoint ($1) and its window in seconds ($2)
# before $3, each lateral subquery one endpoint's range of hits_endpoint_newest; given
# up = outbox rows that turned failed in the window (forward_outbox_gave_up, sql/004).
# Test postbacks (is_test) are left out, as from the stats and the metrics: a ping
# neither ends a silence nor counts as a flagged hit.
ALERT_FIGURES = """
SELECT e.id AS endpoint_id, w.hits, w.flagged, w.duplicates, g.given_up,
    l.received_at AS last_hit_at
FROM unnest($1::bigint[], $2::float8[]) AS e(id, window_s)
CROSS JOIN LATERAL (
    SELECT count(*) AS hits, count(*) FILTER (WHERE flagged) AS flagged,
        count(*) FILTER (WHERE flags @> '[{"flag": "duplicate_click_id"}]') AS duplicates
    FROM hits WHERE endpoint_id = e.id AND NOT is_test
        AND received_at > $3::timestamptz - make_interval(secs => e.window_s)
) w
CROSS JOIN LATERAL (
    SELECT count(*) AS given_up FROM forward_outbox
    WHERE endpoint_id = e.id AND state = 'failed'
        AND updated_at > $3::timestamptz - make_interval(secs => e.window_s)
) g
LEFT JOIN LATERAL (
    SELECT received_at FROM hits WHERE endpoint_id = e.id AND NOT is_test
    ORDER BY received_at DESC, id DESC LIMIT 1
) l ON true"""

# The hit page's neighbours in the list's order (newest first): each subquery is one
# probe of hits_endpoint_newest per partition.
NEIGHBOURS = """
SELECT
    (SELECT id FROM hits WHERE endpoint_id = $1 AND (received_at, id) > ($2, $3)
     ORDER BY received_at, id LIMIT 1) AS newer,
    (SELECT id FROM hits WHERE endpoint_id = $1 AND (received_at, id) < ($2, $3)
     ORDER BY received_at DESC, id DESC LIMIT 1) AS older"""
# One hit by its whole key (found by HIT_KEY), with what it left elsewhere: its
# forwarding rows and, when it was the first of its click id, its ledger key
# (ledger.FORGET_HIT_KEY); when it had a status, its click's lifecycle is rebuilt
# from the hits left (lifecycle.forget_hit).
DELETE_HIT = """
DELETE FROM hits WHERE endpoint_id = $1 AND id = $2 AND received_at = $3
RETURNING click_id, status"""
DELETE_HIT_REST = (
    "DELETE FROM forward_outbox WHERE endpoint_id = $1 AND hit_id = $2",
    "DELETE FROM forward_attempts WHERE endpoint_id = $1 AND hit_id = $2",
)
# Live pages refresh their summary; the rows they already show stay until reloaded.
NOTIFY_HITS = "SELECT pg_notify($1, $2::text)"

MAX_PAGE = 500
DEFAULT_PAGE = 50
# The longest ``method`` and ``search`` (the API's ``q``) filter a caller may give.
MAX_METHOD_CHARS = 20
MAX_SEARCH_CHARS = 200


@dataclass(frozen=True, slots=True)
class HitFilter:
    """What a list of hits is narrowed to; every field optional."""

    flags: tuple[str, ...] = ()
    flagged: bool | None = None
    click_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    method: str | None = None
    # Case-insensitive substring of the click id, event or any param name or value.
    search: str | None = None
    # Only hits newer than this (received_at, id): what a live view has not shown yet.
    after: tuple[datetime, uuid.UUID] | None = None
    # A state of the hit's outbox row (FORWARD_STATES), or "none": never queued.
    forward_state: str | None = None
    # True: only test postbacks (flag test_traffic, hits.is_test); False: none of them.
    test: bool | None = None

    def __post_init__(self) -> None:
        if self.forward_state is not None and self.forward_state not in FORWARD_STATE_FILTERS:
            raise InvalidInput(
                "invalid_query",
                f"forward_state: one of {', '.join(FORWARD_STATE_FILTERS)}",
            )


def hit_json(row: Any, *, with_body: bool = True) -> dict[str, Any]:
    """A hits row read with ``LIST_COLUMNS`` as the API's hit: ``row_to_json`` and the
    hit's forward state (None when it was never queued for forwarding)."""
    return {**row_to_json(row, with_body=with_body), "forward_state": row["forward_state"]}


def encode_cursor(received_at: datetime, hit_id: uuid.UUID) -> str:
    raw = f"{received_at.isoformat()}|{hit_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, hit_id = raw.partition("|")
        return datetime.fromisoformat(when), uuid.UUID(hit_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("invalid_cursor", "cursor: not a cursor this service returned") from None


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_query(
    endpoint_id: int,
    flt: HitFilter,
    cursor: str | None,
    limit: int,
    columns: str = LIST_COLUMNS,
) -> tuple[str, list[Any]]:
    clauses = ["endpoint_id = $1"]
    args: list[Any] = [endpoint_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if cursor is not None:
        when, hit_id = decode_cursor(cursor)
        clauses.append(f"(received_at, id) < ({arg(when)}, {arg(hit_id)})")
    if flt.flagged is not None:
        clauses.append("flagged" if flt.flagged else "NOT flagged")
    if flt.test is not None:
        clauses.append("is_test" if flt.test else "NOT is_test")
    if flt.flags:
        clauses.append(
            "flagged AND EXISTS (SELECT 1 FROM jsonb_array_elements(flags) f "
            f"WHERE f->>'flag' = ANY({arg(list(flt.flags))}::text[]))"
        )
    if flt.click_id is not None:
        clauses.append(f"click_id = {arg(flt.click_id)}")
    if flt.since is not None:
        clauses.append(f"received_at >= {arg(flt.since)}")
    if flt.until is not None:
        clauses.append(f"received_at < {arg(flt.until)}")
    if flt.method is not None:
        clauses.append(f"method = {arg(flt.method.upper())}")
    if flt.search:
        pattern = arg("%" + like_escape(flt.search) + "%")
        clauses.append(
            f"(click_id ILIKE {pattern} OR event ILIKE {pattern} "
            f"OR params::text ILIKE {pattern} OR body_params::text ILIKE {pattern})"
        )
    if flt.after is not None:
        clauses.append(f"(received_at, id) > ({arg(flt.after[0])}, {arg(flt.after[1])})")
    if flt.forward_state == "none":
        clauses.append(f"NOT EXISTS (SELECT 1 FROM forward_outbox o WHERE {OUTBOX_ROW})")
    elif flt.forward_state is not None:
        clauses.append(
            f"EXISTS (SELECT 1 FROM forward_outbox o WHERE {OUTBOX_ROW} "
            f"AND o.state = {arg(flt.forward_state)})"
        )
    sql = (
        f"SELECT {columns} FROM hits WHERE {' AND '.join(clauses)} "
        f"ORDER BY received_at DESC, id DESC LIMIT {arg(limit + 1)}"
    )
    return sql, args


async def find_hit_key(
    conn: asyncpg.Pool | asyncpg.Connection, hit_id: uuid.UUID
) -> tuple[int, datetime] | None:
    """The endpoint and capture time of the hit with this id (None: no such hit): the
    rest of its key, so that every later statement about it names its endpoint."""
    row = None
    if hit_id.version == 7:
        # received_at and the id's timestamp are the same millisecond: prune partitions.
        when = uuid7_time(hit_id)
        row = await conn.fetchrow(HIT_KEY, hit_id, when, when + timedelta(milliseconds=1))
    if row is None:
        row = await conn.fetchrow(HIT_KEY_ANY_TIME, hit_id)
    return None if row is None else (int(row["endpoint_id"]), row["received_at"])


class HitStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def list(
        self,
        endpoint_id: int,
        flt: HitFilter | None = None,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of hits, newest first, and the cursor of the next page (or None)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput("invalid_limit", f"limit: between 1 and {MAX_PAGE}")
        sql, args = list_query(endpoint_id, flt or HitFilter(), cursor, limit)
        rows = await self.pool.fetch(sql, *args)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1]["received_at"], rows[-1]["id"])
        return [hit_json(r, with_body=False) for r in rows], next_cursor

    async def get(self, hit_id: uuid.UUID) -> dict[str, Any]:
        key = await find_hit_key(self.pool, hit_id)
        # A hit deleted between the two reads is as gone as one never stored.
        row = None if key is None else await self.pool.fetchrow(ONE_HIT, key[0], hit_id, key[1])
        if row is None:
            raise NotFound("hit_not_found", f"no hit with id {hit_id}")
        return hit_json(row)

    async def matching_ids(
        self, endpoint_id: int, flt: HitFilter, limit: int
    ) -> Sequence[tuple[uuid.UUID, datetime]]:
        """The (id, received_at) of up to ``limit`` hits matching ``flt``, newest first:
        the set a bulk replay works through."""
        sql, args = list_query(endpoint_id, flt, None, limit, columns="id, received_at")
        rows = await self.pool.fetch(sql, *args)
        return [(r["id"], r["received_at"]) for r in rows[:limit]]

    async def count(self, endpoint_id: int, flt: HitFilter, at_most: int) -> int:
        """How many hits match ``flt``, counted up to ``at_most + 1`` (more than
        ``at_most`` says "more than"; the count never walks a whole endpoint)."""
        sql, args = list_query(endpoint_id, flt, None, at_most, columns="1")
        return int(await self.pool.fetchval(f"SELECT count(*) FROM ({sql}) AS m", *args))

    async def neighbours(self, hit: dict[str, Any]) -> dict[str, str | None]:
        """The ids of the hits just newer and just older than ``hit`` in its endpoint's
        list (newest first, by (received_at, id)); None at either end."""
        row = await self.pool.fetchrow(
            NEIGHBOURS,
            hit["endpoint_id"],
            datetime.fromisoformat(hit["received_at"]),
            uuid.UUID(hit["id"]),
        )
        return {k: None if row[k] is None else str(row[k]) for k in ("newer", "older")}

    async def delete(self, hit_id: uuid.UUID) -> int:
        """Delete one hit with its forwarding rows and the ledger key it was the first
        of (a later hit with its click id then counts as an original); returns the
        hit's endpoint id."""
        async with self.pool.acquire() as conn, conn.transaction():
            key = await find_hit_key(conn, hit_id)
            row = None if key is None else await conn.fetchrow(DELETE_HIT, key[0], hit_id, key[1])
            if key is None or row is None:
                raise NotFound("hit_not_found", f"no hit with id {hit_id}")
            endpoint_id = key[0]
            if row["click_id"] is not None:
                await conn.execute(FORGET_HIT_KEY, endpoint_id, row["click_id"], hit_id)
                if row["status"] is not None:
                    await forget_hit(conn, endpoint_id, row["click_id"])
            for statement in DELETE_HIT_REST:
                await conn.execute(statement, endpoint_id, hit_id)
            await charts.forget_hours(conn, [(endpoint_id, floor_time(key[1], HOUR))])
            await conn.execute(NOTIFY_HITS, HITS_CHANNEL, str(endpoint_id))
        return endpoint_id

    async def alert_figures(
        self, endpoint_ids: Sequence[int], windows_s: Sequence[float], now: datetime
    ) -> dict[int, dict[str, Any]]:
        """Per endpoint, over its own window before ``now``: hits, flagged hits,
        duplicates and forwards given up, and its newest hit of all time. One query
        for every alerting endpoint (the alert evaluator's figures)."""
        rows = await self.pool.fetch(ALERT_FIGURES, list(endpoint_ids), list(windows_s), now)
        return {r["endpoint_id"]: {k: v for k, v in r.items() if k != "endpoint_id"} for r in rows}

    async def summaries(
        self, endpoint_ids: Sequence[int], now: datetime | None = None
    ) -> dict[int, dict[str, Any]]:
        """Per endpoint: hits, flagged and test hits in the last day, and when the newest
        hit arrived (None if never), for the whole endpoints page (``hit_stats``)."""
        return await hit_stats.summaries(self.pool, endpoint_ids, now or datetime.now(UTC))

    async def stats(
        self, endpoint_id: int, window: str, now: datetime | None = None
    ) -> dict[str, Any]:
        """Counts over the last ``window`` (a key of STATS_WINDOWS) and the newest hit."""
        return await hit_stats.stats(self.pool, endpoint_id, window, now or datetime.now(UTC))
