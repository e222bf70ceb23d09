"""Every page at a phone's width and at a desktop's, and the endpoint page's list in
real Chromium: what arrived and why a row is flagged, live rows announced, times in
the browser's time zone, an invalid filter, the export button, and the test curl
line's fresh click id.

A media buyer checks postbacks from a phone: at 390 px no page may scroll sideways;
wide tables scroll inside their own box and long URLs end in an ellipsis beside a
copy button that stays in view.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.conftest import AUTH
from tests.helpers.browser import (
    DESKTOP,
    PHONE,
    Bases,
    api_hits,
    fire,
    page_width,
    playwright_expect,
    sign_in,
)

LONG_NAME = "Everflow → Voluum main tracker for the Brazil campaigns (iOS, Android)"
# India has no daylight saving: its offset is the same all year, so the test's
# expected local times do not depend on the date it runs.
TIME_ZONE = "Asia/Kolkata"
IST = timedelta(hours=5, minutes=30)
HIT_CRUMB = re.compile(r"^Hit \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
# A relative time ("3 s ago") has the local and the UTC time in its title.
AGO_TITLE = re.compile(r"^\d{4}-.+ GMT\+5:30 \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)$")


async def snap(page: Any, tmp_path: Path, name: str) -> None:
    """A screenshot to look at when a layout check fails; never one of the README's."""
    await page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


async def make_endpoint(base: str, name: str, **fields: Any) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(f"{base}/api/endpoints", json={"name": name, **fields}) as resp:
            assert resp.status == 201, await resp.text()
            endpoint: dict[str, Any] = await resp.json()
            return endpoint


async def seed(server: Bases) -> tuple[dict[str, Any], dict[str, str]]:
    """An endpoint with a long name that forwards, and hits that make rows wide: a
    long query, a missing required param, a POST body."""
    # It forwards (to an address the outbound guard refuses, so each forward fails at
    # once): the list has its Forward column and the forwards page its attempts.
    settings = {
        "preset": "everflow",
        "required_params": ["sub1"],
        "forward_url": "http://127.0.0.1:9/postback?cid={click_id}&payout={payout}",
        "forward_max_attempts": 1,
    }
    endpoint = await make_endpoint(server.management, LONG_NAME, settings=settings)
    url = endpoint["capture_url"]
    hits = {
        "long": await fire(url + "/conversions/postback?click_id=" + "a" * 120 + "&payout=2.50"),
        "missing": await fire(url + "?event=sale&payout=1.00"),
        "posted": await fire(url, method="POST", data={"click_id": "b-1", "sub1": "x"}),
    }
    return endpoint, hits


def every_page(base: str, endpoint: dict[str, Any], hits: dict[str, str]) -> dict[str, str]:
    ident = endpoint["id"]
    return {
        "endpoints": f"{base}/endpoints",
        "endpoint": f"{base}/endpoints/{ident}",
        "endpoint-filtered": f"{base}/endpoints/{ident}?flag=any",
        "hit": f"{base}/hits/{hits['long']}",
        "settings": f"{base}/endpoints/{ident}/settings",
        "forwards": f"{base}/hits/{hits['missing']}/forwards",
        "tester": f"{base}/tester",
        "audit": f"{base}/audit",
        "reference": f"{base}/docs/rules",
        "not-found": f"{base}/no/such/page",
        "bad-filter": f"{base}/endpoints/{ident}?since=2026-13-45T99:00",
    }


