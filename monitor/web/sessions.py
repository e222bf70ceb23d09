"""Web sign-in sessions in PostgreSQL: made at sign-in, read on every page request,
deleted at sign-out.

A row per session, so ending one is a DELETE that every process sees on the next
request (management traffic is light: no cache to invalidate). The cookie carries
a random id and the table only its SHA-256. Each row carries the tag of the admin
token it was made under; a row with another tag is no session, so changing the
admin token signs every browser out. Expired rows and rows of another token are
refused, and pruned whenever someone signs in. A session made with a scoped API
token (``api_token_id``) lives only as long as the token: revoking deletes its rows,
and an expired token's sessions are refused.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

SESSION_ID_BYTES = 32

PRUNE = "DELETE FROM web_sessions WHERE expires_at <= now() OR token_tag <> $1"
INSERT = """
INSERT INTO web_sessions (id_hash, token_tag, expires_at, api_token_id)
VALUES ($1, $2, now() + make_interval(secs => $3), $4)"""
# One round trip reads the session and records that it was seen.
TOUCH = """
UPDATE web_sessions s SET last_seen = now()
WHERE id_hash = $1 AND token_tag = $2 AND expires_at > now()
  AND (api_token_id IS NULL OR EXISTS (
      SELECT 1 FROM api_tokens t WHERE t.id = s.api_token_id AND t.revoked_at IS NULL
      AND (t.expires_at IS NULL OR t.expires_at > now())))
RETURNING id_hash, created_at, expires_at, api_token_id"""
DELETE = "DELETE FROM web_sessions WHERE id_hash = $1"


@dataclass(frozen=True, slots=True)
class StoredSession:
    id_hash: bytes
    created_at: datetime
    expires_at: datetime
    api_token_id: int | None = None


def id_hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).digest()


async def create(
    pool: asyncpg.Pool, token_tag: bytes, lifetime_s: float, api_token_id: int | None = None
) -> str:
    """A new session's id (for the cookie), after pruning dead sessions; made with the
    scoped token ``api_token_id``, or the admin token when None."""
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(PRUNE, token_tag)
        await conn.execute(INSERT, id_hash(session_id), token_tag, float(lifetime_s), api_token_id)
    return session_id


async def touch(pool: asyncpg.Pool, session_id: str, token_tag: bytes) -> StoredSession | None:
    """The live session with this id made under this token, or None."""
    row = await pool.fetchrow(TOUCH, id_hash(session_id), token_tag)
    return None if row is None else StoredSession(**dict(row))


async def end(pool: asyncpg.Pool, session_id: str) -> None:
    await pool.execute(DELETE, id_hash(session_id))
