"""Live updates: one LISTEN connection per process fans hit notices out to viewers.

The writer sends ``NOTIFY pbm_hits, '<endpoint ids>'`` after each committed batch,
from whichever process captured the hits, so every process's viewers hear about
every hit. A subscriber is only told *that* its endpoint has new hits (a flag, not
a queue): a burst of a thousand hits costs one wake-up, and the page then fetches
the new rows with the same query as the page itself. After a lost connection the
hub reconnects and wakes every subscriber, since notices may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from monitor.storage.batch_commit import HITS_CHANNEL
from monitor.storage.db import connect
from monitor.web.appkeys import DATABASE_URL

log = structlog.get_logger(__name__)

RECONNECT_S = 1.0


class Subscription:
    """One viewer of one endpoint: ``wait`` returns True when there is news."""

    def __init__(self, hub: LiveHub, endpoint_id: int) -> None:
        self.hub = hub
        self.endpoint_id = endpoint_id
        self._event = asyncio.Event()

    def poke(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float) -> bool:
        """True on news, False on timeout; raises ``LiveClosed`` when the hub stops."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._event.wait()
        if self.hub.closed:
            raise LiveClosed
        news = self._event.is_set()
        self._event.clear()
        return news

    def close(self) -> None:
        self.hub.unsubscribe(self)


class LiveClosed(Exception):
    pass


class LiveHub:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.closed = False
        self._subscribers: dict[int, set[Subscription]] = {}

    def subscribe(self, endpoint_id: int) -> Subscription:
        sub = Subscription(self, endpoint_id)
        self._subscribers.setdefault(endpoint_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.endpoint_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.endpoint_id]

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def publish(self, endpoint_ids: list[int]) -> None:
        for endpoint_id in endpoint_ids:
            for sub in self._subscribers.get(endpoint_id, ()):
                sub.poke()

    def poke_all(self) -> None:
        for subs in self._subscribers.values():
            for sub in subs:
                sub.poke()

    def close(self) -> None:
        """End every stream (server shutdown): waiting subscribers raise LiveClosed."""
        self.closed = True
        self.poke_all()

    def on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        ids = []
        for part in payload.split(","):
            with contextlib.suppress(ValueError):
                ids.append(int(part))
        self.publish(ids)

    async def listen_forever(self) -> None:
        first = True
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self.dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(HITS_CHANNEL, self.on_notify)
                if not first:
                    log.info("live.reconnected")
                    self.poke_all()
                first = False
                await lost.wait()
                log.warning("live.connection_lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live.listen_failed", error=str(exc))
                first = False
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(RECONNECT_S)


# The process's hub; kept beside LiveHub rather than in appkeys, which imports no
# web component.
LIVE: web.AppKey[LiveHub] = web.AppKey("live")


async def live_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = LiveHub(app[DATABASE_URL])
    app[LIVE] = hub
    listener = asyncio.create_task(hub.listen_forever(), name="live-listener")
    try:
        yield
    finally:
        hub.close()
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end open event streams so the server need not wait for them."""
    if LIVE in app:
        app[LIVE].close()
