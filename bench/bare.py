"""The ceiling: a bare aiohttp app on the capture route shape answering 200 OK.

Same stack as the service (aiohttp, uvloop when installed), no database, no rules,
no metrics: what one process of this stack can serve on this machine.
"""

from __future__ import annotations

import argparse

from aiohttp import web

from monitor.server.serve import new_event_loop


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="OK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_route("*", "/p/{token}", handle)
    app.router.add_get("/readyz", handle)
    web.run_app(
        app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=new_event_loop()
    )


if __name__ == "__main__":
    main()
