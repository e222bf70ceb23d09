"""Forwards in the real browser (issue #14 items 10 and 12): forward state on the hit
list and hit page, its filter, bulk replay with progress, the forwards page's replay
buttons and refusals, and the interactive API docs served offline."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.config import Config
from tests.helpers.browser import Bases, fire, playwright_expect, shot, sign_in
from tests.helpers.server import admin_api as api
from tests.helpers.tracker import Tracker


@pytest.fixture
def server_config(server_config: Config) -> Config:
    """Allowed to forward to 127.0.0.1 (the local tracker), and quick to give up."""
    return server_config.replace(
        forward_allow=("127.0.0.1",), forward_poll_s=0.1, outbound_timeout_s=5.0
    )


async def until_settled(base: str, endpoint_id: int, count: int) -> list[dict[str, Any]]:
    for _ in range(300):
        doc = await api(base, "GET", f"/api/endpoints/{endpoint_id}/hits")
        items: list[dict[str, Any]] = doc["items"]
        if len(items) == count and all(h["forward_state"] != "pending" for h in items):
            return items
        await asyncio.sleep(0.05)
    raise AssertionError("forwards still pending")


async def test_failed_forwards_are_found_and_replayed_in_bulk(
    server: Bases, page: Any, tracker: Tracker, tmp_path: Path
) -> None:
    expect = playwright_expect()
    endpoint = await api(
        server.management, "POST", "/api/endpoints",
        json={"name": "relay", "settings": {
            "forward_url": tracker.url("/pb?c={click_id}"), "forward_max_attempts": 1}},
    )  # fmt: skip
    capture = f"{server.capture}/p/{endpoint['token']}"
    tracker.default = 503
    failed = [await fire(f"{capture}?click_id=f{i}") for i in range(3)]
    await until_settled(server.management, endpoint["id"], 3)
    tracker.default = 200
    delivered = await fire(f"{capture}?click_id=ok")
    await until_settled(server.management, endpoint["id"], 4)

    await sign_in(page, server.management, f"/endpoints/{endpoint['id']}")
    rows = page.locator("#hit-rows tr")
    await expect(rows).to_have_count(4)
    await expect(page.locator("#hits thead th").last).to_have_text("Forward")
    await expect(page.locator(f'tr[data-hit-id="{delivered}"] td.forward-state')).to_have_text(
        "delivered"
    )
    for hit_id in failed:
        await expect(page.locator(f'tr[data-hit-id="{hit_id}"] td.forward-state')).to_have_text(
            "failed"
        )

    # Filter on the forward state; the offer replays what the page lists.
    await page.select_option("#forward-state-filter", "failed")
    await page.click("#filters button[type=submit]")
    await page.wait_for_url("**forward_state=failed**")
    await expect(rows).to_have_count(3)
    offer = page.locator("#replay-offer button")
    await expect(offer).to_have_text("Replay 3 matching hits")
    await shot(page, tmp_path, "forwards-failed-filter")

    tracker.delay_s = 0.4  # slow enough to see the job running
    before = len(tracker.requests)
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await offer.click()
    await page.wait_for_url("**/replays/**")
    await expect(page.locator("#replay-state")).to_contain_text("Finished: 3 of 3 sent")
    await expect(page.locator("#replay-succeeded")).to_have_text("3")
    await expect(page.locator("#replay-failed")).to_have_text("0")
    assert sorted(r.query[0][1] for r in tracker.requests[before:]) == ["f0", "f1", "f2"]
    await shot(page, tmp_path, "forwards-replay-finished")

    # Replayed hits are delivered: nothing is left failed, and the hit page says so.
    await page.goto(f"{server.management}/endpoints/{endpoint['id']}?forward_state=failed")
    await expect(page.locator("#no-hits")).to_be_visible()
    await expect(page.locator("#replay-offer")).to_have_count(0)
    await page.goto(f"{server.management}/hits/{failed[0]}")
    await expect(page.locator("#hit-forward-state")).to_contain_text("delivered")


async def test_replay_progress_page_shows_a_running_job(
    server: Bases, page: Any, tracker: Tracker
) -> None:
    expect = playwright_expect()
    endpoint = await api(
        server.management, "POST", "/api/endpoints",
        json={"name": "slow", "settings": {"forward_url": tracker.url("/pb")}},
    )  # fmt: skip
    capture = f"{server.capture}/p/{endpoint['token']}"
    for i in range(4):
        await fire(f"{capture}?click_id=s{i}")
    await until_settled(server.management, endpoint["id"], 4)
    tracker.delay_s, tracker.default = 1.0, 500
    await sign_in(page, server.management, f"/endpoints/{endpoint['id']}")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.click("#replay-offer button")
    await page.wait_for_url("**/replays/**")
    # Four at once, each a second: the first view is of a running job.
    await expect(page.locator("#replay-job")).to_have_attribute("data-state", "running")
    await expect(page.locator("#replay-state")).to_contain_text("Replaying")
    # It refreshes itself until it is done; the failures are counted, with a way back.
    await expect(page.locator("#replay-job")).to_have_attribute(
        "data-state", "finished", timeout=15_000
    )
    await expect(page.locator("#replay-failed")).to_have_text("4")
    await page.click("#still-failed")
    await page.wait_for_url("**forward_state=failed**")


async def test_forwards_page_never_shows_a_refused_replay_as_replayed(
    server: Bases, page: Any
) -> None:
    expect = playwright_expect()
    endpoint = await api(server.management, "POST", "/api/endpoints", json={"name": "plain"})
    hit_id = await fire(f"{server.capture}/p/{endpoint['token']}?click_id=z")
    await sign_in(page, server.management, f"/endpoints/{endpoint['id']}")
    # No target: no Forward column, no filter, no bulk replay.
    await expect(page.locator("#forward-state-filter")).to_have_count(0)
    await expect(page.locator("#replay-offer")).to_have_count(0)
    await expect(page.locator("#hits thead th").last).to_have_text("Flags")

    await page.goto(f"{server.management}/hits/{hit_id}/forwards")
    target = page.locator("#replay-target-form button")
    await expect(target).to_be_disabled()
    await expect(page.locator("#no-target")).to_contain_text("no forward target")
    url_button = page.locator("#replay-url-form button")
    await expect(url_button).not_to_have_class("secondary")

    # The SSRF guard refuses this URL: an error, never the green "Replayed".
    await page.fill("#replay-url-form input[name=url]", "http://169.254.169.254/latest/")
    await url_button.click()
    await expect(page.locator("p.error[role=alert]")).to_contain_text("Replay failed: refused")
    await expect(page.locator("#replayed")).to_have_count(0)
    await expect(page.locator("#attempts")).to_contain_text("refused")
    # A made-up "replayed" link shows nothing either.
    await page.goto(f"{server.management}/hits/{hit_id}/forwards?replayed=1")
    await expect(page.locator("#replayed")).to_have_count(0)


async def test_api_docs_render_offline(server: Bases, page: Any, tmp_path: Path) -> None:
    expect = playwright_expect()
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda req: None if req.url.startswith(server.management) else elsewhere.append(req.url),
    )
    await sign_in(page, server.management, "/api/docs")
    await expect(page.locator("#swagger-ui")).to_contain_text("Postback Monitor API")
    await expect(page.locator("#swagger-ui")).to_contain_text("startEndpointReplay")
    await expect(page.locator("#swagger-ui")).to_contain_text(
        "Replay the hits matching filters to the endpoint's forward target"
    )
    await expect(page.locator("#swagger-ui .opblock").first).to_be_visible()
    await shot(page, tmp_path, "api-docs")
    assert elsewhere == [], elsewhere

    # Without a session or token: the page sends to sign-in, the document stays 401.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.management}/api/docs", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login")
        async with session.get(f"{server.management}/api/openapi.json") as resp:
            assert resp.status == 401
        async with session.get(f"{server.management}/api/docs/assets/nope.js") as resp:
            assert resp.status == 401
