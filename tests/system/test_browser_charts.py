"""The charts in real Chromium at a desktop's and a phone's width: the endpoint page's
hits chart against hits stored at known hours (a silent hour is a zero and no bar),
its flags on hover, the payout and delay charts, the range selector, the live update
after a postback, the endpoints page's sparklines, and the delay chart of an endpoint
without the setting drawn from a reconciliation run.

With PBM_UPDATE_SCREENSHOTS=1 the screenshots refresh docs/screenshots/ (charts.png,
phone-charts.png, sparklines.png).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from monitor.rules import SETTINGS_KEYS
from monitor.rules.charts import HOUR, floor_time
from monitor.storage.hit_rows import COPY_COLUMNS, copy_record
from tests.conftest import AUTH
from tests.helpers.browser import Bases, fire, page_width, playwright_expect, shot, sign_in
from tests.helpers.hits import judged_hit
from tests.helpers.reconcile import URL, csv_text, upload
from tests.system.test_browser_list import make_endpoint


async def seed(server: Bases, db: asyncpg.Connection) -> tuple[dict[str, Any], datetime]:
    """Five hours ago: three paid sales and a macro left unreplaced; four hours ago
    nothing; three hours ago two sales in EUR. Each carries its conversion time."""
    settings = {"preset": "generic", "conversion_time_param": "conv_ts"}
    endpoint = await make_endpoint(server.management, "Everflow → tracker", settings=settings)
    await make_endpoint(server.management, "Quiet network")
    hour = floor_time(datetime.now(UTC), HOUR)
    five, three = hour - 5 * HOUR + timedelta(minutes=12), hour - 3 * HOUR + timedelta(minutes=40)
    queries = [
        (f"click_id=s{i}&payout=2.50&currency=USD&conv_ts={int(five.timestamp()) - 30}", five)
        for i in range(3)
    ]
    queries.append(("click_id={clickid}&payout=1&currency=USD", five))
    queries += [
        (f"click_id=e{i}&payout=4&currency=EUR&conv_ts={int(three.timestamp()) - 600}", three)
        for i in range(2)
    ]
    rules = {k: v for k, v in settings.items() if k in SETTINGS_KEYS}
    hits = [judged_hit(endpoint["id"], rules, q, when) for q, when in queries]
    await db.copy_records_to_table(
        "hits", records=[copy_record(h) for h in hits], columns=COPY_COLUMNS
    )
    return endpoint, hour


def bucket(page: Any, start: datetime) -> Any:
    return page.locator(f'#hits-chart g.bucket[data-start="{start.isoformat()}"]')


async def check_hours(page: Any, hour: datetime, total: int) -> None:
    """The 24-hour chart's bars and table against the seeded hits (and ``total``
    with those sent since)."""
    expect = playwright_expect()
    await expect(page.locator("#hits-chart g.bucket")).to_have_count(24)
    busy, silent = bucket(page, hour - 5 * HOUR), bucket(page, hour - 4 * HOUR)
    eur = bucket(page, hour - 3 * HOUR)
    await expect(busy).to_have_attribute("data-hits", "4")
    await expect(busy).to_have_attribute("data-flagged", "1")
    await expect(busy.locator("rect.clean")).to_have_count(1)
    await expect(busy.locator("rect.flagged")).to_have_count(1)
    assert "unreplaced_macro 1" in (await busy.locator("title").text_content() or "")
    await expect(silent).to_have_attribute("data-hits", "0")
    await expect(silent.locator("rect.clean, rect.flagged")).to_have_count(0)  # a gap
    await expect(eur).to_have_attribute("data-hits", "2")
    await expect(page.locator('#hits-chart-summary [data-k="total"]')).to_have_text(str(total))
    # The table says the same in words, for screen readers.
    await page.click("#charts details.chart-numbers summary >> nth=0")
    row = page.locator(f'#hits-chart-table tr[data-start="{(hour - 5 * HOUR).isoformat()}"] td')
    await expect(row).to_have_text([re.compile(r"\d\d:\d\d"), "4", "3", "1", "unreplaced_macro 1"])
    silent_row = page.locator(
        f'#hits-chart-table tr[data-start="{(hour - 4 * HOUR).isoformat()}"] td.num'
    )
    await expect(silent_row).to_have_text(["0", "0", "0"])
    usd = page.locator('svg.payout-chart[data-currency="USD"]')
    eur_chart = page.locator('svg.payout-chart[data-currency="EUR"]')
    five_start, three_start = (hour - 5 * HOUR).isoformat(), (hour - 3 * HOUR).isoformat()
    await expect(usd.locator(f'g[data-start="{five_start}"]')).to_have_attribute("data-sum", "8.50")
    await expect(eur_chart.locator(f'g[data-start="{three_start}"]')).to_have_attribute(
        "data-sum", "8"
    )
    delays = page.locator("#delay-chart tbody tr td.num")
    await expect(delays).to_have_text(["3", "0", "2", "0", "0", "0", "0", "0"])
    await page.click("#charts details.chart-numbers summary >> nth=0")  # closed again


async def test_charts_at_both_widths_follow_the_hits(
    server: Bases, db: asyncpg.Connection, page: Any, phone: Any, tmp_path: Path
) -> None:
    expect = playwright_expect()
    endpoint, hour = await seed(server, db)
    url = f"/endpoints/{endpoint['id']}"
    await sign_in(page, server.management, url)
    await check_hours(page, hour, 6)
    assert await page_width(page) <= 1400
    await shot(page, tmp_path, "charts")

    # A postback now: the newest bar fills without a reload.
    await expect(page.locator("#live-state")).to_have_text("live")
    newest = bucket(page, hour)
    await expect(newest).to_have_attribute("data-hits", "0")
    await fire(endpoint["capture_url"] + "?click_id=now-1&payout=1&currency=USD")
    await expect(bucket(page, hour)).to_have_attribute("data-hits", "1")
    await expect(page.locator('#hits-chart-summary [data-k="total"]')).to_have_text("7")

    # The range selector: an hour by minute, a week by hour.
    await page.click("#chart-range-1h")
    await page.wait_for_url("**chart=1h")
    await expect(page.locator("#hits-chart g.bucket")).to_have_count(60)
    await expect(page.locator('#hits-chart g.bucket[data-hits="1"]')).to_have_count(1)
    await page.click("#chart-range-7d")
    await page.wait_for_url("**chart=7d")
    await expect(page.locator("#hits-chart g.bucket")).to_have_count(168)
    await expect(page.locator('#hits-chart-summary [data-k="total"]')).to_have_text("7")

    # The endpoints page: one sparkline per endpoint, hits per hour over 24 hours.
    await page.goto(server.management + "/endpoints")
    counts = ["0"] * 24
    counts[-6], counts[-4], counts[-1] = "4", "2", "1"
    sparks = page.locator("#endpoints svg.sparkline")
    await expect(sparks).to_have_count(2)
    await expect(sparks.nth(0)).to_have_attribute("data-counts", ",".join(counts))
    await expect(sparks.nth(1)).to_have_attribute("data-counts", ",".join(["0"] * 24))
    await expect(sparks.nth(0).locator("rect")).to_have_count(3)
    await shot(page, tmp_path, "sparklines")

    # A phone: the same numbers, nothing scrolls sideways, the chart fits.
    await sign_in(phone, server.management, url)
    await check_hours(phone, hour, 7)
    assert await page_width(phone) <= 390
    box = await phone.locator("#hits-chart").bounding_box()
    assert box is not None and 250 < box["width"] <= 390
    await shot(phone, tmp_path, "phone-charts")
    await phone.goto(server.management + "/endpoints")
    await expect(phone.locator("#endpoints svg.sparkline").nth(0)).to_be_visible()
    assert await page_width(phone) <= 390


async def test_the_delay_chart_from_a_reconciliation_at_both_widths(
    server: Bases, db: asyncpg.Connection, page: Any, phone: Any
) -> None:
    """No conversion_time_param: the chart is the newest run's, with its counts, its
    run named in the caption and the table's accessible name, on a phone too."""
    expect = playwright_expect()
    shop = await make_endpoint(server.management, "Shop ← Everflow")
    other = await make_endpoint(server.management, "Shop ← CAKE")
    received = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    delays_s = {"a": 30, "b": 45, "c": 300, "d": 7200, "e": -90}  # e: before the report
    hits = [judged_hit(shop["id"], {}, f"click_id={c}", received) for c in delays_s]
    hits.append(judged_hit(other["id"], {}, "click_id=f", received))  # 20 min, other
    await db.copy_records_to_table(
        "hits", records=[copy_record(h) for h in hits], columns=COPY_COLUMNS
    )
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    report = csv_text(
        "click_id,time",
        *[f"{c},{(received - timedelta(seconds=d)).strftime(stamp)}" for c, d in delays_s.items()],
        f"f,{(received - timedelta(minutes=20)).strftime(stamp)}",
    )
    async with aiohttp.ClientSession(headers=AUTH) as session:
        options = {"endpoint_ids": [shop["id"], other["id"]]}
        async with session.post(server.management + URL, data=upload(report, options)) as resp:
            assert resp.status == 201, await resp.text()
            run = await resp.json()
    want = ["3", "0", "1", "1", "1", "0", "0", "0"]  # < 1 min (the early one too) ... 1–6 h
    url = f"/endpoints/{shop['id']}"
    for browser, width in ((page, 1400), (phone, 390)):
        await sign_in(browser, server.management, url)
        chart = browser.locator("#delay-chart")
        await expect(chart).to_have_attribute("data-source", "reconciliation")
        await expect(chart.locator("tbody tr td.num")).to_have_text(want)
        await expect(chart.locator("thead th").nth(1)).to_have_text("Conversions")
        await expect(browser.locator("#delay-source")).to_contain_text(
            f"reconciliation run #{run['id']} of {run['finished_at'][:10]}"
        )
        await expect(browser.locator("#delay-source")).to_contain_text("all its endpoints")
        await expect(browser.locator("#delay-source")).to_contain_text("6 matched conversions")
        # The table's accessible name says where the numbers come from.
        name = await chart.evaluate(
            "t => t.getAttribute('aria-labelledby').split(' ')"
            ".map(i => document.getElementById(i).textContent).join(' ')"
        )
        assert f"reconciliation run #{run['id']}" in name, name
        await chart.scroll_into_view_if_needed()
        box = await chart.bounding_box()
        assert box is not None and 0 < box["width"] <= width
        assert await page_width(browser) <= width
    await phone.click("#delay-source a")
    await phone.wait_for_url(f"**/reconciliations/{run['id']}")
