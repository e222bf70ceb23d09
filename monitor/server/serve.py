"""``serve``: run the app until SIGINT/SIGTERM, then drain and stop.

Both listeners are bound first, so a busy port fails before anything starts. The
capture listener speaks the front protocol (``monitor.capture.front``); the management
listener is aiohttp (``monitor.web.read_deadlines``). On the signal both stop
accepting, in-flight captures finish (they are waiting on the writer), then the
cleanup contexts run: the writer commits everything queued before the pool and
the embedded database close.

This module is the composition root of a server process: it makes the process's
metrics (once, after ``serve --workers`` has put the multiprocess directory in
the environment) for the app, and hands the components the app's startup made
(endpoint cache, rate limiter, writer, pool, metrics) to the capture front.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from functools import partial

import structlog
from aiohttp import web

from monitor import listen, runtime
from monitor.capture.front import Front
from monitor.capture.site import CaptureSite
from monitor.capture.steps import Capture
from monitor.config import Config
from monitor.metrics import Metrics
from monitor.server.app import create_app
from monitor.storage.readiness import readiness
from monitor.web.appkeys import (
    DATABASE_KEEPER,
    DATABASE_URL,
    ENDPOINT_CACHE,
    METRICS,
    POOL,
    RATE_LIMITER,
    WRITER,
)
from monitor.web.read_deadlines import ManagementSite

log = structlog.get_logger(__name__)

SHUTDOWN_TIMEOUT_S = 30.0


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(config: Config, *, inherited: listen.Listeners | None = None) -> int:
    """Run one server process; a worker of ``serve --workers N`` gets its parent's
    listening sockets as ``inherited``.

    Raises ``listen.ListenError`` when an address cannot be bound.
    """
    worker = inherited is not None
    listeners = inherited if inherited is not None else listen.bind(config)
    # One per process; file-backed when PROMETHEUS_MULTIPROC_DIR is in the
    # environment, which a worker has from its start.
    app = create_app(config, Metrics(config.node))
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_run(app, config, listeners, worker=worker))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        # As aiohttp's run_app: the cancelled task's finally runs the cleanup (the
        # writer drains), then whatever is left is cancelled and the loop closed.
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main)
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        log.info("serve.stopped")
    return 0


async def _run(
    app: web.Application, config: Config, listeners: listen.Listeners, *, worker: bool
) -> None:
    runner = web.AppRunner(
        app,
        handle_signals=True,  # SIGINT and SIGTERM raise GracefulExit
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        # aiohttp's HTTP parser answers 400 itself (never a 500) beyond these;
        # the front protocol keeps the same limits.
        max_line_size=config.max_url_bytes,
        max_field_size=config.max_header_bytes,
    )
    await runner.setup()  # the app's startup: database, writer, caches
    try:
        # Capture first: it is registered first, so the runner stops it first.
        await start_capture(runner, config, listeners.capture, SHUTDOWN_TIMEOUT_S)
        await start_management(runner, config, listeners.management)
        log.info(
            "serve.started",
            capture_url=config.base_url,
            management_url=config.management_url,
            worker=worker,
        )
        # Everything made so far (modules, rules, presets, caches) lives as long as the
        # process: out of the collector's sight, a full collection walks only what
        # capture makes. Without this each one paused the loop ~19 ms, every couple of
        # seconds under load, and was the capture p99 (19.6 -> 7.5 ms at 10k hits/s).
        gc.freeze()
        if worker:  # the parent tells the CLI where it is
            await asyncio.Event().wait()  # until a signal raises GracefulExit
        else:
            # DATA_DIR/server.json and the per-user pointer: the CLI's database and URLs
            with runtime.announce(config, app[DATABASE_URL]):
                await asyncio.Event().wait()
    finally:
        log.info("serve.stopping")
        await runner.cleanup()


async def start_capture(
    runner: web.AppRunner,
    config: Config,
    sockets: list[socket.socket],
    shutdown_timeout_s: float,
) -> CaptureSite:
    """Serve capture on ``sockets``, with the components the app's startup made."""
    app = runner.app
    capture = Capture(config, app[ENDPOINT_CACHE], app[RATE_LIMITER], app[WRITER])
    ready = partial(readiness, app[POOL], app[WRITER], app[DATABASE_KEEPER])
    front = Front(config, capture, ready, shutdown_timeout_s, app[METRICS])
    site = CaptureSite(runner, front, sockets)
    await site.start()
    return site


async def start_management(
    runner: web.AppRunner, config: Config, sockets: list[socket.socket]
) -> ManagementSite:
    """Serve the app (web views, API, metrics) on ``sockets``, with read deadlines."""
    site = ManagementSite(runner, sockets, config.head_timeout_s, config.body_timeout_s)
    await site.start()
    return site