# What a curious user opens: it must fit too.
OPEN_DETAILS = "() => document.querySelectorAll('details').forEach(d => { d.open = true; })"
# Each wide table sits in a box no wider than the page that scrolls sideways itself.
TABLE_BOXES = """() => Array.from(document.querySelectorAll("table")).map(t => {
  const box = t.closest(".table-scroll") || t;
  const style = getComputedStyle(box);
  return {id: t.id, right: box.getBoundingClientRect().right, overflow: style.overflowX,
          scrolls: box.scrollWidth > box.clientWidth};
})"""
COPY_BOXES = """() => Array.from(document.querySelectorAll(".copyable")).map(c => {
  const code = c.querySelector("code"), button = c.querySelector("button");
  const codeBox = code.getBoundingClientRect(), buttonBox = button.getBoundingClientRect();
  const style = getComputedStyle(code);
  const textHeight = code.clientHeight - parseFloat(style.paddingTop)
    - parseFloat(style.paddingBottom);
  return {id: code.id, lines: Math.round(textHeight / parseFloat(style.lineHeight)),
          cut: code.scrollWidth > code.clientWidth, ellipsis: style.textOverflow,
          buttonRight: buttonBox.right, buttonWidth: buttonBox.width,
          sameRow: Math.abs(codeBox.top + codeBox.bottom - buttonBox.top - buttonBox.bottom) < 4};
})"""
HIT_CARDS = """() => Array.from(document.querySelectorAll("#hit-rows tr")).map(tr => {
  const reason = tr.querySelector(".reason");
  return {right: tr.getBoundingClientRect().right,
          widest: Math.max(...Array.from(tr.children).map(td => td.getBoundingClientRect().right)),
          reason: reason ? reason.textContent : "",
          reasonWidth: reason ? reason.closest("td").getBoundingClientRect().width : 0};
})"""
HEADER = """() => { const h = document.querySelector("header.top");
  return {right: h.getBoundingClientRect().right, scroll: h.scrollWidth, client: h.clientWidth,
          height: h.getBoundingClientRect().height}; }"""


async def test_every_page_fits_a_phone(server: Bases, phone: Any, tmp_path: Path) -> None:
    endpoint, hits = await seed(server)
    width = PHONE["width"]
    await phone.goto(server.management + "/endpoints")
    assert await page_width(phone) <= width, "sign-in page"
    await snap(phone, tmp_path, "phone-sign-in")
    await sign_in(phone, server.management)
    for name, url in every_page(server.management, endpoint, hits).items():
        await phone.goto(url)
        await phone.evaluate(OPEN_DETAILS)
        await snap(phone, tmp_path, f"phone-{name}")
        assert await page_width(phone) <= width, name
        header = await phone.evaluate(HEADER)
        assert header["right"] <= width and header["scroll"] <= header["client"], (name, header)
        for table in await phone.evaluate(TABLE_BOXES):
            assert table["right"] <= width, (name, table)
            assert table["overflow"] in ("auto", "scroll"), (name, table)
        for box in await phone.evaluate(COPY_BOXES):
            assert box["lines"] == 1 and box["ellipsis"] == "ellipsis", (name, box)
            assert box["sameRow"] and box["buttonWidth"] > 20, (name, box)
            assert box["buttonRight"] <= width, (name, box)

    # On a phone each hit is a card: nothing of it off screen, the flag reasons read
    # in full at the card's width, not in a column scrolled out of view.
    await phone.goto(f"{server.management}/endpoints/{endpoint['id']}")
    await phone.click(".setup summary")
    tables = {t["id"]: t for t in await phone.evaluate(TABLE_BOXES)}
    assert not tables["hits"]["scrolls"]
    cards = await phone.evaluate(HIT_CARDS)
    assert len(cards) == len(hits)
    for card in cards:
        assert card["right"] <= width and card["widest"] <= width, card
    reasons = [c for c in cards if c["reason"]]
    assert reasons and all(c["reasonWidth"] > width / 2 for c in reasons), reasons
    capture = next(b for b in await phone.evaluate(COPY_BOXES) if b["id"] == "capture-url")
    assert capture["cut"], "a capture URL longer than a phone is cut with an ellipsis"
    # A tap on the cut URL shows it whole; the copy button still copies it all.
    await phone.tap("#capture-url")
    whole = await phone.evaluate(
        "() => { const c = document.getElementById('capture-url');"
        " return c.scrollWidth <= c.clientWidth && c.getBoundingClientRect().height > 30; }"
    )
    assert whole
    assert await page_width(phone) <= width

    # The tester's report: a long URL's flags and the JSON report fit too.
    await phone.goto(server.management + "/tester")
    await phone.fill("#tester-form input[name=url]", endpoint["capture_url"] + "?cid={" + "x" * 90)
    await phone.check("#tester-form input[name=dry_run]")
    await phone.click("#tester-form button[type=submit]")
    await playwright_expect()(phone.locator("#tester-flags")).to_be_visible()
    await phone.evaluate(OPEN_DETAILS)
    await snap(phone, tmp_path, "phone-tester-report")
    assert await page_width(phone) <= width

    # Breadcrumbs name where you are, also deep down and on error pages.
    await phone.goto(f"{server.management}/hits/{hits['missing']}/forwards")
    crumbs = phone.locator("nav.crumbs li")
    await playwright_expect()(crumbs).to_have_text(["Endpoints", LONG_NAME, HIT_CRUMB, "Forwards"])
    await phone.click(f"nav.crumbs a[href='/endpoints/{endpoint['id']}']")
    await phone.wait_for_url(f"**/endpoints/{endpoint['id']}")
    response = await phone.goto(server.management + "/no/such/page")
    assert response is not None and response.status == 404
    await playwright_expect()(phone.locator("header.top nav")).to_be_visible()
    await phone.click("#back")
    await phone.wait_for_url("**/endpoints")


