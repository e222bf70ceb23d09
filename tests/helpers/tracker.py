"""A local "tracker" for outbound tests: an aiohttp server on 127.0.0.1 that records
every request and answers with scripted statuses, optionally slowly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Received:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Tracker:
    server: TestServer | None = None
    requests: list[Received] = field(default_factory=list)
    # Statuses answered in turn; then ``default``.
    statuses: list[int] = field(default_factory=list)
    default: int = 200
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    routes: dict[str, Callable[[web.Request], web.StreamResponse]] = field(default_factory=dict)

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.port is not None
        return self.server.port

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> Tracker:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route = self.routes.get(request.path)
        if route is not None:
            return route(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = await request.read()
            self.requests.append(
                Received(
                    request.method,
                    request.path,
                    list(request.query.items()),
                    {k.lower(): v for k, v in request.headers.items()},
                    body,
                )
            )
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            status = self.statuses.pop(0) if self.statuses else self.default
            return web.Response(status=status, text=f"tracker says {status}")
        finally:
            self.in_flight -= 1


async def eventually(check: Callable[[], object], timeout_s: float = 15.0) -> None:
    """Wait until ``check()`` is truthy (or awaitable-free assertions pass)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
