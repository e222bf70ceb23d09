"""The rule table (monitor/web/access.py) against the routes the app really has.

Every ``/api/`` route must have a row, and every row is exercised with read, write
and admin tokens and with tokens restricted to one endpoint: a scope too low is
403, a thing of another endpoint 404, anything else gets past the check (the
handler's own answer, never 401/403/404). Each token meets fresh endpoints, hits,
runs and replay jobs, so a DELETE by one does not change what the next one sees.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.server.app import create_app
from monitor.web.access import API_RULES, PATH_FINDS, Find
from monitor.web.scopes import SCOPES
from tests.conftest import CaptureClient
from tests.helpers.tokens import bearer, make_token, world
from tests.helpers.tracker import Tracker

PARAM = re.compile(r"\{(\w+)\}")
# A body that gets each write past its handler's checks where that is cheap, so most
# allowed calls answer 2xx; the assertion only needs "not refused by the check".
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/endpoints"): {"name": "made by a token"},
    ("PATCH", "/api/endpoints/{endpoint_id}"): {"name": "renamed"},
    ("POST", "/api/endpoints/{endpoint_id}/replays"): {},
    ("POST", "/api/hits/{hit_id}/replay"): {},
    ("POST", "/api/tokens"): {"name": "t", "scope": "read"},
    ("POST", "/api/channels"): {
        "name": "c",
        "kind": "slack",
        "config": {"webhook_url": "https://hooks.slack.com/services/T/B/x"},
    },
    ("PATCH", "/api/channels/{channel_id}"): {"name": "renamed"},
    ("POST", "/api/channels/{channel_id}/test"): {},
    ("POST", "/api/tester"): {},
}


@pytest.fixture
def config(config: Config) -> Config:
    return config.replace(forward_allow=("127.0.0.1",))


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every /api/ route the app registers (HEAD goes by its GET)."""
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/") and route.method not in ("HEAD", "*"):
            found.add((route.method, path))
    return found


def test_every_api_route_has_a_rule_and_every_rule_a_route(config: Config) -> None:
    routes = api_routes(create_app(config))
    missing = sorted(routes - API_RULES.keys())
    assert not missing, (
        "no access rule for "
        + ", ".join(f"{m} {p}" for m, p in missing)
        + (": add a row to API_RULES in monitor/web/access.py")
    )
    stale = sorted(API_RULES.keys() - routes)
    assert not stale, f"rules for routes that do not exist: {stale}"


@pytest.mark.parametrize("key", sorted(API_RULES), ids=" ".join)
def test_a_rule_finds_the_endpoint_its_path_names(key: tuple[str, str]) -> None:
    """A path naming an endpoint, hit, run or job is checked through it (or needs an
    unrestricted token): a row cannot forget the 404 of another endpoint's thing."""
    named = [PATH_FINDS[p] for p in PARAM.findall(key[1]) if p in PATH_FINDS]
    found = API_RULES[key].find
    assert found in ([*named, Find.ALL] if named else [Find.NONE, Find.LIST, Find.BODY, Find.ALL])
    assert API_RULES[key].scope in SCOPES


# (token scope, restricted to "mine"?, the side the path names)
CALLERS = [(s, False, "mine") for s in SCOPES] + [
    (s, True, side) for s in SCOPES for side in ("mine", "theirs")
]


def expected(key: tuple[str, str], scope: str, restricted: bool, side: str) -> int | None:
    """403, 404, or None for "gets past the check"."""
    rule = API_RULES[key]
    if SCOPES.index(scope) < SCOPES.index(rule.scope):
        return 403
    if restricted and rule.find is Find.ALL:
        return 403
    if restricted and side == "theirs" and rule.find in PATH_FINDS.values():
        return 404
    return None


@pytest.mark.parametrize("key", sorted(API_RULES), ids=" ".join)
async def test_each_route_with_each_kind_of_token(
    key: tuple[str, str],
    client: TestClient,
    capture: CaptureClient,
    db: asyncpg.Connection,
    tracker: Tracker,
) -> None:
    method, path = key
    for scope, restricted, side in CALLERS:
        things = await world(client, capture, db, tracker)
        ids = [int(things.mine["endpoint_id"])] if restricted else None
        token = await make_token(client, scope, ids)
        names = things.mine if side == "mine" else things.theirs
        url = PARAM.sub(lambda m, names=names: names[m.group(1)], path)  # type: ignore[misc]
        body = BODIES.get(key)
        resp = await client.request(method, url, json=body, headers=bearer(token))
        want = expected(key, scope, restricted, side)
        who = f"{method} {url} with a {scope} token{' restricted' if restricted else ''}"
        if want is None:
            assert resp.status not in (401, 403, 404), f"{who}: {await resp.text()}"
            assert resp.status < 500, f"{who}: {await resp.text()}"
        else:
            assert resp.status == want, f"{who}: {resp.status} {await resp.text()}"
            if want == 404:
                assert (await resp.json())["error"]["code"].endswith("_not_found")
