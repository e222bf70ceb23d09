"""Scoped API tokens in PostgreSQL (table ``api_tokens``, sql/007_tokens.sql).

A token is ``pbm_`` and 32 random bytes (URL-safe base64); only its SHA-256 is
stored, so it is shown once, when made. Every request looks its token up (management
traffic is light, as for sessions): revoking or expiry takes effect at once in every
process, with no cache to invalidate. The same statement records ``last_used_at``,
at most once a minute per token, so reading does not write on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from monitor.model.errors import NotFound
from monitor.web.scopes import Access

TOKEN_PREFIX = "pbm_"
TOKEN_BYTES = 32
LAST_USED_EVERY_S = 60.0
MAX_NAME_CHARS = 200

COLUMNS = """id, name, scope, endpoint_ids, created_at, expires_at, last_used_at,
revoked_at IS NOT NULL AS revoked"""
INSERT = f"""
INSERT INTO api_tokens (name, scope, endpoint_ids, token_hash, expires_at)
VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"""
SELECT_ALL = f"SELECT {COLUMNS} FROM api_tokens ORDER BY id"
SELECT_LIVE_BY_ID = f"""
SELECT {COLUMNS} FROM api_tokens
WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"""
# One round trip: the live token with this hash, and its last use recorded unless it
# was recorded less than $2 seconds ago (then the UPDATE matches no row: no write).
AUTHENTICATE = f"""
WITH found AS (
    SELECT {COLUMNS}, token_hash FROM api_tokens
    WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
), used AS (
    UPDATE api_tokens SET last_used_at = now()
    WHERE id = (SELECT id FROM found)
      AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))
)
SELECT * FROM found"""
REVOKE = "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1"
END_SESSIONS = "DELETE FROM web_sessions WHERE api_token_id = $1"


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored token, without its secret."""

    id: int
    name: str
    scope: str
    endpoint_ids: tuple[int, ...] | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ApiToken:
        ids = row["endpoint_ids"]
        return cls(
            id=row["id"],
            name=row["name"],
            scope=row["scope"],
            endpoint_ids=None if ids is None else tuple(ids),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            last_used_at=row["last_used_at"],
            revoked=row["revoked"],
        )

    def access(self) -> Access:
        ids = None if self.endpoint_ids is None else frozenset(self.endpoint_ids)
        return Access(self.scope, ids, self.id, self.name)

    def to_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "endpoint_ids": None if self.endpoint_ids is None else list(self.endpoint_ids),
            "created_at": when(self.created_at),
            "expires_at": when(self.expires_at),
            "last_used_at": when(self.last_used_at),
            "revoked": self.revoked,
        }


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def looks_like_token(presented: str) -> bool:
    return presented.startswith(TOKEN_PREFIX)


async def create(
    pool: asyncpg.Pool,
    name: str,
    scope: str,
    endpoint_ids: Sequence[int] | None,
    expires_at: datetime | None,
) -> tuple[ApiToken, str]:
    """A new token and its secret, which is not kept and cannot be shown again."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    ids = None if endpoint_ids is None else sorted(set(endpoint_ids))
    row = await pool.fetchrow(INSERT, name, scope, ids, token_hash(secret), expires_at)
    return ApiToken.from_row(row), secret


async def list_all(pool: asyncpg.Pool) -> list[ApiToken]:
    return [ApiToken.from_row(r) for r in await pool.fetch(SELECT_ALL)]


async def authenticate(pool: asyncpg.Pool, presented: str) -> ApiToken | None:
    """The live (not revoked, not expired) token presented, or None."""
    digest = token_hash(presented)
    row = await pool.fetchrow(AUTHENTICATE, digest, LAST_USED_EVERY_S)
    # The index found the row by its hash; compare again in constant time anyway.
    if row is None or not hmac.compare_digest(row["token_hash"], digest):
        return None
    return ApiToken.from_row(row)


async def live(pool: asyncpg.Pool, token_id: int) -> ApiToken | None:
    """The token behind a signed-in session, if it is still live."""
    row = await pool.fetchrow(SELECT_LIVE_BY_ID, token_id)
    return None if row is None else ApiToken.from_row(row)


async def revoke(pool: asyncpg.Pool, token_id: int) -> None:
    """Revoke the token and end its sessions, in one transaction; NotFound if unknown."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.execute(REVOKE, token_id) == "UPDATE 0":
            raise NotFound("token_not_found", f"no token with id {token_id}")
        await conn.execute(END_SESSIONS, token_id)
