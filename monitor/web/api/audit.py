"""The audit log's API: ``GET /api/audit``, newest first, paged by an opaque cursor.

Admin scope, unrestricted tokens only (``access.API_RULES``): the log names every
endpoint and token, so a token limited to some endpoints would learn of others.
The entries are written by ``web.audit``; this module only reads them.
"""

from __future__ import annotations

from aiohttp import web

from monitor.storage.audit import DEFAULT_PAGE, MAX_PAGE
from monitor.web.appkeys import AUDIT
from monitor.web.errors import BadRequest
from monitor.web.inputs import database_id


def query_number(request: web.Request, name: str, high: int) -> int | None:
    """A whole-number query value from 1 to ``high``; None when absent; 400 otherwise."""
    raw = request.query.get(name)
    if raw is None:
        return None
    value = database_id(raw)
    if value is None or not 1 <= value <= high:
        raise BadRequest("invalid_query", f"{name}: a whole number from 1 to {high}")
    return value


async def list_audit(request: web.Request) -> web.Response:
    """``{"entries", "next_cursor"}``; the cursor is the last entry's id as text,
    which callers pass back unchanged (any other value is a 400)."""
    limit = query_number(request, "limit", MAX_PAGE) or DEFAULT_PAGE
    raw_cursor = request.query.get("cursor")
    cursor = None if raw_cursor is None else database_id(raw_cursor)
    if raw_cursor is not None and not cursor:
        raise BadRequest("invalid_query", "cursor: the next_cursor of a previous page")
    endpoint = query_number(request, "endpoint_id", 2**63 - 1)
    entries, next_id = await request.app[AUDIT].page(
        limit=limit, before_id=cursor, endpoint_id=endpoint
    )
    return web.json_response(
        {"entries": entries, "next_cursor": None if next_id is None else str(next_id)}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/audit", list_audit)
