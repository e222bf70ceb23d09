"""``serve``: run the app until SIGINT/SIGTERM, then drain and stop.

The address is bound first, so a busy port fails before anything starts. The
socket speaks the front protocol (``monitor.front``): capture requests are
answered there, other connections go to aiohttp. On the signal the site stops
accepting, in-flight requests finish (they are waiting on the writer), then the
cleanup contexts run: the writer commits everything queued before the pool and
the embedded database close.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import structlog
from aiohttp import web

from monitor import front
from monitor.app import create_app
from monitor.config import Config

log = structlog.get_logger(__name__)

SHUTDOWN_TIMEOUT_S = 30.0


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(config: Config, *, inherited: list[socket.socket] | None = None) -> int:
    """Run one server process; a worker of ``serve --workers N`` gets its parent's
    listening sockets as ``inherited``.

    Raises ``front.ListenError`` when the address cannot be bound.
    """
    worker = inherited is not None
    sockets = inherited if inherited is not None else front.listen(config)
    app = create_app(config)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_run(app, config, sockets, worker=worker))
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
    app: web.Application, config: Config, sockets: list[socket.socket], *, worker: bool
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
        await front.start(runner, config, sockets=sockets, shutdown_timeout_s=SHUTDOWN_TIMEOUT_S)
        log.info(
            "serve.started", url=config.base_url, host=config.host, port=config.port, worker=worker
        )
        await asyncio.Event().wait()  # until a signal raises GracefulExit
    finally:
        log.info("serve.stopping")
        await runner.cleanup()
