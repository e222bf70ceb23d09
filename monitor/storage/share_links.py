"""Share links: the rows behind a read-only view of one endpoint's hits (sql/008).

A link's token is 256 random bits, shown once when the link is made; the table keeps
only its SHA-256, so lookups go by hash and nothing timing-sensitive compares the
token itself. Expired and revoked links are indistinguishable to a visitor: both
find no row (revoking deletes it; an expired row is skipped by the lookup).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from monitor.model.errors import NotFound

TOKEN_BYTES = 32

COLUMNS = "id, endpoint_id, created_at, expires_at, last_opened_at"
# INSERT ... SELECT: no row for an endpoint that does not exist (or was just deleted).
INSERT = f"""
INSERT INTO share_links (endpoint_id, token_hash, expires_at)
SELECT id, $2, $3 FROM endpoints WHERE id = $1
RETURNING {COLUMNS}"""
LIST = f"""
SELECT {COLUMNS} FROM share_links WHERE endpoint_id = $1 ORDER BY created_at DESC, id DESC"""
DELETE = "DELETE FROM share_links WHERE endpoint_id = $1 AND id = $2 RETURNING id"
# One round trip finds a live link and records that it was opened.
OPEN = f"""
UPDATE share_links SET last_opened_at = now()
WHERE token_hash = $1 AND expires_at > now()
RETURNING {COLUMNS}"""


@dataclass(frozen=True, slots=True)
class ShareLink:
    id: int
    endpoint_id: int
    created_at: datetime
    expires_at: datetime
    last_opened_at: datetime | None

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The API's view of a link: never its token, which is not kept."""
        opened = self.last_opened_at
        return {
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "last_opened_at": opened and opened.isoformat(),
            "expired": self.expires_at <= now,
        }


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _link(row: asyncpg.Record) -> ShareLink:
    return ShareLink(**dict(row))


class ShareLinkStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, endpoint_id: int, expires_at: datetime) -> tuple[ShareLink, str]:
        """A new link and its token (for the URL: the only time it exists outside the
        caller's hands); NotFound for an unknown endpoint."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        row = await self.pool.fetchrow(INSERT, endpoint_id, token_hash(token), expires_at)
        if row is None:
            raise NotFound("endpoint_not_found", f"no endpoint with id {endpoint_id}")
        return _link(row), token

    async def list(self, endpoint_id: int) -> list[ShareLink]:
        """The endpoint's links, newest first, expired ones included (until revoked)."""
        return [_link(r) for r in await self.pool.fetch(LIST, endpoint_id)]

    async def revoke(self, endpoint_id: int, link_id: int) -> None:
        """Delete the link: the next request with its token gets the not-found page."""
        if await self.pool.fetchval(DELETE, endpoint_id, link_id) is None:
            raise NotFound("share_link_not_found", f"no share link {link_id} on this endpoint")

    async def open(self, token: str) -> ShareLink | None:
        """The live (unexpired, unrevoked) link a token stands for, or None."""
        row = await self.pool.fetchrow(OPEN, token_hash(token))
        return None if row is None else _link(row)
