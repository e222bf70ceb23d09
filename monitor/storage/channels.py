"""Notification channels and their delivery log: every query on ``channels`` and
``channel_deliveries``.

The store keeps configs as checked by ``rules.channels`` (secrets included: the
sender needs them); what leaves for the API or a page goes through ``to_json``,
which masks them. A delivery logged after its channel was deleted leaves nothing
(the insert selects the channel row, which is gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from monitor.model.errors import NotFound
from monitor.rules.channels import ChannelFields, masked, validate_patch

COLUMNS = "id, name, kind, config, created_at, updated_at"
INSERT = f"INSERT INTO channels (name, kind, config) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
SELECT_ALL = f"SELECT {COLUMNS} FROM channels ORDER BY id"
SELECT_BY_ID = f"SELECT {COLUMNS} FROM channels WHERE id = $1"
SELECT_MANY = f"SELECT {COLUMNS} FROM channels WHERE id = ANY($1::bigint[]) ORDER BY id"
SELECT_FOR_UPDATE = f"SELECT {COLUMNS} FROM channels WHERE id = $1 FOR UPDATE"
UPDATE = f"""
UPDATE channels SET name = $2, config = $3, updated_at = now() WHERE id = $1
RETURNING {COLUMNS}"""
DELETE = "DELETE FROM channels WHERE id = $1 RETURNING id"
DELIVERY_COLUMNS = (
    "id, channel_id, message_id, summary, attempt, started_at, ok, status, error, latency_ms"
)
INSERT_DELIVERY = f"""
INSERT INTO channel_deliveries (channel_id, message_id, summary, attempt, started_at, ok,
    status, error, latency_ms)
SELECT id, $2, $3, $4, $5, $6, $7, $8, $9 FROM channels WHERE id = $1
RETURNING {DELIVERY_COLUMNS}"""
SELECT_DELIVERIES = f"""
SELECT {DELIVERY_COLUMNS} FROM channel_deliveries WHERE channel_id = $1
    AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC LIMIT $3"""
# The log keeps each channel's newest KEEP_DELIVERIES attempts: enough to see what
# went wrong lately, bounded however long a far end keeps failing.
KEEP_DELIVERIES = 1000
PRUNE_DELIVERIES = """
DELETE FROM channel_deliveries WHERE channel_id = $1 AND id <= (
    SELECT id FROM channel_deliveries WHERE channel_id = $1
    ORDER BY id DESC OFFSET $2 LIMIT 1)"""
DEFAULT_PAGE = 50
MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class Channel:
    id: int
    name: str
    kind: str
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Channel:
        return cls(
            row["id"], row["name"], row["kind"], row["config"], row["created_at"],
            row["updated_at"],
        )  # fmt: skip

    @property
    def fields(self) -> ChannelFields:
        return ChannelFields(self.name, self.kind, self.config)

    def to_json(self) -> dict[str, Any]:
        """The channel as the API and the pages show it: secrets masked."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "config": masked(self.kind, self.config),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver one notification to one channel, as logged."""

    message_id: str
    summary: str
    attempt: int
    started_at: datetime
    ok: bool
    status: int | None
    error: str | None
    latency_ms: float | None


def delivery_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "channel_id": row["channel_id"],
        "message_id": row["message_id"],
        "summary": row["summary"],
        "attempt": row["attempt"],
        "started_at": row["started_at"].isoformat(),
        "ok": row["ok"],
        "status": row["status"],
        "error": row["error"],
        "latency_ms": row["latency_ms"],
    }


def _not_found(channel_id: int) -> NotFound:
    return NotFound("channel_not_found", f"no channel with id {channel_id}")


class ChannelStore:
    """Channels and their delivery log in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, fields: ChannelFields) -> Channel:
        row = await self.pool.fetchrow(INSERT, fields.name, fields.kind, fields.config)
        return Channel.from_row(row)

    async def all(self) -> list[Channel]:
        return [Channel.from_row(r) for r in await self.pool.fetch(SELECT_ALL)]

    async def get(self, channel_id: int) -> Channel:
        row = await self.pool.fetchrow(SELECT_BY_ID, channel_id)
        if row is None:
            raise _not_found(channel_id)
        return Channel.from_row(row)

    async def get_many(self, channel_ids: list[int]) -> list[Channel]:
        """The channels that still exist among ``channel_ids``."""
        return [Channel.from_row(r) for r in await self.pool.fetch(SELECT_MANY, channel_ids)]

    async def update(self, channel_id: int, doc: Any) -> tuple[Channel, str | None]:
        """The channel changed by ``doc`` (``rules.channels.validate_patch``) and a
        signing secret made for it, if any; under a row lock, so concurrent
        patches of different keys both land."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(SELECT_FOR_UPDATE, channel_id)
            if row is None:
                raise _not_found(channel_id)
            fields = validate_patch(Channel.from_row(row).fields, doc)
            row = await conn.fetchrow(UPDATE, channel_id, fields.name, fields.config)
        return Channel.from_row(row), fields.new_secret

    async def delete(self, channel_id: int) -> None:
        """The channel and its delivery log (``ON DELETE CASCADE``)."""
        if await self.pool.fetchval(DELETE, channel_id) is None:
            raise _not_found(channel_id)

    async def log_delivery(
        self, channel_id: int, delivery: Delivery, keep: int = KEEP_DELIVERIES
    ) -> dict[str, Any] | None:
        """The logged row as JSON (the channel's log pruned to its newest ``keep``);
        None when the channel was deleted meanwhile."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                INSERT_DELIVERY, channel_id, delivery.message_id, delivery.summary,
                delivery.attempt, delivery.started_at, delivery.ok, delivery.status,
                delivery.error, delivery.latency_ms,
            )  # fmt: skip
            if row is not None:
                await conn.execute(PRUNE_DELIVERIES, channel_id, keep)
        return None if row is None else delivery_json(row)

    async def deliveries(
        self, channel_id: int, *, before: int | None = None, limit: int = DEFAULT_PAGE
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first, at most ``limit`` (capped at MAX_PAGE); the cursor of the next page."""
        await self.get(channel_id)  # 404 for an unknown channel, not an empty list
        limit = max(1, min(limit, MAX_PAGE))
        rows = await self.pool.fetch(SELECT_DELIVERIES, channel_id, before, limit + 1)
        items = [delivery_json(r) for r in rows[:limit]]
        return items, (items[-1]["id"] if len(rows) > limit else None)
