"""Capture endpoints: the table's queries, and the in-memory token cache capture uses.

Every change is announced with NOTIFY on ``ENDPOINTS_CHANNEL`` in the same transaction,
so the cache of every server process (on any machine) picks it up without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from monitor.model import ids
from monitor.model.errors import InvalidInput, NotFound
from monitor.model.paths import CAPTURE_PREFIX
from monitor.ratelimit import RateLimiter
from monitor.rules import Rules, SettingsError, presets
from monitor.rules.endpoint_settings import EndpointSettings, compile_endpoint_settings

log = structlog.get_logger(__name__)

ENDPOINTS_CHANNEL = "pbm_endpoints"
MISS_LOOKUPS_PER_S = 50.0
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 5000
MAX_RESPONSE_BODY_CHARS = 64 * 1024

COLUMNS = """id, token, name, description, response_status, response_body,
    response_content_type, settings, created_at, updated_at"""
INSERT = f"""
INSERT INTO endpoints (token, name, description, response_status, response_body,
    response_content_type, settings)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING {COLUMNS}"""
SELECT_ALL = f"SELECT {COLUMNS} FROM endpoints ORDER BY id"
SELECT_BY_ID = f"SELECT {COLUMNS} FROM endpoints WHERE id = $1"
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
# Everything else keyed by the endpoint: the duplicate ledger and forwarding.
DELETE_REST = (
    "DELETE FROM click_keys WHERE endpoint_id = $1",
    "DELETE FROM forward_outbox WHERE endpoint_id = $1",
    "DELETE FROM forward_attempts WHERE endpoint_id = $1",
)
NOTIFY = f"SELECT pg_notify('{ENDPOINTS_CHANNEL}', $1::text)"


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


@dataclass(frozen=True, slots=True)
class EndpointFields:
    """Validated user input for creating or updating an endpoint."""

    name: str
    description: str
    response_status: int
    response_body: str
    response_content_type: str
    settings: dict[str, Any]


DEFAULTS = EndpointFields("", "", 200, "OK", "text/plain; charset=utf-8", {})


def validate_fields(
    doc: Any, base: EndpointFields = DEFAULTS, *, require_name: bool
) -> EndpointFields:
    """Check a JSON document from the API or CLI; raises InvalidInput naming the field."""
    if not isinstance(doc, dict):
        raise InvalidInput("invalid_body", "the request body must be a JSON object")
    unknown = set(doc) - {"name", "description", "settings", "response"}
    if unknown:
        raise InvalidInput("invalid_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    name = doc.get("name", base.name)
    if require_name and "name" not in doc:
        raise InvalidInput("invalid_field", "name: required")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise InvalidInput(
            "invalid_field", f"name: a non-empty string of at most {MAX_NAME_CHARS} characters"
        )
    description = doc.get("description", base.description)
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(
            "invalid_field", f"description: a string of at most {MAX_DESCRIPTION_CHARS} characters"
        )
    _no_nul("name", name)
    _no_nul("description", description)
    settings = doc.get("settings", base.settings)
    try:
        compiled = compile_endpoint_settings(settings)
    except SettingsError as exc:
        raise InvalidInput("invalid_settings", str(exc)) from None
    response = doc.get("response", {})
    if not isinstance(response, dict):
        raise InvalidInput(
            "invalid_field", "response: must be an object with status, body, content_type"
        )
    unknown = set(response) - {"status", "body", "content_type"}
    if unknown:
        raise InvalidInput(
            "invalid_field", f"response: unknown field(s): {', '.join(sorted(unknown))}"
        )
    status = response.get("status", base.response_status)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise InvalidInput(
            "invalid_field", "response.status: an integer HTTP status from 200 to 599"
        )
    body = response.get("body", base.response_body)
    if not isinstance(body, str) or len(body) > MAX_RESPONSE_BODY_CHARS:
        raise InvalidInput(
            "invalid_field",
            f"response.body: a string of at most {MAX_RESPONSE_BODY_CHARS} characters",
        )
    content_type = response.get("content_type", base.response_content_type)
    if (
        not isinstance(content_type, str)
        or not content_type.strip()
        or len(content_type) > 200
        or any(c in content_type for c in "\r\n\x00")
    ):
        raise InvalidInput(
            "invalid_field", "response.content_type: a media type such as text/plain"
        )
    _no_nul("response.body", body)
    _no_nul("response.content_type", content_type)
    return EndpointFields(
        name.strip(), description, status, body, content_type.strip(), compiled.document
    )


def _no_nul(name: str, value: str) -> None:
    if "\x00" in value:
        raise InvalidInput("invalid_field", f"{name}: must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("invalid_field", f"{name}: must be valid Unicode text") from None


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

    async def update(self, endpoint_id: int, doc: Any) -> Endpoint:
        current = await self.get(endpoint_id)
        base = EndpointFields(
            current.name,
            current.description,
            current.response_status,
            current.response_body,
            current.response_content_type,
            current.settings,
        )
        fields = validate_fields(doc, base, require_name=False)
        async with self.pool.acquire() as conn, conn.transaction():
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
        async with self.pool.acquire() as conn:
            swept = await conn.execute(DELETE_HITS, endpoint_id)
            async with conn.transaction():
                if await conn.fetchval(DELETE, endpoint_id) is None:
                    raise NotFound("endpoint_not_found", f"no endpoint with id {endpoint_id}")
                status = await conn.execute(DELETE_HITS, endpoint_id)
                for statement in DELETE_REST:
                    await conn.execute(statement, endpoint_id)
                await conn.execute(NOTIFY, str(endpoint_id))
        for listener in self.deleted:
            listener(endpoint_id)
        return int(swept.split()[-1]) + int(status.split()[-1])


class EndpointCache:
    """token -> Endpoint in memory, so capture needs no database round trip.

    Filled at start, kept fresh by LISTEN on ENDPOINTS_CHANNEL. A token missing from
    the cache is looked up once in the database (the NOTIFY may still be in flight).
    """

    def __init__(self, store: EndpointStore, dsn: str) -> None:
        self.store = store
        self.dsn = dsn
        store.changed.append(self.put)
        store.deleted.append(self.forget)
        self._by_token: dict[str, Endpoint] = {}
        self._miss_lookups = RateLimiter()
        self._token_of: dict[int, str] = {}
        # Ids changed while reload_all reads its snapshot: the snapshot may predate
        # the change, so they are read again after it (None: no reload running).
        self._changed_during_reload: set[int] | None = None

    def get(self, token: str) -> Endpoint | None:
        return self._by_token.get(token)

    async def lookup(self, token: str) -> Endpoint | None:
        endpoint = self._by_token.get(token)
        if endpoint is None:
            # A miss asks the database only for a token of the shape we issue, and
            # only so often: a flood of made-up tokens must not become a flood of
            # queries. A real new endpoint reaches the cache through NOTIFY anyway.
            if not ids.looks_like_capture_token(token):
                return None
            if self._miss_lookups.allow(0, MISS_LOOKUPS_PER_S) > 0:
                return None
            endpoint = await self.store.by_token(token)
            if endpoint is not None:
                self.put(endpoint)
        return endpoint

    def by_id(self, endpoint_id: int) -> Endpoint | None:
        token = self._token_of.get(endpoint_id)
        return None if token is None else self._by_token.get(token)

    async def lookup_id(self, endpoint_id: int) -> Endpoint | None:
        """By id, from the cache or else the database (None if it does not exist)."""
        endpoint = self.by_id(endpoint_id)
        if endpoint is None:
            try:
                endpoint = await self.store.get(endpoint_id)
            except NotFound:
                return None
            self.put(endpoint)
        return endpoint

    def put(self, endpoint: Endpoint) -> None:
        if self._changed_during_reload is not None:
            self._changed_during_reload.add(endpoint.id)
        old_token = self._token_of.get(endpoint.id)
        if old_token is not None and old_token != endpoint.token:
            self._by_token.pop(old_token, None)
        self._by_token[endpoint.token] = endpoint
        self._token_of[endpoint.id] = endpoint.token

    def forget(self, endpoint_id: int) -> None:
        if self._changed_during_reload is not None:
            self._changed_during_reload.add(endpoint_id)
        token = self._token_of.pop(endpoint_id, None)
        if token is not None:
            self._by_token.pop(token, None)

    async def reload_all(self) -> None:
        """Replace the cache with a fresh snapshot, without losing what changed meanwhile.

        An endpoint created, changed or deleted while the snapshot is read (its
        NOTIFY already handled, or a miss looked up) would otherwise be undone by
        the older snapshot, and its postbacks would get 404s until its next change.
        """
        changed: set[int] = set()
        self._changed_during_reload = changed
        try:
            endpoints = await self.store.list()
        finally:
            self._changed_during_reload = None
        self._by_token = {e.token: e for e in endpoints}
        self._token_of = {e.id: e.token for e in endpoints}
        for endpoint_id in changed:
            await self.refresh(endpoint_id)

    async def refresh(self, endpoint_id: int) -> None:
        try:
            self.put(await self.store.get(endpoint_id))
        except NotFound:
            self.forget(endpoint_id)

    async def listen_forever(self, retry_s: float = 1.0) -> None:
        """Hold a LISTEN connection; after any loss, reconnect and reload everything."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())

                def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                    with contextlib.suppress(ValueError):
                        task = asyncio.ensure_future(self.refresh(int(payload)))
                        task.add_done_callback(_log_failure)

                await conn.add_listener(ENDPOINTS_CHANNEL, on_notify)
                await self.reload_all()
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("endpoint_cache.listen_failed", error=str(exc))
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(retry_s)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("endpoint_cache.refresh_failed", error=str(task.exception()))
