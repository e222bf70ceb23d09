"""The pages' side of the rule table (``access.PAGE_RULES`` and ``page_rule``): every
page that names an endpoint, hit, run or replay job in its path is 404 for a token
that may not see it, and every form post is 403 for a read token; a new page whose
path names something the rules do not know fails here, naming it."""

from __future__ import annotations

import re

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.server.app import create_app
from monitor.web.access import PAGE_RULES, PATH_FINDS
from monitor.web.auth import PUBLIC_PREFIXES
from tests.conftest import CaptureClient
from tests.helpers.signin import sign_in
from tests.helpers.tokens import make_token, world
from tests.helpers.tracker import Tracker

PARAM = re.compile(r"\{(\w+)\}")
# Path parameters that name no endpoint's thing (a token on the admin-only tokens page).
# Named beside an endpoint_id that the rules check, or not about an endpoint.
# click_id: the click timeline lists only allowed endpoints (PAGE_RULES, Find.LIST).
NOT_ENDPOINT_THINGS = {"token_id", "link_id", "channel_id", "click_id"}


@pytest.fixture
def config(config: Config) -> Config:
    return config.replace(forward_allow=("127.0.0.1",))


def page_routes(app: web.Application) -> list[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        # /api/ has its own rules; the public prefixes (static files, share links)
        # need no session, so no token's rights apply to them.
        if path.startswith(("/api/", *PUBLIC_PREFIXES)) or route.method in ("HEAD", "*"):
            continue
        found.add((route.method, path))
    return sorted(found)


def test_every_page_parameter_is_one_the_rules_follow(config: Config) -> None:
    for method, path in page_routes(create_app(config)):
        unknown = set(PARAM.findall(path)) - PATH_FINDS.keys() - NOT_ENDPOINT_THINGS
        assert not unknown, (
            f"{method} {path}: no rule finds the endpoint of {sorted(unknown)}: add it to "
            "PATH_FINDS or PAGE_RULES in monitor/web/access.py"
        )
    assert set(PAGE_RULES) <= set(page_routes(create_app(config)))


async def test_pages_with_a_restricted_read_session(
    client: TestClient,
    capture: CaptureClient,
    db: asyncpg.Connection,
    tracker: Tracker,
    config: Config,
) -> None:
    things = await world(client, capture, db, tracker)
    token = await make_token(client, "read", [int(things.mine["endpoint_id"])])
    csrf = await sign_in(client, token=token["token"])
    for method, path in page_routes(create_app(config)):
        names = set(PARAM.findall(path))
        if not names & PATH_FINDS.keys():
            continue
        for side, values in (("mine", things.mine), ("theirs", things.theirs)):
            url = PARAM.sub(lambda m, v=values: v[m.group(1)], path)  # type: ignore[misc]
            if method == "GET":
                resp = await client.get(url, allow_redirects=False)
                want_404 = side == "theirs"
                assert (resp.status == 404) == want_404, f"GET {url} ({side}): {resp.status}"
                assert resp.status != 403, url
                await resp.release()
            else:
                resp = await client.post(url, data={"csrf": csrf, "confirm": "yes"})
                assert resp.status == 403, f"POST {url} ({side}): {resp.status}"


async def test_form_posts_about_another_endpoint_are_404_for_a_restricted_write_session(
    client: TestClient,
    capture: CaptureClient,
    db: asyncpg.Connection,
    tracker: Tracker,
    config: Config,
) -> None:
    things = await world(client, capture, db, tracker)
    token = await make_token(client, "write", [int(things.mine["endpoint_id"])])
    csrf = await sign_in(client, token=token["token"])
    posts = [p for m, p in page_routes(create_app(config)) if m == "POST"]
    checked = 0
    for path in posts:
        if not set(PARAM.findall(path)) & PATH_FINDS.keys():
            continue
        url = PARAM.sub(lambda m: things.theirs[m.group(1)], path)
        resp = await client.post(url, data={"csrf": csrf, "confirm": "yes"})
        assert resp.status == 404, f"POST {url}: {resp.status}"
        checked += 1
    assert checked >= 6
