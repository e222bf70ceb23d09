"""The capture listener's sockets, served with the capture protocol.

Kept apart from ``front`` (the listener's shared state) so that the protocol and the
state it reads import in one direction only: site -> protocol -> front.
"""

from __future__ import annotations

import socket

from aiohttp import web

from monitor.capture.front import Front
from monitor.capture.protocol import FrontProtocol
from monitor.listen import SocketsSite


class CaptureSite(SocketsSite):
    """The capture listener's sockets with the front protocol on them.

    Registered with the runner before the management site, so ``runner.cleanup()``
    stops it first: no new connections, capture's answers finish, and only then do
    the management connections close and the app's resources (writer, pool,
    database) go.
    """

    def __init__(self, runner: web.AppRunner, front: Front, sockets: list[socket.socket]) -> None:
        super().__init__(runner, sockets)
        self.front = front

    def protocol(self) -> FrontProtocol:
        return FrontProtocol(self.front)

    async def start(self) -> None:
        await super().start()
        self.front.start()

    async def stop(self) -> None:
        await super().stop()
        await self.front.stop()
