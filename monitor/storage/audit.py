"""The audit log's rows (table ``audit_log``, sql/010_audit.sql): written after each
management action, read newest first, pruned by retention.

jsonb travels as Python objects (the pool's codec, ``db``). The web layer decides
what an entry says (who, what, the redacted before/after);
this module only keeps and pages them. Pages go by id (a bigserial, so newer is
larger), which makes the cursor stable while new entries arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

DEFAULT_PAGE = 50
MAX_PAGE = 500

INSERT = """
INSERT INTO audit_log (actor, actor_token_id, action, endpoint_id, target, before, after,
                       request_id, remote)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"""
# $1: entries older than this id (NULL: from the newest); $2: one endpoint's (NULL: all).
PAGE = """
SELECT id, at, actor, actor_token_id, action, endpoint_id, target, before, after
FROM audit_log
WHERE ($1::bigint IS NULL OR id < $1) AND ($2::bigint IS NULL OR endpoint_id = $2)
ORDER BY id DESC LIMIT $3"""
DELETE_OLDER = "DELETE FROM audit_log WHERE at < $1"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What one management action did, as recorded (secrets already taken out)."""

    actor: str
    action: str
    actor_token_id: int | None = None
    endpoint_id: int | None = None
    target: str | None = None
    before: Any = None
    after: Any = None
    request_id: str | None = None
    remote: str | None = None


def _row(row: asyncpg.Record) -> dict[str, Any]:
    at: datetime = row["at"]
    return {
        "id": row["id"],
        "at": at.isoformat(),
        "actor": row["actor"],
        "actor_token_id": row["actor_token_id"],
        "action": row["action"],
        "endpoint_id": row["endpoint_id"],
        "target": row["target"],
        "before": row["before"],
        "after": row["after"],
    }


class AuditStore:
    """Writes and pages the audit log through the pool it is given."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(self, entry: AuditEntry) -> int:
        ident: int = await self.pool.fetchval(
            INSERT,
            entry.actor,
            entry.actor_token_id,
            entry.action,
            entry.endpoint_id,
            entry.target,
            entry.before,
            entry.after,
            entry.request_id,
            entry.remote,
        )
        return ident

    async def page(
        self,
        *,
        limit: int = DEFAULT_PAGE,
        before_id: int | None = None,
        endpoint_id: int | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` entries older than ``before_id``, newest first, and the id to
        pass as ``before_id`` for the next page (None on the last one)."""
        rows = await self.pool.fetch(PAGE, before_id, endpoint_id, limit + 1)
        entries = [_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        return entries, entries[-1]["id"] if more and entries else None


async def delete_older_than(conn: asyncpg.Connection, cutoff: datetime) -> int:
    """Entries recorded before ``cutoff`` (the server's retention); how many went."""
    status = await conn.execute(DELETE_OLDER, cutoff)
    return int(status.split()[-1])
