"""Reconciliation in the real browser (issue #15): an endpoint made in the pages gets
postbacks (one posted twice, one with another amount, one the network never
reported), a network's export is uploaded, its columns detected in the page and
confirmed, the run's summary and tabs read, an item followed to its hit; the upload
and result pages fit a phone."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config
from tests.helpers.browser import Bases, fire, page_width, playwright_expect, shot, sign_in

# An Everflow conversion export: the page should say so and map its columns.
HEADER = "transaction_id,conversion_unix_timestamp,event_name,payout,currency_id,adv1"
# The From/To inputs take local time; one hour either side of now, as the browser sees it.
LOCAL_INPUT = """(offset) => {
  const d = new Date(Date.now() + offset * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" +
    p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
}"""


@pytest.fixture
def server_config(server_config: Config, request: pytest.FixtureRequest) -> Config:
    """A test may ask for a cap on reports (``indirect`` parametrization); the others
    keep the default, which the screenshots show."""
    cap = getattr(request, "param", None)
    return server_config if cap is None else server_config.replace(reconcile_max_bytes=cap)


def everflow_report() -> bytes:
    at = int(time.time()) - 180
    rows = [
        HEADER,
        f"c1,{at},sale,10.00,USD,",
        f"c2,{at},sale,7.00,USD,",  # captured with 5: an amount mismatch
        f"c3,{at},sale,3.00,USD,",  # posted back twice: a duplicate
        f"c8,{at},sale,4.00,USD,",  # never posted back: missing
    ]
    return ("\n".join(rows) + "\n").encode()


async def make_endpoint(page: Any, base: str) -> tuple[int, str]:
    """Create an endpoint through the form; its id and capture URL."""
    await page.fill("#create-endpoint input[name=name]", "Shop ← Everflow")
    await page.click("#create-endpoint button[type=submit]")
    await page.wait_for_url(re.compile(r".*/endpoints/\d+\?created=1$"))
    ident = int(re.search(r"/endpoints/(\d+)", page.url).group(1))  # type: ignore[union-attr]
    return ident, (await page.locator("#capture-url").text_content()).strip()


async def test_a_report_is_reconciled_through_the_pages(
    server: Bases, page: Any, phone: Any, tmp_path: Path
) -> None:
    expect = playwright_expect()
    # Made before the hits: its conversions are 180 s before this moment, so every
    # delay is 3 min and the seconds the pages take on a slow machine (a report made
    # after them showed "2 min 59 s").
    report = everflow_report()
    await sign_in(page, server.management, "/endpoints")
    endpoint_id, capture_url = await make_endpoint(page, server.management)
    hits = {}
    for click_id, payout in (("c1", "10.00"), ("c2", "5"), ("c3", "3.00"), ("c6", "2")):
        hits[click_id] = await fire(
            f"{capture_url}?click_id={click_id}&event=sale&payout={payout}&currency=USD"
        )
    hits["c3-again"] = await fire(f"{capture_url}?click_id=c3&event=sale&payout=3.00&currency=USD")

    # From the endpoint page to the upload form, the endpoint chosen.
    await page.reload()
    await page.click("#reconcile-link")
    await page.wait_for_url(f"**/reconcile?endpoint={endpoint_id}")
    await expect(page.locator(f'input[name=endpoint_id][value="{endpoint_id}"]')).to_be_checked()
    await expect(page.locator("#column-click_id")).to_have_value("")

    # Choosing the file: the page reads its head and shows the mapping to confirm.
    await page.set_input_files(
        "#report-file",
        files=[{"name": "everflow.csv", "mimeType": "text/csv", "buffer": report}],
    )
    await expect(page.locator("#detect-status")).to_have_text(
        "Detected: Everflow conversion export. Check the columns below."
    )
    for field, column in (
        ("click_id", "transaction_id"),
        ("event", "event_name"),
        ("amount", "payout"),
        ("currency", "currency_id"),
        ("time", "conversion_unix_timestamp"),
    ):
        await expect(page.locator(f"#column-{field}")).to_have_value(column)
    await expect(page.locator("#column-amount option")).to_have_count(len(HEADER.split(",")) + 1)
    for name, offset in (("since", -3600), ("until", 3600)):
        await page.fill(f"input[name={name}]", await page.evaluate(LOCAL_INPUT, offset))
    await page.locator("h1").click()  # no input focused in the screenshot
    await shot(page, tmp_path, "reconcile-upload")

    await page.click("#start-reconcile")
    await page.wait_for_url(re.compile(r".*/reconciliations/\d+$"))
    result_url = page.url
    await expect(page.locator("#run-status")).to_have_text("done")  # refreshes until then
    for key, count in (
        ("report_rows", "4"),
        ("matched", "3"),
        ("missing_postback", "1"),
        ("unexpected_postback", "1"),
        ("amount_mismatch", "1"),
        ("currency_mismatch", "0"),
        ("duplicate_postback", "1"),
        ("unparsed_row", "0"),
    ):
        await expect(page.locator(f"#sum-{key}")).to_have_text(count)
    await expect(page.locator("#run-columns")).to_contain_text("Everflow conversion export")
    await expect(page.locator("#run-delay")).to_contain_text("median 3 min")
    await expect(page.locator("#run-window")).to_contain_text("as chosen")

    # The first tab with items (missing): the report's side only.
    await expect(page.locator("#tab-missing_postback")).to_have_attribute("aria-current", "page")
    await expect(page.locator("#items tbody tr")).to_have_count(1)
    await expect(page.locator("#items tbody tr")).to_contain_text("c8")
    await expect(page.locator("#items tbody tr")).to_contain_text("never captured")
    await page.click("#tab-duplicate_postback")
    await expect(page.locator(f'#items a[href="/hits/{hits["c3-again"]}"]')).to_have_count(1)
    await page.click("#tab-unexpected_postback")
    await expect(page.locator("#items tbody tr")).to_contain_text("c6")
    await page.click("#tab-amount_mismatch")
    row = page.locator("#items tbody tr")
    await expect(row).to_contain_text("7.00 USD")
    await expect(row).to_contain_text("5 USD")
    await shot(page, tmp_path, "reconcile")

    # On a phone, the upload form and the result fit the width.
    await sign_in(phone, server.management, "/reconcile")
    await expect(phone.locator("#runs tbody tr")).to_have_count(1)
    assert await page_width(phone) <= 390
    await shot(phone, tmp_path, "phone-reconcile-upload")
    # A wrong file: the reader's reason, listing long column names, wraps.
    wrong = ("a_long_column_name_without_any_space_" * 3 + ",amount\nx,1\n").encode()
    await phone.set_input_files(
        "#report-file", files=[{"name": "wrong.csv", "mimeType": "text/csv", "buffer": wrong}]
    )
    await expect(phone.locator("#detect-status")).to_contain_text("click id")
    assert await page_width(phone) <= 390
    await phone.goto(result_url + "?kind=amount_mismatch")
    await expect(phone.locator("#items tbody tr")).to_have_count(1)
    assert await page_width(phone) <= 390
    await shot(phone, tmp_path, "phone-reconcile")
    await phone.goto(result_url + "?kind=duplicate_postback")
    assert await page_width(phone) <= 390

    # An item's hit link leads to the captured postback.
    await row.locator("a.hit-link").click()
    await page.wait_for_url(f"**/hits/{hits['c2']}")
    await expect(page.locator("h1")).to_be_visible()

    # Delete, after the confirmation: back to the list, which no longer has the run.
    await page.goto(result_url)
    page.once("dialog", lambda dialog: dialog.accept())
    await page.click("#delete-run button[type=submit]")
    await page.wait_for_url("**/reconcile?deleted=*")
    await expect(page.locator("#run-deleted")).to_be_visible()
    await expect(page.locator("#no-runs")).to_be_visible()


@pytest.mark.parametrize("server_config", [4096], indirect=True)
async def test_a_report_past_the_cap_is_refused_in_the_page_and_by_the_server(
    server: Bases, page: Any
) -> None:
    expect = playwright_expect()
    await sign_in(page, server.management, "/endpoints")
    endpoint_id, _ = await make_endpoint(page, server.management)
    await page.click("#reconcile-link")
    await expect(page.locator("#report-choice label").first).to_contain_text("up to 4.0 KiB")
    big = b"click_id\n" + b"c\n" * 3000
    await page.set_input_files(
        "#report-file", files=[{"name": "big.csv", "mimeType": "text/csv", "buffer": big}]
    )
    status = page.locator("#detect-status")
    await expect(status).to_contain_text("larger than the server takes (4.0 KiB)")
    # Not sent: the page stays, nothing was uploaded.
    await page.click("#start-reconcile")
    await expect(status).to_contain_text("larger than the server takes")
    await expect(page.locator("#report-file")).to_be_focused()
    assert page.url.endswith(f"/reconcile?endpoint={endpoint_id}")
    await expect(page.locator("#reconcile-error")).to_have_count(0)
