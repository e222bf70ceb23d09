"""Binding the two listeners, once for the whole service.

Capture (postbacks, probes) and management (web views, API, metrics) each have
their own address, so an operator can expose capture to the internet and keep
management on localhost or a VPN. Both are bound before anything else starts: a
busy port on either is one clear line, and nothing (database, workers) is left
half started. Workers of ``serve --workers N`` inherit both from their parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from monitor.config import Config

BACKLOG = 128  # connections waiting to be accepted, as aiohttp's default
CAPTURE = "capture"
MANAGEMENT = "management"


class ListenError(Exception):
    """An address cannot be listened on: in use, not this host's, unknown."""


@dataclass(frozen=True)
class Listeners:
    """The listening sockets of both listeners (one per address family of a host)."""

    capture: list[socket.socket]
    management: list[socket.socket]

    def fds(self) -> list[int]:
        return [sock.fileno() for sock in self.capture + self.management]

    def as_args(self) -> list[str]:
        """``--listen-fd`` arguments for a worker that inherits these sockets."""
        return [f"--listen-fd={CAPTURE}:{sock.fileno()}" for sock in self.capture] + [
            f"--listen-fd={MANAGEMENT}:{sock.fileno()}" for sock in self.management
        ]

    @classmethod
    def inherited(cls, values: Sequence[str]) -> Listeners:
        """The sockets named by ``--listen-fd ROLE:FD`` arguments (from ``as_args``)."""
        found: dict[str, list[socket.socket]] = {CAPTURE: [], MANAGEMENT: []}
        for value in values:
            role, _, fd = value.partition(":")
            found[role].append(socket.socket(fileno=int(fd)))
        return cls(found[CAPTURE], found[MANAGEMENT])


def bind(config: Config) -> Listeners:
    """Both listeners' sockets; raises ``ListenError`` naming the one that failed."""
    management = listen(config.host, config.port, role=MANAGEMENT)
    try:
        capture = listen(config.capture_host, config.capture_port, role=CAPTURE)
    except ListenError:
        for sock in management:
            sock.close()
        raise
    return Listeners(capture, management)


def listen(host: str, port: int, *, role: str) -> list[socket.socket]:
    """Bind ``host:port`` without SO_REUSEPORT: a second program on the same port
    (another ``serve``) fails to start instead of silently taking part of the traffic."""
    shown = f"[{host}]" if ":" in host else host or "*"
    sockets: list[socket.socket] = []
    try:
        found = socket.getaddrinfo(
            host or None,  # "" is every address, as in asyncio
            port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )
        for family, kind, proto, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio
            sock.bind(address)
            sock.listen(BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ListenError(
            f"cannot listen on {shown}:{port} ({role}): {exc.strerror or exc}"
        ) from None
    return sockets


class TimedConnection(Protocol):
    def check_deadlines(self, now: float) -> None:
        """Close (or answer and close) a connection whose request is overdue."""


class DeadlineSweeper:
    """Checks the read deadlines of a listener's open connections every ``every_s``.

    One task per listener instead of a timer per request: the hot path only notes
    when a request began, and a slow connection closes at most ``every_s`` late.
    """

    def __init__(self, connections: Collection[TimedConnection], every_s: float) -> None:
        self.connections = connections
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="deadlines")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            now = time.monotonic()
            for connection in list(self.connections):
                connection.check_deadlines(now)


class SocketsSite(web.BaseSite):
    """An aiohttp site on sockets bound beforehand (``bind``, or inherited), serving
    the protocol ``protocol()`` makes. An aiohttp site so that ``runner.cleanup()``
    stops it in turn; it uses only aiohttp's public site interface."""

    def __init__(self, runner: web.AppRunner, sockets: list[socket.socket]) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self.sockets = sockets
        self.servers: list[asyncio.Server] = []

    def protocol(self) -> asyncio.Protocol:
        raise NotImplementedError

    @property
    def name(self) -> str:
        host, port = self.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self.sockets[0].getsockname()[1])

    async def start(self) -> None:
        await super().start()  # registers the site with the runner, which stops it
        loop = asyncio.get_running_loop()
        for sock in self.sockets:
            server = await loop.create_server(self.protocol, sock=sock, backlog=BACKLOG)
            self.servers.append(server)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()  # stop accepting
        await super().stop()
