"""The request-bin loop in real Chromium (Debian's, driven by Playwright) against a
real server on a TCP port: sign in, create an endpoint, watch postbacks arrive live,
read flags, filter, open a hit, replay it with curl, and survive an XSS payload.

Screenshots of each main page go to the test's tmp dir; with
PBM_UPDATE_SCREENSHOTS=1 they also refresh docs/screenshots/ for the README.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import AUTH
from tests.helpers.browser import (
    PHONE,
    Bases,
    api_hits,
    fire,
    page_width,
    playwright_expect,
    shot,
    sign_in,
)

XSS_PARAM = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


async def test_request_bin_loop(server: Bases, page: Any, phone: Any, tmp_path: Path) -> None:
    expect = playwright_expect()
    base = server.management
    await page.goto(base + "/endpoints/1")
    await page.wait_for_url("**/login?next=**")
    await shot(page, tmp_path, "sign-in")
    await sign_in(page, base)

    # Create an endpoint with a preset; the page shows what to paste.
    await page.fill("#create-endpoint input[name=name]", "Everflow → my tracker")
    await page.select_option("#create-endpoint select[name=preset]", "everflow")
    await page.click("#create-endpoint button[type=submit]")
    await page.wait_for_url("**/endpoints/*?created=1")
    endpoint_id = int(page.url.split("/endpoints/")[1].split("?")[0])
    capture_url = (await page.text_content("#capture-url")) or ""
    assert capture_url.startswith(f"{server.capture}/p/")
    postback = await page.text_content("#postback-url")
    assert postback == capture_url + "?click_id={transaction_id}&event={event_name}" + (
        "&payout={payout_amount}&sub1={sub1}"
    )
    await expect(page.locator("#live-state")).to_have_text("live")

    # Postbacks appear at the top without a reload.
    first = await fire(capture_url + "?click_id=abc-1&event=sale&payout=12.50&sub1=x")
    row = page.locator(f'tr[data-hit-id="{first}"]')
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("abc-1")
    await expect(row).to_contain_text("12.50")
    await expect(row.locator(".badge")).to_have_text("clean")
    flagged = await fire(capture_url + "?click_id=%7Bclickid%7D&event=sale&payout=1,50")
    flagged_row = page.locator(f'tr[data-hit-id="{flagged}"]')
    await expect(flagged_row.locator(".badge.bad")).to_have_text(
        ["unreplaced_macro", "invalid_amount"]
    )
    await expect(page.locator("#hit-rows tr").first).to_have_attribute("data-hit-id", flagged)
    await expect(page.locator('#summary [data-k="hits_1h"]')).to_have_text("2")
    await expect(page.locator('#summary [data-k="flagged_1h"]')).to_have_text("1")

    # While paused, new hits wait behind a counter.
    await page.click("#live-pause")
    third = await fire(capture_url + "?click_id=abc-3&event=lead", method="POST")
    await expect(page.locator("#live-count")).to_have_text("1")
    await expect(page.locator(f'tr[data-hit-id="{third}"]')).to_have_count(0)
    await page.click("#live-new")
    await expect(page.locator(f'tr[data-hit-id="{third}"]')).to_be_visible()
    await page.click("#live-pause")
    await shot(page, tmp_path, "endpoint")

    # Filter by flag: only the flagged hit is left.
    await page.select_option("#filters select[name=flag]", "unreplaced_macro")
    await page.click("#filters button[type=submit]")
    await page.wait_for_url("**flag=unreplaced_macro**")
    await expect(page.locator("#hit-rows tr")).to_have_count(1)
    await expect(page.locator("#hit-rows tr")).to_have_attribute("data-hit-id", flagged)
    # Live updates respect the filter: a clean hit does not show up here.
    await fire(capture_url + "?click_id=abc-4")
    macro_again = await fire(capture_url + "?click_id=%5BCLICK_ID%5D")
    await expect(page.locator(f'tr[data-hit-id="{macro_again}"]')).to_be_visible()
    await expect(page.locator("#hit-rows tr")).to_have_count(2)

    # Hit detail: the flagged param is highlighted and explained in words.
    await page.click(f'tr[data-hit-id="{flagged}"] a.method')
    await page.wait_for_url(f"**/hits/{flagged}")
    flagged_param = page.locator("#params tr.flagged", has_text="click_id")
    await expect(flagged_param).to_contain_text(
        "Parameter click_id still holds the placeholder {clickid}"
    )
    await expect(page.locator("#params tr.flagged", has_text="payout")).to_contain_text("1,50")
    await expect(page.locator("#flags")).to_contain_text("left a placeholder")
    await expect(page.locator("#hit-url")).to_have_text(
        capture_url + "?click_id=%7Bclickid%7D&event=sale&payout=1,50"
    )
    await shot(page, tmp_path, "hit")

    # Copy as curl, run it: the same request is captured again.
    await page.click('button[data-copy="curl"]')
    await expect(page.locator('button[data-copy="curl"]')).to_have_text("Copied", timeout=5000)
    curl = (await page.text_content("#curl")) or ""
    assert shutil.which("curl"), "the replay check runs the copied command with curl"
    proc = await asyncio.create_subprocess_shell(
        curl + " --silent --show-error --fail", stdout=asyncio.subprocess.PIPE
    )
    assert await asyncio.wait_for(proc.wait(), 30) == 0, curl
    hits = await api_hits(base, endpoint_id)
    original = next(h for h in hits if h["id"] == flagged)
    replayed = hits[0]
    assert replayed["id"] != flagged
    for key in ("method", "path", "query_string", "params", "body_params", "click_id"):
        assert replayed[key] == original[key], key
    assert dict(replayed["headers"])["User-Agent"] == dict(original["headers"])["User-Agent"]

    # A POST with a JSON body replays too.
    posted = await fire(
        capture_url + "/conv?event=purchase",
        method="POST",
        json={"click_id": "j-1", "payout": "3.00", "note": 'it\'s "quoted"'},
    )
    await page.goto(f"{base}/hits/{posted}")
    await expect(page.locator("#body")).to_contain_text('"note": "it\'s \\"quoted\\""')
    proc = await asyncio.create_subprocess_shell(
        (await page.text_content("#curl") or "") + " --silent --fail",
        stdout=asyncio.subprocess.PIPE,
    )
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    hits = await api_hits(base, endpoint_id)
    assert hits[0]["id"] != posted
    async with aiohttp.ClientSession(headers=AUTH) as session:
        bodies = []
        for hit_id in (hits[0]["id"], posted):
            async with session.get(f"{base}/api/hits/{hit_id}") as resp:
                bodies.append(await resp.json())
    assert bodies[0]["body_text"] == bodies[1]["body_text"]
    assert bodies[0]["path"] == bodies[1]["path"]
    assert bodies[0]["content_type"] == bodies[1]["content_type"]

    # Endpoints page and settings: rotate the token (with a confirmation).
    await page.goto(base + "/endpoints")
    await expect(page.locator("#endpoints")).to_contain_text("Everflow → my tracker")
    await shot(page, tmp_path, "endpoints")
    await page.goto(f"{base}/endpoints/{endpoint_id}/settings")
    await shot(page, tmp_path, "settings")

    # The same pages on a phone, for the README; none scrolls sideways.
    await sign_in(phone, base, f"/endpoints/{endpoint_id}")
    for name, path in (
        ("phone-endpoint", f"/endpoints/{endpoint_id}"),
        ("phone-hit", f"/hits/{flagged}"),
        ("phone-settings", f"/endpoints/{endpoint_id}/settings"),
    ):
        await phone.goto(base + path)
        assert await page_width(phone) <= PHONE["width"], name
        await shot(phone, tmp_path, name)
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.check("#rotate-form input[name=confirm]")
    await page.click("#rotate-form button[type=submit]")
    await page.wait_for_url("**rotated=1")
    new_url = await page.text_content("#capture-url")
    assert new_url and new_url != capture_url
    async with aiohttp.ClientSession() as session:
        async with session.get(capture_url) as resp:
            assert resp.status == 404

    # Sign out: pages redirect to sign-in again.
    await page.click("header button[type=submit]")
    await page.wait_for_url("**/login")
    await page.goto(base + "/endpoints")
    await page.wait_for_url("**/login?next=**")


async def test_xss_payload_is_shown_as_text(server: Bases, page: Any) -> None:
    expect = playwright_expect()
    base = server.management
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    await sign_in(page, base)
    await page.fill("#create-endpoint input[name=name]", '<b onmouseover="x()">xss</b>')
    await page.click("#create-endpoint button[type=submit]")
    await page.wait_for_url("**/endpoints/*?created=1")
    capture_url = (await page.text_content("#capture-url")) or ""
    await expect(page.locator("h1")).to_have_text('<b onmouseover="x()">xss</b>')
    await expect(page.locator("#live-state")).to_have_text("live")

    # Arrives live (rows parsed by the page script) and renders as text.
    hit_id = await fire(
        capture_url,
        params={"click_id": XSS_PARAM, "event": "<script>alert(1)</script>"},
        headers={"X-Note": XSS_PARAM},
        data=XSS_PARAM.encode(),
        method="POST",
    )
    row = page.locator(f'tr[data-hit-id="{hit_id}"]')
    await expect(row).to_contain_text(XSS_PARAM)
    await expect(row).to_contain_text("<script>alert(1)</script>")
    await assert_no_script_ran(page, dialogs)
    await page.reload()
    await expect(page.locator(f'tr[data-hit-id="{hit_id}"]')).to_contain_text(XSS_PARAM)
    await assert_no_script_ran(page, dialogs)
    await page.goto(f"{base}/hits/{hit_id}")
    await expect(page.locator("#params")).to_contain_text(XSS_PARAM)
    await expect(page.locator("#headers")).to_contain_text(XSS_PARAM)
    await expect(page.locator("#body")).to_have_text(XSS_PARAM)
    await assert_no_script_ran(page, dialogs)
    await page.goto(f"{base}/endpoints")
    await assert_no_script_ran(page, dialogs)


async def assert_no_script_ran(page: Any, dialogs: list[str]) -> None:
    await page.wait_for_timeout(300)  # an onerror handler would have fired by now
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("main img").count() == 0
    assert await page.locator("main script").count() == 0
    assert not dialogs
