"""The click timeline in real Chromium, at 1400 px and at 390 px: a lead, a sale
and a reversal of one click sent through the capture listener to two endpoints,
the timeline opened from the hit page's click id, its rows in arrival order with
their statuses and the reversal's flag, and nothing wider than the screen; the
endpoints page's search box finds the same page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import AUTH
from tests.helpers.browser import (
    DESKTOP,
    PHONE,
    Bases,
    fire,
    open_page,
    page_width,
    playwright_expect,
    shot,
    sign_in,
)


@pytest.fixture(params=["desktop", "phone"])
async def view(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """The same test at 1400 px and at 390 px (touch)."""
    size, mobile = (DESKTOP, False) if request.param == "desktop" else (PHONE, True)
    async with open_page(size, mobile=mobile) as page:
        yield page


async def create_endpoint(base: str, name: str) -> Any:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        doc = {"name": name, "settings": {"preset": "keitaro"}}
        async with session.post(f"{base}/api/endpoints", json=doc) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()


async def test_a_click_across_two_endpoints_from_the_hit_page(
    server: Bases, view: Any, tmp_path: Path
) -> None:
    expect = playwright_expect()
    network = await create_endpoint(server.management, "network")
    shop = await create_endpoint(server.management, "shop with a rather long name")
    click = "7f3c9a2e-5b1d-4e8f-a6c0-click-timeline-1"
    lead = await fire(f"{network['capture_url']}?subid={click}&status=lead")
    sale = await fire(f"{network['capture_url']}?subid={click}&status=sale&payout=12.50")
    reversal = await fire(f"{shop['capture_url']}?subid={click}&status=rejected&payout=12.50")
    await fire(f"{shop['capture_url']}?subid=another-click&status=sale")

    await sign_in(view, server.management, f"/hits/{lead}")
    await view.click("#click-timeline")
    await view.wait_for_url(f"{server.management}/clicks/{click}")
    rows = view.locator("#timeline tbody tr")
    await expect(rows).to_have_count(3)
    assert [await r.get_attribute("data-hit-id") for r in await rows.all()] == [
        lead,
        sale,
        reversal,
    ]
    await expect(view.locator("#timeline td.status")).to_have_text(["lead", "sale", "rejected"])
    await expect(rows.nth(2).locator(".flags-cell")).to_contain_text("orphan_reversal")
    await expect(rows.nth(0).locator(".flags-cell")).to_have_text("clean")
    await expect(rows.nth(1).locator("td.amount")).to_have_text("12.50")
    await expect(rows.nth(2).locator("td.endpoint a")).to_have_text(shop["name"])
    await expect(view.locator("#flag-help")).to_contain_text("orphan_reversal")
    await shot(view, tmp_path, f"click-timeline-{view.viewport_size['width']}")
    assert await page_width(view) <= view.viewport_size["width"]

    # A row's hit link opens that hit; the endpoints page's search box finds the click.
    await rows.nth(2).locator("td.hit-link a").click()
    await view.wait_for_url(f"{server.management}/hits/{reversal}")
    await view.goto(server.management + "/endpoints")
    assert await page_width(view) <= view.viewport_size["width"]
    await view.fill("#click-search input[name=click_id]", click)
    await view.locator("#click-search button").click()
    await view.wait_for_url(f"{server.management}/clicks/{click}")
    await expect(view.locator("#timeline tbody tr")).to_have_count(3)
