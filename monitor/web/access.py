"""The rule table: what scope each ``/api/`` route needs and how it finds the
endpoints a restricted token must be allowed to see.

One row per route, keyed by (method, path as registered). ``check`` runs in the auth
middleware for every request of a scoped token (the admin token and its sessions
skip it): a scope too low is 403; an endpoint the token may not see is 404, as if it
did not exist. A route with no row is refused (403) for scoped tokens, and
tests/integration/test_token_rules.py fails naming it: a new route adds its row here.

How a row finds the endpoints (``Find``): from the path's ``endpoint_id``, from the
hit, reconciliation run or replay job the path names, or not at all; ``LIST``
handlers show only what ``scopes.access_of(request)`` sees, ``BODY`` handlers check
the endpoints their body names, and ``ALL`` routes need a token restricted to no
endpoint (creating an endpoint, managing tokens: a restricted token could otherwise
make itself an unrestricted one).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import structlog
from aiohttp import web

from monitor.web import reconciliation_runs
from monitor.web.appkeys import HITS, RECONCILIATIONS, REPLAYS
from monitor.web.errors import Forbidden, NotFound
from monitor.web.inputs import database_id, hit_id
from monitor.web.scopes import Access

log = structlog.get_logger(__name__)


class Find(Enum):
    NONE = "names no endpoint"
    ENDPOINT = "the path's endpoint_id"
    HIT = "the endpoint of the path's hit_id"
    RUN = "the endpoints of the path's run_id"
    JOB = "the endpoint of the path's replay job_id"
    LIST = "the handler lists only allowed endpoints"
    BODY = "the handler checks the endpoints its body names"
    ALL = "needs a token restricted to no endpoint"


@dataclass(frozen=True, slots=True)
class Rule:
    scope: str
    find: Find


def rule(scope: str, find: Find = Find.NONE) -> Rule:
    return Rule(scope, find)


F = Find
API_RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/api/openapi.json"): rule("read"),
    ("GET", "/api/docs"): rule("read"),
    ("GET", "/api/docs/assets/{name}"): rule("read"),
    ("GET", "/api/presets"): rule("read"),
    ("GET", "/api/endpoints"): rule("read", F.LIST),
    ("POST", "/api/endpoints"): rule("write", F.ALL),
    ("GET", "/api/endpoints/{endpoint_id}"): rule("read", F.ENDPOINT),
    ("PATCH", "/api/endpoints/{endpoint_id}"): rule("write", F.ENDPOINT),
    ("DELETE", "/api/endpoints/{endpoint_id}"): rule("write", F.ENDPOINT),
    ("POST", "/api/endpoints/{endpoint_id}/rotate-token"): rule("write", F.ENDPOINT),
    ("GET", "/api/endpoints/{endpoint_id}/hits"): rule("read", F.ENDPOINT),
    ("DELETE", "/api/endpoints/{endpoint_id}/hits"): rule("write", F.ENDPOINT),
    ("GET", "/api/endpoints/{endpoint_id}/stats"): rule("read", F.ENDPOINT),
    ("GET", "/api/endpoints/{endpoint_id}/charts"): rule("read", F.ENDPOINT),
    ("GET", "/api/endpoints/{endpoint_id}/export"): rule("read", F.ENDPOINT),
    ("GET", "/api/endpoints/{endpoint_id}/alerts"): rule("read", F.ENDPOINT),
    ("POST", "/api/endpoints/{endpoint_id}/replays"): rule("write", F.ENDPOINT),
    ("GET", "/api/replays/{job_id}"): rule("read", F.JOB),
    ("GET", "/api/hits/{hit_id}"): rule("read", F.HIT),
    ("GET", "/api/clicks/{click_id}"): rule("read", F.LIST),
    ("DELETE", "/api/hits/{hit_id}"): rule("write", F.HIT),
    ("GET", "/api/hits/{hit_id}/forwards"): rule("read", F.HIT),
    ("POST", "/api/hits/{hit_id}/replay"): rule("write", F.HIT),
    ("POST", "/api/tester"): rule("write"),
    ("POST", "/api/reconciliations"): rule("write", F.BODY),
    ("GET", "/api/reconciliations"): rule("read", F.LIST),
    ("GET", "/api/reconciliations/{run_id}"): rule("read", F.RUN),
    ("DELETE", "/api/reconciliations/{run_id}"): rule("write", F.RUN),
    ("GET", "/api/reconciliations/{run_id}/items"): rule("read", F.RUN),
    ("GET", "/api/reconciliations/{run_id}/export"): rule("read", F.RUN),
    ("POST", "/api/endpoints/{endpoint_id}/share-links"): rule("write", F.ENDPOINT),
    ("GET", "/api/endpoints/{endpoint_id}/share-links"): rule("read", F.ENDPOINT),
    ("DELETE", "/api/endpoints/{endpoint_id}/share-links/{link_id}"): rule("write", F.ENDPOINT),
    ("GET", "/api/endpoints/{endpoint_id}/senders"): rule("read", F.ENDPOINT),
    ("POST", "/api/endpoints/{endpoint_id}/senders/accept"): rule("write", F.ENDPOINT),
    ("GET", "/api/channels"): rule("admin", F.ALL),
    ("POST", "/api/channels"): rule("admin", F.ALL),
    ("GET", "/api/channels/{channel_id}"): rule("admin", F.ALL),
    ("PATCH", "/api/channels/{channel_id}"): rule("admin", F.ALL),
    ("DELETE", "/api/channels/{channel_id}"): rule("admin", F.ALL),
    ("POST", "/api/channels/{channel_id}/test"): rule("admin", F.ALL),
    ("GET", "/api/channels/{channel_id}/deliveries"): rule("admin", F.ALL),
    ("POST", "/api/tokens"): rule("admin", F.ALL),
    ("GET", "/api/tokens"): rule("admin", F.ALL),
    ("DELETE", "/api/tokens/{token_id}"): rule("admin", F.ALL),
    ("GET", "/api/audit"): rule("admin", F.ALL),
}


# Pages follow one rule (GET reads, POST writes; the endpoint found from the path's
# id) but for these.
PAGE_RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/logout"): rule("read"),
    ("GET", "/"): rule("read", F.LIST),
    ("GET", "/endpoints"): rule("read", F.LIST),
    ("POST", "/endpoints"): rule("write", F.ALL),
    ("GET", "/clicks"): rule("read", F.LIST),
    ("GET", "/clicks/{click_id}"): rule("read", F.LIST),
    ("GET", "/reconcile"): rule("read", F.LIST),
    ("POST", "/reconcile"): rule("write", F.BODY),
    ("GET", "/reconciliations"): rule("read", F.LIST),
    ("GET", "/channels"): rule("admin", F.ALL),
    ("POST", "/channels"): rule("admin", F.ALL),
    ("POST", "/channels/{channel_id}/test"): rule("admin", F.ALL),
    ("POST", "/channels/{channel_id}/delete"): rule("admin", F.ALL),
    ("GET", "/tokens"): rule("admin", F.ALL),
    ("POST", "/tokens"): rule("admin", F.ALL),
    ("POST", "/tokens/{token_id}/revoke"): rule("admin", F.ALL),
    ("GET", "/audit"): rule("admin", F.ALL),
}
PATH_FINDS = {"endpoint_id": F.ENDPOINT, "hit_id": F.HIT, "run_id": F.RUN, "job_id": F.JOB}


def page_rule(method: str, info: web.UrlMappingMatchInfo) -> Rule:
    finds = [PATH_FINDS[name] for name in info if name in PATH_FINDS]
    return rule("read" if method == "GET" else "write", finds[0] if finds else F.NONE)


def route_key(request: web.Request) -> tuple[str, str] | None:
    """(method, path as registered) of the matched route; HEAD goes by its GET."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    return method, resource.canonical


