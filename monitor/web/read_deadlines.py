"""The management listener: aiohttp, with time limits on reading a request.

aiohttp closes idle keep-alive connections, but not a request that arrives slowly:
header lines trickled one every few seconds, or a form body sent a byte at a time,
hold the connection (and a handler waiting on the body) open for as long as the
client likes. ``ManagementSite`` serves aiohttp's protocol wrapped in
``DeadlineProtocol``, which follows request boundaries with its own llhttp parser
(management traffic is light), and a periodic sweeper closes a connection whose
request is overdue: no timer per request or connection.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import cast

import httptools
from aiohttp import web

from monitor.listen import DeadlineSweeper, SocketsSite

SWEEP_EVERY_S = 2.0  # how late past its deadline a slow connection may close


class DeadlineProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the time its current request started.

    ``head_timeout_s`` runs from a request's first byte to the end of its headers,
    ``body_timeout_s`` from there to its last byte. Between requests nothing runs:
    aiohttp's keep-alive timeout covers an idle connection.
    """

    def __init__(
        self,
        inner: asyncio.Protocol,
        registry: set[DeadlineProtocol],
        head_timeout_s: float,
        body_timeout_s: float,
    ) -> None:
        self.inner = inner
        self.registry = registry
        self.head_timeout_s = head_timeout_s
        self.body_timeout_s = body_timeout_s
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.reading_since: float | None = None  # None: no request being read
        self.head_done = False
        self.following = True  # False once the stream is not HTTP/1.1 requests any more

    # ------------------------------------------------------- asyncio.Protocol, passed on

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.registry.add(self)
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def data_received(self, data: bytes) -> None:
        if self.following:
            try:
                self.parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade):
                # aiohttp answers what it refuses; an upgraded connection is no longer
                # request after request. Either way there is nothing left to time.
                self.following = False
                self.reading_since = None
        self.inner.data_received(data)

    # ------------------------------------------------------- llhttp callbacks

    def on_message_begin(self) -> None:
        self.reading_since = time.monotonic()
        self.head_done = False

    def on_headers_complete(self) -> None:
        self.reading_since = time.monotonic()
        self.head_done = True

    def on_message_complete(self) -> None:
        self.reading_since = None

    # ------------------------------------------------------- for the sweeper

    def check_deadlines(self, now: float) -> None:
        since = self.reading_since
        if since is None or self.transport is None:
            return
        limit = self.body_timeout_s if self.head_done else self.head_timeout_s
        if now - since > limit:
            self.reading_since = None
            self.transport.close()


class ManagementSite(SocketsSite):
    """The management listener's sockets with aiohttp's protocol on them, each
    connection timed by ``DeadlineProtocol`` and swept."""

    def __init__(
        self,
        runner: web.AppRunner,
        sockets: list[socket.socket],
        head_timeout_s: float,
        body_timeout_s: float,
    ) -> None:
        super().__init__(runner, sockets)
        assert runner.server is not None  # after runner.setup()
        self.aiohttp_protocol = runner.server
        self.head_timeout_s = head_timeout_s
        self.body_timeout_s = body_timeout_s
        self.connections: set[DeadlineProtocol] = set()
        self._sweeper: DeadlineSweeper | None = None

    def protocol(self) -> DeadlineProtocol:
        return DeadlineProtocol(
            self.aiohttp_protocol(), self.connections, self.head_timeout_s, self.body_timeout_s
        )

    async def start(self) -> None:
        await super().start()
        self._sweeper = DeadlineSweeper(self.connections, SWEEP_EVERY_S)
        self._sweeper.start()

    async def stop(self) -> None:
        """Stop accepting; the runner then closes the open connections (its shutdown)."""
        if self._sweeper is not None:
            await self._sweeper.stop()
        await super().stop()
