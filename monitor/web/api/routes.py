"""The JSON API under /api/: endpoints and hits. Thin handlers over the stores."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from monitor.model.verdict import FLAG_NAMES
from monitor.rules import Rules
from monitor.rules.endpoint_fields import validate_fields
from monitor.rules.judge import amount_and_currency
from monitor.rules.presets import preset_list
from monitor.storage.hits import DEFAULT_PAGE, MAX_METHOD_CHARS, MAX_SEARCH_CHARS, HitFilter
from monitor.web import audit
from monitor.web.alert_channels import check_channels
from monitor.web.api import openapi
from monitor.web.appkeys import CONFIG, ENDPOINTS, HITS
from monitor.web.errors import BadRequest, BodyTooLarge, NotFound
from monitor.web.inputs import check_json, database_id, hit_id
from monitor.web.scopes import access_of

MAX_JSON_BODY_BYTES = 256 * 1024
# The hit list's ``method`` filter: an HTTP method token (RFC 9110).
METHOD_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole request body, however many TCP segments it came in; 413 past ``limit``.

    ``content.read(n)`` returns what has arrived so far, not n bytes: one read would
    cut a body from a slow or rate-limited client short."""
    too_large = BodyTooLarge("body_too_large", f"request body: at most {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """The request's JSON body, every string in it checked; {} for an empty optional body."""
    raw = await read_body(request, MAX_JSON_BODY_BYTES)
    if not raw.strip():
        if required:
            raise BadRequest("invalid_body", "request body: a JSON object is required")
        return {}
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("invalid_json", "request body: not valid JSON") from None
    check_json(document)
    return document


def endpoint_id(request: web.Request) -> int:
    raw = request.match_info["endpoint_id"]
    ident = database_id(raw)
    if ident is None:
        raise NotFound("endpoint_not_found", f"no endpoint with id {raw[:40]!r}")
    return ident


def base_url(request: web.Request) -> str:
    return request.app[CONFIG].base_url


async def list_endpoints(request: web.Request) -> web.Response:
    access = access_of(request)
    endpoints = [e for e in await request.app[ENDPOINTS].list() if access.sees(e.id)]
    return web.json_response({"items": [e.to_json(base_url(request)) for e in endpoints]})


async def create_endpoint(request: web.Request) -> web.Response:
    fields = validate_fields(await read_json(request), require_name=True)
    await check_channels(request.app, fields.settings)
    endpoint = await request.app[ENDPOINTS].create(fields)
    audit.note_endpoint(request, after=endpoint)
    return web.json_response(endpoint.to_json(base_url(request)), status=201)


async def get_endpoint(request: web.Request) -> web.Response:
    endpoint = await request.app[ENDPOINTS].get(endpoint_id(request))
    return web.json_response(endpoint.to_json(base_url(request)))


async def update_endpoint(request: web.Request) -> web.Response:
    """PATCH: the fields given replace theirs; ``settings`` is a JSON Merge Patch (RFC 7396)."""
    ident = endpoint_id(request)
    doc = await read_json(request)
    if isinstance(doc, dict):
        await check_channels(request.app, doc.get("settings"))
    before = await request.app[ENDPOINTS].get(ident)
    endpoint = await request.app[ENDPOINTS].update(ident, doc, merge_settings=True)
    audit.note_endpoint(request, before, endpoint)
    return web.json_response(endpoint.to_json(base_url(request)))


async def rotate_token(request: web.Request) -> web.Response:
    endpoint = await request.app[ENDPOINTS].rotate_token(endpoint_id(request))
    return web.json_response(endpoint.to_json(base_url(request)))


async def delete_endpoint(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    before = await request.app[ENDPOINTS].get(ident)
    hits_deleted = await request.app[ENDPOINTS].delete(ident)
    audit.note_endpoint(request, before=before)
    return web.json_response({"deleted": True, "id": ident, "hits_deleted": hits_deleted})


def parse_time(name: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if value.tzinfo is None:
            raise BadRequest("invalid_query", f"{name}: include a time zone (Z or +00:00)")
        return value.astimezone(UTC)  # past year 9999 in UTC: OverflowError, here not deeper
    except (ValueError, OverflowError):
        raise BadRequest(
            "invalid_query", f"{name}: an RFC 3339 time such as 2026-01-31T12:00:00Z"
        ) from None


def parse_bool(name: str, raw: str | None) -> bool | None:
    if raw is None:
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise BadRequest("invalid_query", f"{name}: true or false")


def parse_flags(raw: list[str]) -> tuple[str, ...]:
    """Each ``flag`` value must name a flag a hit can carry: a typo is a 400, not an
    empty list."""
    for flag in raw:
        if flag not in FLAG_NAMES:
            raise BadRequest(
                "invalid_query",
                f"flag: unknown flag {flag[:40]!r} (known: {', '.join(FLAG_NAMES)})",
            )
    return tuple(raw)


def parse_method(raw: str | None) -> str | None:
    """The ``method`` filter, as the web list takes it: case-insensitive; empty = any."""
    if raw is not None and len(raw) > MAX_METHOD_CHARS:
        raise BadRequest("invalid_query", f"method: at most {MAX_METHOD_CHARS} characters")
    if raw is None or not raw.strip():
        return None
    method = raw.strip().upper()
    if METHOD_TOKEN.fullmatch(method) is None:
        raise BadRequest("invalid_query", "method: an HTTP method such as GET or POST")
    return method


def parse_search(raw: str | None) -> str | None:
    """The ``q`` filter, as the web list takes it: trimmed; empty = no filter."""
    if raw is not None and len(raw) > MAX_SEARCH_CHARS:
        raise BadRequest("invalid_query", f"q: at most {MAX_SEARCH_CHARS} characters")
    if raw is None or not raw.strip():
        return None
    return raw.strip()


def hit_filter(request: web.Request) -> HitFilter:
    return filter_from(request.query)


def filter_from(q: MultiMapping[str]) -> HitFilter:
    """The hit list's filters from query-string-shaped values (``flag`` repeats);
    the list, the export and the bulk replay read them alike."""
    return HitFilter(
        flags=parse_flags(q.getall("flag", [])),
        flagged=parse_bool("flagged", q.get("flagged")),
        test=parse_bool("test", q.get("test")),
        click_id=q.get("click_id"),
        since=parse_time("since", q.get("since")),
        until=parse_time("until", q.get("until")),
        method=parse_method(q.get("method")),
        search=parse_search(q.get("q")),
        # Empty means any, as for method and q (a form's "any" option sends it).
        forward_state=q.get("forward_state") or None,
    )


def with_amount(hit: dict[str, Any], rules: Rules | None) -> dict[str, Any]:
    """The hit with ``amount`` and ``currency`` read by the endpoint's current rules
    (None when absent, or when the endpoint is gone)."""
    amount, currency = (None, None)
    if rules is not None:
        amount, currency = amount_and_currency(rules, [*hit["params"], *hit["body_params"]])
    return {**hit, "amount": amount, "currency": currency}


async def list_hits(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    # 404 for an unknown endpoint, not an empty list; its rules read each hit's amount.
    endpoint = await request.app[ENDPOINTS].get(ident)
    limit = database_id(request.query.get("limit", str(DEFAULT_PAGE)))
    if limit is None:
        raise BadRequest("invalid_limit", "limit: a whole number")
    items, next_cursor = await request.app[HITS].list(
        ident, hit_filter(request), cursor=request.query.get("cursor"), limit=limit
    )
    items = [with_amount(hit, endpoint.rules) for hit in items]
    return web.json_response({"items": items, "next_cursor": next_cursor})


async def get_hit(request: web.Request) -> web.Response:
    hit = await request.app[HITS].get(hit_id(request))
    try:
        rules: Rules | None = (await request.app[ENDPOINTS].get(hit["endpoint_id"])).rules
    except NotFound:  # the endpoint was deleted after the hit was read
        rules = None
    return web.json_response(with_amount(hit, rules))


async def delete_hit(request: web.Request) -> web.Response:
    """204; what else goes with the hit is in ``HitStore.delete``."""
    endpoint = await request.app[HITS].delete(hit_id(request))
    audit.note(request, endpoint_id=endpoint)
    return web.Response(status=204)


async def clear_endpoint_hits(request: web.Request) -> web.Response:
    """Delete every hit of the endpoint (and its duplicate ledger); the endpoint stays."""
    ident = endpoint_id(request)
    deleted = await request.app[ENDPOINTS].clear(ident)
    audit.note(request, after={"hits_deleted": deleted})
    return web.json_response({"endpoint_id": ident, "hits_deleted": deleted})


async def endpoint_stats(request: web.Request) -> web.Response:
    ident = endpoint_id(request)
    await request.app[ENDPOINTS].get(ident)
    window = request.query.get("window", "24h")
    return web.json_response(await request.app[HITS].stats(ident, window))


async def list_presets(request: web.Request) -> web.Response:
    return web.json_response({"items": preset_list()})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/endpoints", list_endpoints)
    app.router.add_post("/api/endpoints", create_endpoint)
    app.router.add_get("/api/endpoints/{endpoint_id}", get_endpoint)
    app.router.add_patch("/api/endpoints/{endpoint_id}", update_endpoint)
    app.router.add_delete("/api/endpoints/{endpoint_id}", delete_endpoint)
    app.router.add_post("/api/endpoints/{endpoint_id}/rotate-token", rotate_token)
    app.router.add_get("/api/endpoints/{endpoint_id}/hits", list_hits)
    app.router.add_delete("/api/endpoints/{endpoint_id}/hits", clear_endpoint_hits)
    app.router.add_get("/api/endpoints/{endpoint_id}/stats", endpoint_stats)
    app.router.add_get("/api/hits/{hit_id}", get_hit)
    app.router.add_delete("/api/hits/{hit_id}", delete_hit)
    app.router.add_get("/api/presets", list_presets)
    app.router.add_get("/api/openapi.json", openapi.openapi_json)
