"""The hit page and the settings page in real Chromium, at 1400 px and at 390 px:
a 2 MB body is a short page with a download that replays with curl, newer/older
links and deleting a hit, the settings form, the JSON editor, the settings
reference, and clearing an endpoint's hits."""

from __future__ import annotations

import asyncio
import base64
import io
import shutil
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
    api_hits,
    fire,
    open_page,
    page_width,
    playwright_expect,
    shot,
    sign_in,
)

MIB = 1024 * 1024


@pytest.fixture(params=["desktop", "phone"])
async def view(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """The same test at 1400 px and at 390 px (touch)."""
    size, mobile = (DESKTOP, False) if request.param == "desktop" else (PHONE, True)
    async with open_page(size, mobile=mobile) as page:
        yield page


async def create_endpoint(base: str, name: str, settings: dict[str, Any] | None = None) -> Any:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        doc = {"name": name, "settings": settings or {}}
        async with session.post(f"{base}/api/endpoints", json=doc) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()


async def api_get(base: str, path: str) -> Any:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.get(base + path) as resp:
            return resp.status, await resp.json()


async def fits(page: Any) -> None:
    """Nothing makes the user scroll sideways."""
    assert await page_width(page) <= page.viewport_size["width"]


def accept_next_dialog(page: Any) -> None:
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))


