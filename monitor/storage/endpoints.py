"""Capture endpoints: the row, and every query on the endpoints table.

Every change is announced with NOTIFY on ``ENDPOINTS_CHANNEL`` in the same transaction,
so the cache of every server process (on any machine, ``endpoint_cache``) picks it up
without polling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from monitor.model import ids
from monitor.model.errors import NotFound
from monitor.model.paths import CAPTURE_PREFIX
from monitor.rules import Rules, SettingsError, presets
from monitor.rules.endpoint_fields import EndpointFields, merge_patch, validate_fields
from monitor.rules.endpoint_settings import EndpointSettings, compile_endpoint_settings
from monitor.storage import charts
from monitor.storage.batch_commit import HITS_CHANNEL
from monitor.storage.lifecycle import FORGET_ENDPOINT_CLICKS

log = structlog.get_logger(__name__)

ENDPOINTS_CHANNEL = "pbm_endpoints"

COLUMNS = """id, token, name, description, response_status, response_body,
    response_content_type, settings, created_at, updated_at"""
INSERT = f"""
INSERT INTO endpoints (token, name, description, response_status, response_body,
    response_content_type, settings)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING {COLUMNS}"""
SELECT_ALL = f"SELECT {COLUMNS} FROM endpoints ORDER BY id"
SELECT_BY_ID = f"SELECT {COLUMNS} FROM endpoints WHERE id = $1"
SELECT_FOR_UPDATE = f"SELECT {COLUMNS} FROM endpoints WHERE id = $1 FOR NO KEY UPDATE"
SELECT_BY_TOKEN = f"SELECT {COLUMNS} FROM endpoints WHERE token = $1"
UPDATE = f"""
UPDATE endpoints SET name = $2, description = $3, response_status = $4, response_body = $5,
    response_content_type = $6, settings = $7, updated_at = now()