async def test_every_page_keeps_the_desktop_layout(
    server: Bases, page: Any, tmp_path: Path
) -> None:
    endpoint, hits = await seed(server)
    width = DESKTOP["width"]
    await page.goto(server.management + "/endpoints")
    assert await page_width(page) <= width, "sign-in page"
    await sign_in(page, server.management)
    for name, url in every_page(server.management, endpoint, hits).items():
        await page.goto(url)
        await page.evaluate(OPEN_DETAILS)
        await snap(page, tmp_path, f"desktop-{name}")
        assert await page_width(page) <= width, name
        header = await page.evaluate(HEADER)
        assert header["height"] < 60, (name, header)  # brand and nav on one line
        displays = await page.evaluate(
            "() => Array.from(document.querySelectorAll('table.list'))"
            ".map(t => getComputedStyle(t).display)"
        )
        assert set(displays) <= {"table"}, (name, displays)  # no phone box on a desktop
        for box in await page.evaluate(COPY_BOXES):
            assert box["sameRow"], (name, box)
            if box["id"] == "capture-url" or box["id"].startswith("url-"):
                assert not box["cut"], (name, box)  # a capture URL fits whole here
    # The hit list fills the content width, every column on screen without scrolling.
    await page.goto(f"{server.management}/endpoints/{endpoint['id']}")
    await page.click(".setup summary")
    table = await page.evaluate(
        "() => { const t = document.getElementById('hits'), m = document.querySelector('main');"
        " return {table: t.getBoundingClientRect().width, main: m.clientWidth,"
        " scrolls: t.parentElement.scrollWidth > t.parentElement.clientWidth}; }"
    )
    assert table["table"] >= table["main"] - 40 and not table["scrolls"], table


async def test_rows_explain_flags_and_arrive_live_in_local_time(
    server: Bases, page: Any, tmp_path: Path
) -> None:
    expect = playwright_expect()
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Emulation.setTimezoneOverride", {"timezoneId": TIME_ZONE})
    base = server.management
    endpoint = await make_endpoint(base, "live", settings={"required_params": ["click_id"]})
    before = await fire(endpoint["capture_url"] + "?click_id=early")
    await asyncio.sleep(1.1)  # the filter below starts at a whole second after this hit
    await sign_in(page, base, f"/endpoints/{endpoint['id']}")
    await expect(page.locator("#live-state")).to_have_text("live")

    missing = await fire(endpoint["capture_url"] + "/conv?event=sale&payout=%7Bpayout%7D")
    row = page.locator(f'tr[data-hit-id="{missing}"]')
    await expect(row).to_be_visible()
    # What arrived and why it is flagged, as text in the row (not a hover tooltip).
    await expect(row.locator("td.arrived")).to_have_text("/conv?event=sale&payout={payout}")
    await expect(row.locator(".reason").first).to_be_visible()
    await expect(row.locator(".flags-cell")).to_contain_text("click_id")
    await expect(row.locator(".flags-cell")).to_contain_text("{payout}")
    # Screen readers hear about it.
    await expect(page.locator("#live-announce")).to_have_text("1 new hit, 1 flagged.")
    await expect(page.locator("#live-announce")).to_have_attribute("aria-live", "polite")

    # Times: local text, UTC on hover, on rows from the page and rows that came live.
    stored = {h["id"]: h for h in await api_hits(base, endpoint["id"])}
    for hit_id in (before, missing):
        received = datetime.fromisoformat(stored[hit_id]["received_at"])
        time = page.locator(f'tr[data-hit-id="{hit_id}"] time')
        local = (received + IST).strftime("%Y-%m-%d %H:%M:%S")
        await expect(time).to_have_text(f"{local} GMT+5:30")
        await expect(time).to_have_attribute("title", received.strftime("%Y-%m-%d %H:%M:%S UTC"))
    await expect(page.locator("#summary time[data-ago]")).to_have_attribute("title", AGO_TITLE)
    await snap(page, tmp_path, "endpoint-local-times")

    # The filter's From is local time in the input and UTC in the URL.
    await expect(page.locator("#filters label", has_text="From")).to_contain_text(
        "local time, UTC+05:30"
    )
    received = datetime.fromisoformat(stored[missing]["received_at"]).replace(microsecond=0)
    since_local = received + IST  # one second or less before the later hit
    await page.fill("#filters input[name=since]", since_local.strftime("%Y-%m-%dT%H:%M:%S"))
    await page.click("#filters button[type=submit]")
    await page.wait_for_url("**since=**")
    since = parse_qs(urlsplit(page.url).query)["since"]
    assert since == [received.strftime("%Y-%m-%dT%H:%M:%S")]
    await expect(page.locator("#hit-rows tr")).to_have_count(1)
    await expect(page.locator("#hit-rows tr")).to_have_attribute("data-hit-id", missing)
    # A datetime-local input's value is normalized: zero seconds are left out.
    form = "%Y-%m-%dT%H:%M" if since_local.second == 0 else "%Y-%m-%dT%H:%M:%S"
    shown = since_local.strftime(form)
    await expect(page.locator("#filters input[name=since]")).to_have_value(shown)


