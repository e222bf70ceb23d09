"""Forward attempts: sending one request, logging what it came to, reading the log.

Every attempt, from the outbox worker or a replay asked for by a user, is one row
of ``forward_attempts`` written only while its endpoint and its hit exist (both rows
are key-share locked, as the writer locks the endpoint), so an attempt that ends
after the endpoint's or the hit's delete leaves nothing behind: the delete either
waits for the insert and removes its row, or the insert finds nothing to log for.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg

from monitor.forwarding.outbound import OutboundClient, OutboundError, OutboundRefused
from monitor.forwarding.outbox import SETTLE_REPLAYED
from monitor.model.errors import NotFound
from monitor.rules.forwards import ForwardRequest
from monitor.storage.hits import find_hit_key

RESPONSE_HEAD_BYTES = 1024
MAX_ERROR_CHARS = 500

# A hit by its whole key (endpoint_id, id, received_at); a hit named by its id alone
# is first found by storage.hits.find_hit_key.
LOAD_HIT = """
SELECT id, endpoint_id, received_at, method, path, raw_query, params, body_params, headers,
    content_type, body, body_size, remote_ip, flags
FROM hits WHERE endpoint_id = $1 AND id = $2 AND received_at = $3"""
ATTEMPT_COLUMNS = """id, endpoint_id, hit_id, kind, attempt, started_at, method, url, status,
    latency_ms, response_head, error, flags"""
INSERT_ATTEMPT = f"""
INSERT INTO forward_attempts (endpoint_id, hit_id, kind, attempt, started_at, method, url,
    status, latency_ms, response_head, error, flags)
SELECT $1, $2, $3,
    coalesce($4, (SELECT count(*) + 1 FROM forward_attempts
              WHERE endpoint_id = $1 AND hit_id = $2 AND kind = $3)),
    $5::timestamptz, $6::text, $7::text, $8::integer, $9::float8, $10::text, $11::text,
    $12::jsonb
FROM endpoints e JOIN hits h ON h.endpoint_id = e.id AND h.id = $2 AND h.received_at = $13
WHERE e.id = $1 FOR KEY SHARE
RETURNING {ATTEMPT_COLUMNS}"""
SELECT_ATTEMPTS = f"""
SELECT {ATTEMPT_COLUMNS} FROM forward_attempts WHERE endpoint_id = $1 AND hit_id = $2
ORDER BY started_at, id"""
SELECT_OUTBOX = """
SELECT state, attempts, next_attempt_at, created_at, updated_at
FROM forward_outbox WHERE endpoint_id = $1 AND hit_id = $2"""


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
    """The attempt's row; None when the endpoint or the hit was deleted meanwhile."""
    return await conn.fetchrow(
        INSERT_ATTEMPT, hit["endpoint_id"], hit["id"], kind, attempt, result.started_at,
        req.method, req.url, result.status, result.latency_ms, result.response_head,
        result.error, req.flags, hit["received_at"],
    )  # fmt: skip


async def attempt_history(pool: asyncpg.Pool, hit_id: uuid.UUID) -> dict[str, Any]:
    """The outbox state of one hit and every attempt made for it, oldest first."""
    key = await find_hit_key(pool, hit_id)
    if key is None:
        raise NotFound("hit_not_found", f"no hit with id {hit_id}")
    outbox = await pool.fetchrow(SELECT_OUTBOX, key[0], hit_id)
    rows = await pool.fetch(SELECT_ATTEMPTS, key[0], hit_id)
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


async def load_stored_hit(pool: asyncpg.Pool, hit_id: uuid.UUID) -> Any:
    key = await find_hit_key(pool, hit_id)
    hit = None if key is None else await pool.fetchrow(LOAD_HIT, key[0], hit_id, key[1])
    if hit is None:
        raise NotFound("hit_not_found", f"no hit with id {hit_id}")
    return hit


async def replay(
    pool: asyncpg.Pool,
    client: OutboundClient,
    hit: Any,
    req: ForwardRequest,
    *,
    to_target: bool = False,
) -> dict[str, Any]:
    """Send a stored hit now, outside the outbox; logged as a ``replay`` attempt.

    ``to_target``: the request goes to the endpoint's own forward target, so a success
    settles a failed or cancelled forward as delivered (``SETTLE_REPLAYED``): the hit
    leaves the failed list the operator is working through."""
    result = await send(client, req)
    async with pool.acquire() as conn, conn.transaction():
        row = await log_attempt(conn, hit, "replay", None, req, result)
        if row is not None and to_target and result.ok:
            await conn.execute(SETTLE_REPLAYED, hit["endpoint_id"], hit["id"])
    if row is None:
        raise NotFound("hit_not_found", f"hit {hit['id']} was deleted while it was replayed")
    return attempt_json(row)
