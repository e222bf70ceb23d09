"""The tokens page for admins: list the scoped API tokens, make one (its secret shown
on the answering page only, once) and revoke one (confirm box and CSRF, like every
other destructive form). Only the admin token or an unrestricted admin token reaches
it (``access.PAGE_RULES``); the header links here only for them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from monitor.web import api_tokens, audit
from monitor.web.api.tokens import check_endpoints, token_fields, token_id
from monitor.web.appkeys import ENDPOINTS, POOL
from monitor.web.errors import BadRequest
from monitor.web.inputs import database_id, whole_number
from monitor.web.scopes import SCOPES
from monitor.web.views import render as pages

MAX_DAYS = 3650


def add_routes(app: web.Application) -> None:
    app.router.add_get("/tokens", tokens_page)
    app.router.add_post("/tokens", create_token)
    app.router.add_post("/tokens/{token_id}/revoke", revoke_token)


async def tokens_page(
    request: web.Request,
    made: dict[str, Any] | None = None,
    error: str = "",
    form: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    endpoints = await request.app[ENDPOINTS].list()
    context = {
        "tokens": await api_tokens.list_all(request.app[POOL]),
        "names": {e.id: e.name for e in endpoints},
        "endpoints": endpoints,
        "scopes": SCOPES,
        "made": made,
        "error": error,
        "form": form or {},
        "revoked": request.query.get("revoked") == "1",
        "crumbs": [pages.HOME_CRUMB, ("API tokens", None)],
    }
    return pages.render(request, "tokens.html", context, status=status)


async def create_token(request: web.Request) -> web.Response:
    """Answers with the page itself (not a redirect), so the secret is never in a URL
    or in the history's next load."""
    form = await pages.read_form(request)
    picked = (await request.post()).getall("endpoint", [])
    try:
        ids = [database_id(str(raw)) for raw in picked]
        if None in ids:
            raise BadRequest("invalid_field", "endpoints: pick from the list")
        doc: dict[str, Any] = {"name": form.get("name", ""), "scope": form.get("scope")}
        if ids:
            doc["endpoint_ids"] = ids
        days = form.get("expires_days", "").strip()
        if days:
            lifetime = timedelta(days=whole_number("expires in (days)", days, 1, MAX_DAYS))
            doc["expires_at"] = (datetime.now(UTC) + lifetime).isoformat()
        name, scope, endpoint_ids, expires_at = token_fields(doc)
        await check_endpoints(request, endpoint_ids)
    except BadRequest as exc:
        return await tokens_page(request, error=exc.message, form=form, status=400)
    token, secret = await api_tokens.create(
        request.app[POOL], name, scope, endpoint_ids, expires_at
    )
    audit.note(request, target=f"token {token.id}", after=token.to_json())
    return await tokens_page(request, made={"token": token, "secret": secret}, status=201)


async def revoke_token(request: web.Request) -> web.Response:
    ident = token_id(request.match_info["token_id"])
    form = await pages.read_form(request)
    if form.get("confirm") != "yes":
        return await tokens_page(
            request, error="Tick the box to confirm: the token stops working at once.", status=400
        )
    await api_tokens.revoke(request.app[POOL], ident)
    raise web.HTTPSeeOther("/tokens?revoked=1")
