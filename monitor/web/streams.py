"""Streamed responses: once the status line is out, a failure breaks the connection.

The handler chain turns an exception into an error answer (our error middleware
does, and so does aiohttp). After ``StreamResponse.prepare`` that answer would be
written into the body already under way: a second status line inside a chunked
body, on a connection kept alive for a stream that never ends. Aborting the
transport first makes the client see a failed download, and whatever is written
after that is dropped.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def prepared(response: web.StreamResponse, request: web.Request) -> AsyncIterator[None]:
    """Send the response's head; an exception inside aborts the connection, then propagates."""
    await response.prepare(request)
    try:
        yield
    except Exception:
        if request.transport is not None:
            request.transport.abort()
        raise