def rule_of(request: web.Request) -> Rule | None:
    key = route_key(request)
    if key is None:
        return None
    if key[1].startswith("/api/"):
        return API_RULES.get(key)
    return PAGE_RULES.get(key) or page_rule(key[0], request.match_info)


async def check(request: web.Request, access: Access) -> None:
    """Refuse the request unless ``access`` allows it (Forbidden, or NotFound for an
    endpoint the token may not see)."""
    found = rule_of(request)
    if found is None:
        if request.match_info.http_exception is not None:
            return  # no route: the router's own 404/405 answers
        log.warning("access.no_rule", method=request.method, path=request.path)
        raise Forbidden("forbidden", "this route has no access rule: admin token only")
    if not access.has(found.scope):
        raise Forbidden("forbidden", f"this needs a token of scope {found.scope!r}")
    if access.endpoint_ids is None:
        return
    if found.find is Find.ALL:
        raise Forbidden("forbidden", "this needs a token not restricted to endpoints")
    if not access.sees_all(await endpoints_named(request, found.find)):
        raise hidden(request, found.find)


async def endpoints_named(request: web.Request, find: Find) -> list[int]:
    """The endpoints the path names; a thing that does not exist raises its NotFound."""
    info = request.match_info
    if find is Find.ENDPOINT:
        ident = database_id(info["endpoint_id"])
        return [] if ident is None else [ident]  # no such id: the handler's 404
    if find is Find.HIT:
        return [(await request.app[HITS].get(hit_id(request)))["endpoint_id"]]
    if find is Find.RUN:
        run = await request.app[RECONCILIATIONS].get(reconciliation_runs.run_id(info["run_id"]))
        return list(run["endpoint_ids"])
    if find is Find.JOB:
        return [request.app[REPLAYS].get(info["job_id"]).endpoint_id]
    return []


def hidden(request: web.Request, find: Find) -> NotFound:
    """The 404 a handler gives for a thing that does not exist, for one not allowed."""
    info = request.match_info
    if find is Find.HIT:
        return NotFound("hit_not_found", f"no hit with id {hit_id(request)}")
    if find is Find.RUN:
        ident = reconciliation_runs.run_id(info["run_id"])
        return NotFound("reconciliation_not_found", f"no reconciliation with id {ident}")
    if find is Find.JOB:
        return NotFound("replay_not_found", f"no replay job {info['job_id'][:40]!r}")
    return NotFound("endpoint_not_found", f"no endpoint with id {info['endpoint_id']}")
