"""The JSON API of scoped tokens: make one (its secret shown only in that answer),
list them (never a secret), revoke one. Admin scope only (``access.API_RULES``).

The checks here are shared with the tokens page (``views/tokens.py``): a token's
fields come from a JSON body or a form alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from monitor.web import api_tokens, audit
from monitor.web.api.routes import parse_time, read_json
from monitor.web.appkeys import ENDPOINTS, POOL
from monitor.web.errors import BadRequest, NotFound
from monitor.web.inputs import BIGINT_MAX, database_id
from monitor.web.scopes import SCOPES

FIELDS = frozenset({"name", "scope", "endpoint_ids", "expires_at"})
MAX_ENDPOINT_IDS = 1000


def token_fields(doc: Any) -> tuple[str, str, list[int] | None, datetime | None]:
    """(name, scope, endpoint_ids, expires_at) of a new token; BadRequest names the field."""
    if not isinstance(doc, dict):
        raise BadRequest("invalid_body", "a JSON object with name and scope")
    unknown = sorted(set(doc) - FIELDS)
    if unknown:
        raise BadRequest("invalid_body", f"unknown field(s): {', '.join(unknown)[:200]}")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > api_tokens.MAX_NAME_CHARS:
        raise BadRequest(
            "invalid_field", f"name: text of 1 to {api_tokens.MAX_NAME_CHARS} characters"
        )
    scope = doc.get("scope")
    if scope not in SCOPES:
        raise BadRequest("invalid_field", f"scope: one of {', '.join(SCOPES)}")
    ids = doc.get("endpoint_ids")
    if ids is not None and (
        not isinstance(ids, list)
        or len(ids) > MAX_ENDPOINT_IDS
        or not all(type(i) is int and 0 < i <= BIGINT_MAX for i in ids)
    ):
        raise BadRequest(
            "invalid_field", f"endpoint_ids: a list of at most {MAX_ENDPOINT_IDS} endpoint ids"
        )
    expires_raw = doc.get("expires_at")
    if expires_raw is not None and not isinstance(expires_raw, str):
        raise BadRequest("invalid_field", "expires_at: an RFC 3339 time")
    expires_at = parse_time("expires_at", expires_raw)
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise BadRequest("invalid_field", "expires_at: a time in the future")
    return name.strip(), scope, ids, expires_at


async def check_endpoints(request: web.Request, ids: list[int] | None) -> None:
    """A token names endpoints that exist (a typo would otherwise give a token that
    sees nothing, or one made later that happens to get the id)."""
    if ids:
        known = {e.id for e in await request.app[ENDPOINTS].list()}
        unknown = [str(i) for i in ids if i not in known]
        if unknown:
            raise BadRequest(
                "unknown_endpoints", f"endpoint_ids: no endpoint {', '.join(unknown)[:200]}"
            )


async def create_token(request: web.Request) -> web.Response:
    name, scope, ids, expires_at = token_fields(await read_json(request))
    await check_endpoints(request, ids)
    token, secret = await api_tokens.create(request.app[POOL], name, scope, ids, expires_at)
    audit.note(request, target=f"token {token.id}", after=token.to_json())
    return web.json_response({**token.to_json(), "token": secret}, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    tokens = await api_tokens.list_all(request.app[POOL])
    return web.json_response({"items": [t.to_json() for t in tokens]})


def token_id(raw: str) -> int:
    ident = database_id(raw)
    if ident is None:
        raise NotFound("token_not_found", f"no token with id {raw[:40]!r}")
    return ident


async def revoke_token(request: web.Request) -> web.Response:
    """204; the token's sessions end with it."""
    await api_tokens.revoke(request.app[POOL], token_id(request.match_info["token_id"]))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/tokens", create_token)
    app.router.add_get("/api/tokens", list_tokens)
    app.router.add_delete("/api/tokens/{token_id}", revoke_token)