async def test_a_2_mb_body_is_a_short_page_with_a_download(
    server: Bases, view: Any, tmp_path: Path
) -> None:
    expect = playwright_expect()
    endpoint = await create_endpoint(server.management, "large")
    sent = (bytes(range(33, 127)) * (2 * MIB // 94 + 1))[: 2 * MIB]
    hit_id = await fire(
        endpoint["capture_url"] + "?click_id=big-1", method="POST", data=io.BytesIO(sent),
        headers={"Content-Type": "text/plain"},
    )  # fmt: skip
    await sign_in(view, server.management, f"/hits/{hit_id}")

    await expect(view.locator("#body-showing")).to_contain_text(
        "Showing the first 8.0 KiB of 1.0 MiB; the sender sent 2.0 MiB"
    )
    await expect(view.locator("#body-size")).to_contain_text("2.0 MiB received, 1.0 MiB kept")
    await expect(view.locator("#curl-truncated")).to_contain_text("a replay sends a truncated body")
    await expect(view.locator("#curl-file")).to_be_visible()
    assert len(await view.content()) < 100_000
    assert await view.evaluate("document.documentElement.scrollHeight") < 10_000
    await fits(view)
    await shot(view, tmp_path, f"hit-large-{view.viewport_size['width']}")

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    async with view.expect_download() as info:
        await view.click("#body-download")
    download = await info.value
    assert download.suggested_filename == f"hit-{hit_id}.body"
    await download.save_as(downloads / download.suggested_filename)
    assert (downloads / download.suggested_filename).read_bytes() == sent[:MIB]

    # Copy as curl, run where the download is: the stored megabyte is sent again.
    curl = (await view.text_content("#curl")) or ""
    assert f"--data-binary @hit-{hit_id}.body" in curl
    assert shutil.which("curl"), "the replay check runs the copied command with curl"
    proc = await asyncio.create_subprocess_shell(
        curl + " --silent --show-error --fail", cwd=downloads, stdout=asyncio.subprocess.PIPE
    )
    assert await asyncio.wait_for(proc.wait(), 60) == 0, curl
    replayed = (await api_hits(server.management, endpoint["id"]))[0]
    assert replayed["id"] != hit_id
    assert replayed["body_size"] == MIB
    _, whole = await api_get(server.management, f"/api/hits/{replayed['id']}")
    body = whole.get("body_text", "").encode() or base64.b64decode(whole["body_base64"])
    assert body == sent[:MIB]


async def test_newer_older_and_deleting_a_hit(server: Bases, view: Any, tmp_path: Path) -> None:
    expect = playwright_expect()
    endpoint = await create_endpoint(server.management, "walk")
    capture = endpoint["capture_url"]
    oldest = await fire(capture + "?click_id=w1")
    middle = await fire(capture + "?click_id=w2")
    newest = await fire(capture + "?click_id=w3")
    await sign_in(view, server.management, f"/hits/{middle}")

    await view.click("#hit-older")
    await view.wait_for_url(f"**/hits/{oldest}")
    await expect(view.locator("#hit-older")).to_have_count(0)
    await view.click("#hit-newer")
    await view.wait_for_url(f"**/hits/{middle}")
    await view.click("#hit-newer")
    await view.wait_for_url(f"**/hits/{newest}")
    await expect(view.locator("#hit-newer")).to_have_count(0)
    await fits(view)

    # Delete the newest: confirm, then the next one down the list is shown.
    await view.check("#delete-hit-form input[name=confirm]")
    accept_next_dialog(view)
    await view.click("#delete-hit-form button[type=submit]")
    await view.wait_for_url(f"**/hits/{middle}?deleted=1")
    await expect(view.get_by_role("status")).to_contain_text("Hit deleted")
    await expect(view.locator("#hit-newer")).to_have_count(0)
    status, _ = await api_get(server.management, f"/api/hits/{newest}")
    assert status == 404
    assert [h["id"] for h in await api_hits(server.management, endpoint["id"])] == [
        middle,
        oldest,
    ]
    await shot(view, tmp_path, f"hit-deleted-{view.viewport_size['width']}")


async def test_settings_form_json_editor_and_reference(
    server: Bases, view: Any, tmp_path: Path
) -> None:
    expect = playwright_expect()
    endpoint = await create_endpoint(server.management, "shop", {"rate_limit_per_s": 5})
    url = f"/endpoints/{endpoint['id']}/settings"
    await sign_in(view, server.management, url)
    await fits(view)
    await shot(view, tmp_path, f"settings-{view.viewport_size['width']}")

    await view.select_option("#f-preset", "binom")
    await view.fill("#f-click_id_param", "cnv_id")
    await view.select_option("#f-dedupe_scope", "click_id")
    await view.fill("#f-dedupe_window", "24h")
    await view.fill("#f-allowed_ips", "198.51.100.0/24\n192.0.2.7")
    await view.fill("#f-secret_value", "s3cr3t")
    await view.select_option("#f-secret_in", "header")
    await view.fill("#f-secret_name", "X-Secret")
    await view.fill("#f-expected_interval", "6h")
    await view.fill("#f-forward_url", "https://tracker.example/pb?c={cnv_id}")
    await view.click("#settings-form button[type=submit]")
    await view.wait_for_url("**saved=1")
    await expect(view.get_by_role("status")).to_have_text("Saved.")
    _, saved = await api_get(server.management, f"/api/endpoints/{endpoint['id']}")
    settings = saved["settings"]
    assert settings["preset"] == "binom"
    assert settings["click_id_param"] == "cnv_id"
    assert settings["dedupe"] == {"scope": "click_id", "window": "24h"}
    assert settings["allowed_ips"] == ["198.51.100.0/24", "192.0.2.7"]
    assert settings["secret"] == {"value": "s3cr3t", "header": "X-Secret"}
    assert settings["expected_interval"] == "6h"
    assert settings["forward_url"] == "https://tracker.example/pb?c={cnv_id}"
    assert settings["rate_limit_per_s"] == 5  # not on the form: kept
    await expect(view.locator("#f-dedupe_window")).to_have_value("24h")

    # A refusal names the field, beside it, and keeps what was typed.
    await view.fill("#f-dedupe_window", "soon")
    await view.click("#settings-form button[type=submit]")
    await expect(view.locator("#settings-error")).to_contain_text("dedupe.window: must be")
    await expect(view.locator("#f-dedupe_window")).to_have_attribute("aria-invalid", "true")
    await expect(view.locator("#f-dedupe_window")).to_have_value("soon")
    await fits(view)
    await shot(view, tmp_path, f"settings-error-{view.viewport_size['width']}")

    # The JSON editor, folded away, replaces the whole document.
    await view.goto(server.management + url)
    await expect(view.locator("#settings-json-form textarea")).to_be_hidden()
    await view.click("#advanced summary")
    await view.fill("#settings-json-form textarea", '{"retention_days": 7}')
    await view.click("#settings-json-form button[type=submit]")
    await view.wait_for_url("**saved=1")
    _, saved = await api_get(server.management, f"/api/endpoints/{endpoint['id']}")
    assert saved["settings"] == {"retention_days": 7}
    await expect(view.locator("#f-click_id_param")).to_have_value("")

    # The settings reference is a page of this server.
    await view.click("#rules-link")
    await view.wait_for_url("**/docs/rules")
    await expect(view.locator("#settings-document")).to_have_text("Settings document")
    await expect(view.locator("#operational-keys")).to_be_visible()
    await fits(view)


async def test_clearing_an_endpoints_hits(server: Bases, view: Any) -> None:
    expect = playwright_expect()
    endpoint = await create_endpoint(server.management, "clear")
    for n in range(3):
        await fire(endpoint["capture_url"] + f"?click_id=c{n}")
    await sign_in(view, server.management, f"/endpoints/{endpoint['id']}/settings")
    await view.check("#clear-form input[name=confirm]")
    accept_next_dialog(view)
    await view.click("#clear-form button[type=submit]")
    await view.wait_for_url("**cleared=3")
    await expect(view.locator("#cleared")).to_have_text("Deleted 3 hits.")
    assert await api_hits(server.management, endpoint["id"]) == []
    # A click id seen before the clear counts as new.
    again = await fire(endpoint["capture_url"] + "?click_id=c0")
    _, hit = await api_get(server.management, f"/api/hits/{again}")
    assert hit["flags"] == []
    await fits(view)
