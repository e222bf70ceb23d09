"""token -> endpoint in memory, so capture needs no database round trip per hit.

Filled at start and kept fresh by LISTEN on ``ENDPOINTS_CHANNEL``: every change any
process makes to the endpoints table reaches every process's cache.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog

from monitor.model import ids
from monitor.model.errors import NotFound
from monitor.ratelimit import RateLimiter
from monitor.storage.endpoints import ENDPOINTS_CHANNEL, Endpoint, EndpointStore

log = structlog.get_logger(__name__)

MISS_LOOKUPS_PER_S = 50.0


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
        # Deleted endpoints: ids come from a sequence and are never reused, so a row
        # read before its delete (a refresh that lost the race) must not bring it back.
        self._gone: set[int] = set()

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

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint that exists, as this process knows it now (for /metrics)."""
        return list(self._by_token.values())

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
        """Cache ``endpoint`` unless what is cached is newer: refreshes run as tasks, and
        one that read the row before a later change may finish after it."""
        if self._changed_during_reload is not None:
            self._changed_during_reload.add(endpoint.id)
        if endpoint.id in self._gone:
            return
        old_token = self._token_of.get(endpoint.id)
        cached = None if old_token is None else self._by_token.get(old_token)
        if cached is not None and cached.updated_at > endpoint.updated_at:
            return
        if old_token is not None and old_token != endpoint.token:
            self._by_token.pop(old_token, None)
        self._by_token[endpoint.token] = endpoint
        self._token_of[endpoint.id] = endpoint.token

    def forget(self, endpoint_id: int) -> None:
        """The endpoint was deleted: drop it, for good."""
        if self._changed_during_reload is not None:
            self._changed_during_reload.add(endpoint_id)
        self._gone.add(endpoint_id)
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
        endpoints = [e for e in endpoints if e.id not in self._gone]
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
