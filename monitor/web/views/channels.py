"""The Channels page: notification channels listed (secrets masked), a form per kind
to add one, delete with a confirmation, a test notification with its result, and
each channel's latest deliveries. Same store, checks and notifier as the JSON API
(``web.api.channels``); session auth and CSRF as every page.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from monitor.rules.channels import KINDS, validate_new
from monitor.web import audit
from monitor.web.api.channels import channel_id, channels_link
from monitor.web.appkeys import CHANNELS, NOTIFIER
from monitor.web.errors import DomainError, http_status
from monitor.web.inputs import database_id
from monitor.web.views import render as pages

RECENT_DELIVERIES = 5
KIND_NAMES = {
    "webhook": "Webhook (signed)",
    "slack": "Slack",
    "telegram": "Telegram",
    "discord": "Discord",
    "email": "E-mail",
}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/channels", channels_page)
    app.router.add_post("/channels", create_channel)
    app.router.add_post("/channels/{channel_id}/test", test_channel)
    app.router.add_post("/channels/{channel_id}/delete", delete_channel)


async def channels_page(
    request: web.Request,
    *,
    error: str = "",
    form: dict[str, str] | None = None,
    notice: str = "",
    signing_secret: str = "",
    test_result: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    store = request.app[CHANNELS]
    rows = []
    for channel in await store.all():
        deliveries, _ = await store.deliveries(channel.id, limit=RECENT_DELIVERIES)
        rows.append({"channel": channel.to_json(), "deliveries": deliveries})
    deleted = database_id(request.query.get("deleted", ""))
    context = {
        "rows": rows,
        "kinds": KINDS,
        "kind_names": KIND_NAMES,
        "error": error,
        "form": form or {},
        "notice": notice or (f"Channel {deleted} deleted." if deleted else ""),
        "signing_secret": signing_secret,
        "test_result": test_result,
        "crumbs": [("Channels", None)],
    }
    return pages.render(request, "channels.html", context, status=status)


def config_from_form(kind: str, form: dict[str, str]) -> dict[str, Any]:
    """The config document a kind's form stands for; empty optional fields left out,
    so the checks (``rules.channels``) see what the API would."""

    def given(*keys: str) -> dict[str, Any]:
        return {k: form[k].strip() for k in keys if form.get(k, "").strip()}

    if kind == "webhook":
        return given("url", "secret")
    if kind in ("slack", "discord"):
        return given("webhook_url")
    if kind == "telegram":
        return given("bot_token", "chat_id", "api_base")
    if kind != "email":
        return {}
    config: dict[str, Any] = given("from", "host", "username")
    if form.get("password"):
        config["password"] = form["password"]
    config["to"] = [a for a in form.get("to", "").replace(";", ",").split(",") if a.strip()]
    port = form.get("port", "").strip()
    config["port"] = int(port) if port.isascii() and port.isdigit() and len(port) < 6 else port
    security = form.get("security", "")
    if security in ("starttls", "tls"):
        config[security] = True
    elif security == "none":
        config["starttls"] = False
    return config


async def create_channel(request: web.Request) -> web.Response:
    form = await pages.read_form(request)
    kind = form.get("kind", "")
    doc = {"name": form.get("name", ""), "kind": kind, "config": config_from_form(kind, form)}
    try:
        fields = validate_new(doc)
    except DomainError as exc:
        # What was typed comes back, but never a password or token.
        kept = {k: v for k, v in form.items() if k not in ("password", "bot_token", "secret")}
        return await channels_page(request, error=exc.message, form=kept, status=400)
    channel = await request.app[CHANNELS].create(fields)
    audit.note(request, target=f"channel {channel.id}", after=channel.to_json())
    return await channels_page(
        request,
        notice=f"Channel {channel.name!r} added.",
        signing_secret=fields.new_secret or "",
        status=201,
    )


async def test_channel(request: web.Request) -> web.Response:
    ident = channel_id(request)
    await pages.read_form(request)
    try:
        outcome = await request.app[NOTIFIER].test(ident, channels_link(request))
    except DomainError as exc:
        return await channels_page(request, error=exc.message, status=http_status(exc))
    channel = await request.app[CHANNELS].get(ident)
    result = {**outcome.to_json(), "name": channel.name}
    return await channels_page(request, test_result=result)


async def delete_channel(request: web.Request) -> web.Response:
    ident = channel_id(request)
    form = await pages.read_form(request)
    if form.get("confirm") != "yes":
        return await channels_page(
            request, error="Tick the box to confirm: the channel and its log are deleted.",
            status=400,
        )  # fmt: skip
    before = await request.app[CHANNELS].get(ident)
    await request.app[CHANNELS].delete(ident)
    audit.note(request, before=before.to_json())
    raise web.HTTPSeeOther(f"/channels?deleted={ident}")
