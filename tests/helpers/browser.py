"""Real Chromium (Debian's, driven by Playwright) for the browser tests: the server
both listeners run in, pages at a desktop and a phone width, sign-in, screenshots.

The fixtures live in tests/system/conftest.py; each browser test module imports the
helpers from here. Outside CI a machine without the browser skips the tests that use
a page; in CI that is an error.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import pytest

from tests.conftest import ADMIN_TOKEN, AUTH


class Bases(NamedTuple):
    management: str
    capture: str


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WAIT_MS = 20_000
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}


def playwright_api() -> Any:
    """playwright.async_api; in CI its absence (or the browser's) is an error."""
    if os.environ.get("CI"):
        assert CHROMIUM.exists(), "CI must install Debian's chromium (.ci/run does)"
        return importlib.import_module("playwright.async_api")
    api = pytest.importorskip("playwright.async_api")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium")
    return api


@asynccontextmanager
async def open_page(viewport: dict[str, int], *, mobile: bool = False) -> AsyncIterator[Any]:
    """One page in a fresh browser; fails the test if any script on it threw."""
    api = playwright_api()
    async with api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(
            viewport=viewport, is_mobile=mobile, has_touch=mobile, device_scale_factor=1
        )
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page
        finally:
            await browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def playwright_expect() -> Any:
    return playwright_api().expect


async def shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    if os.environ.get("PBM_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)


async def sign_in(page: Any, base: str, path: str = "/endpoints") -> None:
    await page.goto(base + path)
    assert "/login" in page.url  # unauthenticated: sent to sign-in, keeping the target
    await page.fill("input[name=token]", ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(base + path)


async def fire(url: str, **kw: Any) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.request(kw.pop("method", "GET"), url, **kw) as resp:
            assert resp.status == 200, await resp.text()
            return resp.headers["X-Postback-Monitor-Hit-Id"]


async def api_hits(base: str, endpoint_id: int) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.get(f"{base}/api/endpoints/{endpoint_id}/hits") as resp:
            assert resp.status == 200
            items: list[dict[str, Any]] = (await resp.json())["items"]
            return items


async def page_width(page: Any) -> int:
    """How wide the page's content really is: more than the viewport means the user
    scrolls sideways."""
    width: int = await page.evaluate("document.documentElement.scrollWidth")
    return width
