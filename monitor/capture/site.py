"""The capture listener's sockets, served with the capture protocol.

Kept apart from ``front`` (the listener's shared state) so that the protocol and the
state it reads import in one direction only: site -> protocol -> front.
"""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from monitor.capture.front import Front
from monitor.capture.protocol import FrontProtocol
from monitor.listen import BACKLOG


class CaptureSite(web.BaseSite):
    """The capture listener's sockets with the front protocol on them.

    An aiohttp site so that ``runner.cleanup()`` stops it first: no new
    connections, capture's answers finish, and only then do the management
    connections close and the app's resources (writer, pool, database) go.
    """

    def __init__(self, runner: web.AppRunner, front: Front, sockets: list[socket.socket]) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self.front = front
        self.sockets = sockets
        self.servers: list[asyncio.Server] = []

    def protocol(self) -> FrontProtocol:
        return FrontProtocol(self.front)

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
        self.front.start()

    async def stop(self) -> None:
        for server in self.servers:
            server.close()  # stop accepting
        await super().stop()
        await self.front.stop()
