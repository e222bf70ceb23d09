"""``serve``: run the app until SIGINT/SIGTERM, then drain and stop.

aiohttp's runner stops accepting on the signal, lets in-flight requests finish
(they are waiting on the writer), then runs the cleanup contexts: the writer
commits everything queued before the pool and the embedded database close.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

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


def serve(config: Config, *, worker: bool = False) -> int:
    """Run one server process; ``worker`` when started by ``serve --workers N``."""
    app = create_app(config)

    async def announce(_app: web.Application) -> None:
        log.info(
            "serve.started", url=config.base_url, host=config.host, port=config.port, worker=worker
        )

    async def farewell(_app: web.Application) -> None:
        log.info("serve.stopping")

    app.on_startup.append(announce)
    app.on_shutdown.append(farewell)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        web.run_app(
            app,
            host=config.host,
            port=config.port,
            print=None,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            # The HTTP parser answers 400 itself (never a 500) when these are exceeded.
            max_line_size=config.max_url_bytes,
            max_field_size=config.max_header_bytes,
            # Workers share the port; the kernel spreads connections over them.
            reuse_port=worker or None,
            loop=loop,
        )
    finally:
        log.info("serve.stopped")
    return 0