async def test_an_invalid_filter_shows_the_error_and_no_hits(server: Bases, page: Any) -> None:
    expect = playwright_expect()
    base = server.management
    endpoint = await make_endpoint(base, "bad filter")
    await fire(endpoint["capture_url"] + "?click_id=a")
    await sign_in(page, base)
    response = await page.goto(f"{base}/endpoints/{endpoint['id']}?since=2026-13-45T99:00")
    assert response is not None and response.status == 400
    await expect(page.locator(".error[role=alert]")).to_contain_text("since")
    await expect(page.locator("#no-hits")).to_be_visible()
    await fire(endpoint["capture_url"] + "?click_id=b")
    await page.wait_for_timeout(1500)  # a live page would have fetched it by now
    await expect(page.locator("#hit-rows tr")).to_have_count(0)
    await expect(page.locator("#live-bar")).to_be_hidden()
    await expect(page.locator("#exports")).to_have_count(0)


async def test_export_button_and_test_curl_with_fresh_click_ids(
    server: Bases, page: Any, tmp_path: Path
) -> None:
    expect = playwright_expect()
    base = server.management
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    endpoint = await make_endpoint(base, "export")
    clean = await fire(endpoint["capture_url"] + "?click_id=c-1&payout=2")
    flagged = await fire(endpoint["capture_url"] + "?click_id=%7Bclick%7D&payout=1")
    await sign_in(page, base, f"/endpoints/{endpoint['id']}")

    # Export what the filter shows, signed in with the page's session only.
    await page.select_option("#filters select[name=flag]", "any")
    await page.click("#filters button[type=submit]")
    await page.wait_for_url("**flag=any**")
    async with page.expect_download() as info:
        await page.click("#export-csv")
    download = await info.value
    path = tmp_path / download.suggested_filename
    await download.save_as(path)
    assert download.suggested_filename == f"endpoint-{endpoint['id']}-hits.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [r["id"] for r in rows] == [flagged]
    async with page.expect_download() as info:
        await page.click("#export-ndjson")
    ndjson = tmp_path / "hits.ndjson"
    await (await info.value).save_as(ndjson)
    assert len(ndjson.read_text().splitlines()) == 1

    # The test curl: each copy gets a new click id, so two pasted commands are no duplicates.
    await page.goto(f"{base}/endpoints/{endpoint['id']}")
    await page.click(".setup summary")
    copied = []
    for _ in range(2):
        shown = await page.text_content("#test-curl")
        await page.click('button[data-copy="test-curl"]')
        await expect(page.locator('button[data-copy="test-curl"]')).to_have_text("Copied")
        copied.append(await page.evaluate("navigator.clipboard.readText()"))
        assert copied[-1] == shown
        await expect(page.locator("#test-curl")).not_to_have_text(shown or "")
    assert copied[0] != copied[1]
    assert shutil.which("curl"), "the copied commands are run with curl"
    for command in copied:
        proc = await asyncio.create_subprocess_shell(command + " --silent --fail")
        assert await asyncio.wait_for(proc.wait(), 30) == 0, command
    hits = await api_hits(base, endpoint["id"])
    tests = [h for h in hits if h["id"] not in (clean, flagged)]
    assert len(tests) == 2
    assert all(h["flags"] == [] for h in tests), tests  # no duplicate_click_id
