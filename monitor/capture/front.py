"""The capture listener: postbacks, probes, nothing else.

A postback needs none of aiohttp's web layer (Request and Response objects, router,
middlewares, signals), which costs several times what parsing the request with
llhttp (httptools) and writing a ready-made response does. So the capture listener
speaks HTTP itself (``monitor.capture.protocol``): ``ANY /p/{token}[/{tail}]`` goes
through the capture steps (``monitor.capture.steps``), ``GET|HEAD /healthz`` and
``/readyz`` answer as on the management listener (a balancer in front of capture
asks this port), and any other path gets a plain 404 (``monitor.capture.answers``).
The management side (web views, API, metrics) is aiohttp on its own listener.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from monitor.capture.steps import Capture
from monitor.config import Config
from monitor.listen import DeadlineSweeper
from monitor.metrics import Metrics

SWEEP_EVERY_S = 2.0  # how late past its deadline a slow or idle connection may close


class Connection(Protocol):
    """What the front needs of an open connection (``protocol.FrontProtocol``)."""

    def check_deadlines(self, now: float) -> None:
        """Answer 408 and close when the request being read is overdue."""

    def close_if_idle(self) -> None:
        """Close now when no request is being read or answered."""


class Front:
    """The capture listener's shared state: settings, capture steps, open connections.

    ``readiness`` answers ``/readyz``: (status, JSON body), as the management side's.
    ``metrics`` are the process's: each answer is recorded with ``record_capture``.
    """

    def __init__(
        self,
        config: Config,
        capture: Capture,
        readiness: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
        shutdown_timeout_s: float,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.capture = capture
        self.readiness = readiness
        self.shutdown_timeout_s = shutdown_timeout_s
        # Called once per answer as ``front.metrics.record_capture(...)``: a plain method
        # call, measured as fast as the module function it replaces (a bound method
        # kept in an attribute is slower to call on CPython 3.11).
        self.metrics = metrics
        # The request line and the equivalent of four maximal header fields.
        self.max_head_bytes = config.max_url_bytes + 4 * config.max_header_bytes
        self.loop = asyncio.get_running_loop()
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0  # capture requests read and not yet answered, all connections
        self.stopping = False
        self._sweeper: DeadlineSweeper | None = None

    def spawn(self, coro: collections.abc.Coroutine[None, None, None]) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def start(self) -> None:
        self._sweeper = DeadlineSweeper(self.connections, SWEEP_EVERY_S)
        self._sweeper.start()

    async def stop(self) -> None:
        """Close idle connections now; let the others finish their answers first."""
        self.stopping = True
        if self._sweeper is not None:
            await self._sweeper.stop()
        for connection in list(self.connections):
            connection.close_if_idle()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=self.shutdown_timeout_s)
