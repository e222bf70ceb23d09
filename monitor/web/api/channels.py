"""The JSON API of notification channels: create, list, read, change, delete, send a
test notification, read the delivery log.

Thin handlers over ``ChannelStore`` and ``Notifier``; secrets leave only masked
(``Channel.to_json``), except a webhook signing secret made by the service, shown
once as ``signing_secret`` in the answer that made it. Every route is in the OpenAPI
document (``openapi_channels``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from monitor.rules.channels import validate_new
from monitor.storage.channels import DEFAULT_PAGE, MAX_PAGE
from monitor.web import audit
from monitor.web.api.routes import read_json
from monitor.web.appkeys import CHANNELS, CONFIG, NOTIFIER
from monitor.web.errors import NotFound
from monitor.web.inputs import database_id, whole_number


def channel_id(request: web.Request) -> int:
    raw = request.match_info["channel_id"]
    ident = database_id(raw)
    if ident is None:
        raise NotFound("channel_not_found", f"no channel with id {raw[:40]!r}")
    return ident


def with_secret(doc: dict[str, Any], secret: str | None) -> dict[str, Any]:
    return doc if secret is None else {**doc, "signing_secret": secret}


def channels_link(request: web.Request) -> str:
    """Where a test notification points: the channels page of this service."""
    return f"{request.app[CONFIG].management_url}/channels"


async def list_channels(request: web.Request) -> web.Response:
    channels = await request.app[CHANNELS].all()
    return web.json_response({"items": [c.to_json() for c in channels]})


async def create_channel(request: web.Request) -> web.Response:
    fields = validate_new(await read_json(request))
    channel = await request.app[CHANNELS].create(fields)
    audit.note(request, target=f"channel {channel.id}", after=channel.to_json())
    return web.json_response(with_secret(channel.to_json(), fields.new_secret), status=201)


async def get_channel(request: web.Request) -> web.Response:
    channel = await request.app[CHANNELS].get(channel_id(request))
    return web.json_response(channel.to_json())


async def update_channel(request: web.Request) -> web.Response:
    """PATCH: ``name``, and the ``config`` keys given (null removes an optional one)."""
    ident = channel_id(request)
    doc = await read_json(request)
    before = await request.app[CHANNELS].get(ident)
    channel, secret = await request.app[CHANNELS].update(ident, doc)
    audit.note(request, before=before.to_json(), after=channel.to_json())
    return web.json_response(with_secret(channel.to_json(), secret))


async def delete_channel(request: web.Request) -> web.Response:
    ident = channel_id(request)
    before = await request.app[CHANNELS].get(ident)
    await request.app[CHANNELS].delete(ident)
    audit.note(request, before=before.to_json())
    return web.Response(status=204)


async def test_channel(request: web.Request) -> web.Response:
    """Send a test notification now (one attempt) and answer what it came to; 200
    either way: a far end's refusal is the answer, not an error of this request."""
    outcome = await request.app[NOTIFIER].test(channel_id(request), channels_link(request))
    return web.json_response(outcome.to_json())


async def list_deliveries(request: web.Request) -> web.Response:
    raw_limit = request.query.get("limit")
    limit = DEFAULT_PAGE if raw_limit is None else whole_number("limit", raw_limit, 1, MAX_PAGE)
    raw_before = request.query.get("before")
    before = None if raw_before is None else whole_number("before", raw_before, 1, 2**63 - 1)
    items, next_before = await request.app[CHANNELS].deliveries(
        channel_id(request), before=before, limit=limit
    )
    return web.json_response({"items": items, "next_before": next_before})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/channels", list_channels)
    app.router.add_post("/api/channels", create_channel)
    app.router.add_get("/api/channels/{channel_id}", get_channel)
    app.router.add_patch("/api/channels/{channel_id}", update_channel)
    app.router.add_delete("/api/channels/{channel_id}", delete_channel)
    app.router.add_post("/api/channels/{channel_id}/test", test_channel)
    app.router.add_get("/api/channels/{channel_id}/deliveries", list_deliveries)