WHERE id = $1
RETURNING {COLUMNS}"""
ROTATE_TOKEN = (
    f"UPDATE endpoints SET token = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
)
# Deleting the endpoint row waits for the writer's batches that hold it (FOR KEY
# SHARE, monitor.storage.writer), and batches after it find it gone. So the statements after
# it, each with a fresh snapshot, see every hit that was ever committed for it.
DELETE = "DELETE FROM endpoints WHERE id = $1 RETURNING id"
DELETE_HITS = "DELETE FROM hits WHERE endpoint_id = $1"
# Everything else keyed by the endpoint: the duplicate ledger, the click lifecycle
# and forwarding.
DELETE_REST = (
    "DELETE FROM click_keys WHERE endpoint_id = $1",
    FORGET_ENDPOINT_CLICKS,
    "DELETE FROM forward_outbox WHERE endpoint_id = $1",
    "DELETE FROM forward_attempts WHERE endpoint_id = $1",
)
NOTIFY = f"SELECT pg_notify('{ENDPOINTS_CHANNEL}', $1::text)"
# Clearing keeps the endpoint: FOR UPDATE (not the NO KEY UPDATE of a settings change)
# conflicts with the writer's FOR KEY SHARE, so no batch of its hits commits halfway
# through, and the ledger is cleared together with every hit it could name.
LOCK_FOR_CLEAR = "SELECT id FROM endpoints WHERE id = $1 FOR UPDATE"
NOTIFY_HITS = "SELECT pg_notify($1, $2::text)"


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    token: str
    name: str
    description: str
    response_status: int
    response_body: str
    response_content_type: str
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    compiled: EndpointSettings

    @property
    def rules(self) -> Rules:
        return self.compiled.rules

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Endpoint:
        settings = row["settings"]
        try:
            compiled = compile_endpoint_settings(settings)
        except SettingsError as exc:
            # Stored settings written by an older release: judge nothing rather than fail capture.
            log.warning("endpoint.settings_invalid", endpoint_id=row["id"], error=str(exc))
            compiled = compile_endpoint_settings({})
        return cls(
            id=row["id"],
            token=row["token"],
            name=row["name"],
            description=row["description"],
            response_status=row["response_status"],
            response_body=row["response_body"],
            response_content_type=row["response_content_type"],
            settings=settings,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            compiled=compiled,
        )

    def capture_url(self, base_url: str) -> str:
        return f"{base_url}{CAPTURE_PREFIX}{self.token}"

    def postback_url(self, base_url: str) -> str | None:
        """The capture URL with the preset's postback template, ready to paste; None
        without a preset."""
        preset = self.compiled.document.get("preset")  # validated: a known key
        return None if preset is None else presets.postback_url(preset, self.capture_url(base_url))

    def to_json(self, base_url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "token": self.token,
            "name": self.name,
            "description": self.description,
            "capture_url": self.capture_url(base_url),
            "postback_url": self.postback_url(base_url),
            "settings": self.settings,
            "response": {
                "status": self.response_status,
                "body": self.response_body,
                "content_type": self.response_content_type,
            },
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class EndpointStore:
    """Queries on the endpoints table; every change is announced to all processes.

    Other processes hear of a change through NOTIFY; listeners in this process
    (the capture cache) are told at once after the commit, so a rotated or deleted
    token stops capturing here without waiting for the notification.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.changed: list[Callable[[Endpoint], None]] = []
        self.deleted: list[Callable[[int], None]] = []

    def _announce(self, endpoint: Endpoint) -> Endpoint:
        for listener in self.changed:
            listener(endpoint)
        return endpoint

    async def create(self, fields: EndpointFields) -> Endpoint:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                INSERT,
                ids.capture_token(),
                fields.name,
                fields.description,
                fields.response_status,
                fields.response_body,
                fields.response_content_type,
                fields.settings,
            )
            await conn.execute(NOTIFY, str(row["id"]))
        return self._announce(Endpoint.from_row(row))

    async def list(self) -> list[Endpoint]:
        return [Endpoint.from_row(r) for r in await self.pool.fetch(SELECT_ALL)]

    async def get(self, endpoint_id: int) -> Endpoint:
        row = await self.pool.fetchrow(SELECT_BY_ID, endpoint_id)
        if row is None:
            raise NotFound("endpoint_not_found", f"no endpoint with id {endpoint_id}")
        return Endpoint.from_row(row)

    async def by_token(self, token: str) -> Endpoint | None:
        row = await self.pool.fetchrow(SELECT_BY_TOKEN, token)
        return None if row is None else Endpoint.from_row(row)

    async def update(self, endpoint_id: int, doc: Any, *, merge_settings: bool = False) -> Endpoint:
        """Change the fields ``doc`` names. With ``merge_settings`` (the API's PATCH) its
        ``settings`` is a JSON Merge Patch (RFC 7396) on the stored settings; without
        (the settings form, which sends the whole document) it replaces them.

        The row is read locked (FOR NO KEY UPDATE: the writer's FOR KEY SHARE is not
        blocked), so two concurrent PATCHes each merge onto the other's result."""
        async with self.pool.acquire() as conn, conn.transaction():
            current_row = await conn.fetchrow(SELECT_FOR_UPDATE, endpoint_id)
            if current_row is None:
                raise NotFound("endpoint_not_found", f"no endpoint with id {endpoint_id}")
            current = Endpoint.from_row(current_row)
            if merge_settings and isinstance(doc, dict) and isinstance(doc.get("settings"), dict):
                doc = {**doc, "settings": merge_patch(current.settings, doc["settings"])}
            base = EndpointFields(
                current.name,
                current.description,
                current.response_status,
                current.response_body,
                current.response_content_type,
                current.settings,
            )
            fields = validate_fields(doc, base, require_name=False)
            row = await conn.fetchrow(
                UPDATE,
                endpoint_id,
                fields.name,
                fields.description,
                fields.response_status,
                fields.response_body,
                fields.response_content_type,
                fields.settings,
            )
            if row is None:
                raise NotFound("endpoint_not_found", f"no endpoint with id {endpoint_id}")
            await conn.execute(NOTIFY, str(endpoint_id))
        return self._announce(Endpoint.from_row(row))

    async def rotate_token(self, endpoint_id: int) -> Endpoint:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(ROTATE_TOKEN, endpoint_id, ids.capture_token())
            if row is None:
                raise NotFound("endpoint_not_found", f"no endpoint with id {endpoint_id}")
            await conn.execute(NOTIFY, str(endpoint_id))
        return self._announce(Endpoint.from_row(row))

    async def delete(self, endpoint_id: int) -> int:
        """Delete the endpoint with its hits, duplicate ledger and forwarding rows, hits
        in flight included; returns the hits deleted (in every partition).

        The bulk of the hits goes first, in a statement of its own that locks no
        endpoint row: the endpoint's row lock stalls every batch holding one of its
        hits (and the batches queued behind those), so it is held only while the
        few hits stored meanwhile and the rest of its rows are deleted.
        """
        deleted = await self._delete_hits(endpoint_id, DELETE, (NOTIFY, str(endpoint_id)))
        for listener in self.deleted:
            listener(endpoint_id)
        return deleted

    async def clear(self, endpoint_id: int) -> int:
        """Delete every hit of the endpoint, its duplicate ledger and forwarding rows,
        and keep the endpoint; returns the hits deleted.

        As ``delete``: the bulk goes first without a lock, then the endpoint's row is
        locked against the writer while the hits stored meanwhile and the rest go, so a
        hit committed after the clear is whole (ledger key included)."""
        return await self._delete_hits(
            endpoint_id, LOCK_FOR_CLEAR, (NOTIFY_HITS, HITS_CHANNEL, str(endpoint_id))
        )

    async def _delete_hits(self, endpoint_id: int, lock: str, notify: tuple[str, ...]) -> int:
        """What delete and clear share: sweep the hits without a lock, then in one
        transaction run ``lock`` on the endpoint's row (NotFound when it returns
        nothing), delete the hits stored meanwhile and the rest, and ``notify``."""
        async with self.pool.acquire() as conn:
            swept = await conn.execute(DELETE_HITS, endpoint_id)
            async with conn.transaction():
                if await conn.fetchval(lock, endpoint_id) is None:
                    raise NotFound("endpoint_not_found", f"no endpoint with id {endpoint_id}")
                status = await conn.execute(DELETE_HITS, endpoint_id)
                for statement in DELETE_REST:
                    await conn.execute(statement, endpoint_id)
                await charts.forget_endpoint(conn, endpoint_id)
                await conn.execute(*notify)
        return int(swept.split()[-1]) + int(status.split()[-1])
