"""Share links in real Chromium: an admin makes one on the settings page, a visitor
with no session opens it in a fresh browser at 1400 px and at 390 px and sees the
endpoint's hits and a hit's page (nothing wider than the screen), and after the admin
revokes it the same URL shows the not-found page."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

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

SECRET = "browser-secret-value"


async def create_endpoint(base: str, name: str, settings: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        doc = {"name": name, "settings": settings}
        async with session.post(f"{base}/api/endpoints", json=doc) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()


async def fits(page: Any) -> None:
    assert await page_width(page) <= page.viewport_size["width"]


async def visit(url: str, viewport: dict[str, int], mobile: bool, tmp_path: Path, hit: str) -> None:
    """A visitor without a session: the list, then one hit's page."""
    expect = playwright_expect()
    name = "phone" if mobile else "desktop"
    async with open_page(viewport, mobile=mobile) as page:
        await page.goto(url)
        assert page.url == url  # no sign-in asked
        await expect(page.locator("#shared-note")).to_contain_text("Shared view of Acme offers")
        await expect(page.locator("#shared-note")).to_contain_text("read-only, expires")
        await expect(page.locator("#hit-rows tr")).to_have_count(3)
        await expect(page.locator("#hit-rows")).to_contain_text("missing_param")
        assert await page.locator("header nav, form").count() == 0
        await fits(page)
        await shot(page, tmp_path, f"share-list-{name}")
        html = await page.content()
        assert "/p/" not in html and SECRET not in html

        await page.click(f'#hit-rows tr[data-hit-id="{hit}"] td.when a')
        await page.wait_for_url(f"{url}/hits/{hit}")
        await expect(page.locator("#params")).to_contain_text("click_id")
        await expect(page.locator("#params")).to_contain_text("[hidden]")
        await expect(page.locator("#flags")).to_contain_text("A parameter this endpoint requires")
        await expect(page.locator("#headers")).to_contain_text("X-Trace")
        await expect(page.locator("#headers")).not_to_contain_text("partner-key")
        await fits(page)
        await shot(page, tmp_path, f"share-hit-{name}")
        await page.click("#all-hits")
        await page.wait_for_url(url)


async def test_a_share_link_opens_without_an_account_until_revoked(
    server: Bases, page: Any, tmp_path: Path
) -> None:
    expect = playwright_expect()
    endpoint = await create_endpoint(
        server.management,
        "Acme offers",
        {"secret": {"value": SECRET, "param": "sig"}, "required_params": ["payout"]},
    )
    capture = endpoint["capture_url"]
    hit = await fire(
        f"{capture}?click_id=c-1&sig={SECRET}",
        headers={"Authorization": "Bearer partner-key", "X-Trace": "t-1"},
    )
    await fire(f"{capture}?click_id=c-2&payout=2.50&sig={SECRET}")
    await fire(f"{capture}?click_id=c-3&payout=1&sig=wrong")

    settings = f"/endpoints/{endpoint['id']}/settings"
    await sign_in(page, server.management, settings)
    await page.fill("#share-days", "14")
    await page.click("#share-create-form button[type=submit]")
    await expect(page.locator("#share-new")).to_contain_text("not shown again")
    url = (await page.locator("#share-url").text_content()).strip()
    assert url.startswith(server.management + "/s/")
    await expect(page.locator("#share-list tbody tr")).to_have_count(1)
    await fits(page)
    await shot(page, tmp_path, "share-settings-desktop")

    await visit(url, DESKTOP, False, tmp_path, hit)
    await visit(url, PHONE, True, tmp_path, hit)

    await page.goto(server.management + settings)
    await expect(page.locator("#share-list")).to_contain_text("ago")  # last opened
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.click("#share-list button[type=submit]")
    await expect(page.locator("#share-revoked")).to_be_visible()
    await expect(page.locator("#share-none")).to_be_visible()

    async with open_page(PHONE, mobile=True) as visitor:
        response = await visitor.goto(url)
        assert response.status == 404
        await expect(visitor.locator("#shared-gone")).to_contain_text("expired or was revoked")
        await expect(visitor.locator("#shared-gone")).not_to_contain_text("Acme")
        await fits(visitor)
        response = await visitor.goto(f"{url}/hits/{hit}")
        assert response.status == 404
        await expect(visitor.locator("#shared-gone")).to_be_visible()
