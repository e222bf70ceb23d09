"""The endpoint page's list and what surrounds every page, through the aiohttp client:
what arrived and why a row is flagged, an invalid filter, the export button's route,
breadcrumbs, error pages inside the layout, and the favicon."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from aiohttp.test_utils import TestClient

from monitor.web.views import present
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.signin import sign_in

HTML = {"Accept": "text/html,application/xhtml+xml"}


async def fire(capture: CaptureClient, endpoint: dict[str, Any], tail: str = "", **kw: Any) -> str:
    resp = await capture.request(kw.pop("method", "GET"), capture_path(endpoint) + tail, **kw)
    assert resp.status == 200, await resp.text()
    return resp.headers["X-Postback-Monitor-Hit-Id"]


def row_of(page: str, hit_id: str) -> str:
    match = re.search(rf'<tr data-hit-id="{hit_id}".*?</tr>', page, re.S)
    assert match, f"no row for {hit_id}"
    return match.group(0)


async def test_rows_show_what_arrived_and_why_flagged(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("rows", settings={"required_params": ["click_id"]})
    missing = await fire(capture, endpoint, "/conv?event=sale&payout=%7Bpayout%7D")
    posted = await fire(capture, endpoint, method="POST", data={"click_id": "<b>x</b>"})
    page = await (await client.get(f"/endpoints/{endpoint['id']}")).text()

    row = row_of(page, missing)
    # The path after the token, the query decoded; never the capture token itself.
    assert "/conv?event=sale&amp;payout={payout}" in row
    assert endpoint["capture_url"].rsplit("/", 1)[1] not in row
    # The reason is text in the row, not only a tooltip.
    reasons = re.findall(r'<span class="reason">([^<]+)</span>', row)
    assert len(reasons) == 2
    assert any("click_id" in r for r in reasons) and any("{payout}" in r for r in reasons)
    assert "title=" not in row.split('class="flags-cell"')[1]

    row = row_of(page, posted)
    assert "body: click_id=&lt;b&gt;x&lt;/b&gt;" in row  # escaped, as every captured value

    rows = await (await client.get(f"/endpoints/{endpoint['id']}/rows")).text()
    assert "/conv?event=sale&amp;payout={payout}" in row_of(rows, missing)  # live rows too


def test_arrived_preview_is_one_bounded_line() -> None:
    hit = {"path": "/p/TOKEN", "params": [], "query_string": "", "body_params": [],
           "body_size": 0}  # fmt: skip
    assert present.arrived(hit) == "(nothing: no path, query or body)"
    hit = {**hit, "params": [["a", "x" * 500]], "query_string": "a=" + "x" * 500}
    text = present.arrived(hit)
    assert text.startswith("?a=xxx") and text.endswith("…")
    assert len(text) == present.ARRIVED_PREVIEW_CHARS
    assert present.arrived({**hit, "params": [], "body_size": 12}) == (
        "?a=" + "x" * (present.ARRIVED_PREVIEW_CHARS - 4) + "…"
    )
    raw = {**hit, "params": [], "query_string": "", "body_size": 12}
    assert present.arrived(raw) == "body: 12 bytes"


async def test_an_invalid_filter_lists_and_streams_nothing(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("bad filter")
    hit = await fire(capture, endpoint, "?click_id=a")
    resp = await client.get(f"/endpoints/{endpoint['id']}?since=2026-13-45T99:00")
    assert resp.status == 400
    page = await resp.text()
    assert 'role="alert"' in page and "since" in page
    assert hit not in page
    assert "data-live=" not in page and "data-rows=" not in page
    assert 'id="export-csv"' not in page
    assert "correct the filter" in page


async def test_export_button_streams_the_filtered_hits_for_a_signed_in_browser(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint("export")
    clean = await fire(capture, endpoint, "?click_id=c-1&payout=2")
    flagged = await fire(capture, endpoint, "?click_id=%7Bclick%7D&payout=1")
    base = f"/endpoints/{endpoint['id']}"
    # Not signed in: sent to sign-in like any page.
    resp = await client.get(base + "/export?format=csv", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")

    await sign_in(client)
    page = await (await client.get(base + "?flag=any")).text()
    link = re.search(r'href="([^"]+)" id="export-csv"', page)
    assert link
    resp = await client.get(link.group(1).replace("&amp;", "&"))
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["id"] for r in rows] == [flagged]

    link = re.search(r'href="([^"]+)" id="export-ndjson"', page)
    assert link
    resp = await client.get(link.group(1).replace("&amp;", "&").replace("flag=any", ""))
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert [h["id"] for h in lines] == [flagged, clean]

    assert (await client.get(base + "/export?format=xml")).status == 400
    assert (await client.get(base + "/export?since=2026-13-45")).status == 400
    # The API stays bearer-only: the session cookie opens no /api/ route.
    resp = await client.get(f"/api{base}/export?format=csv")
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
    assert (await client.get(f"/api{base}/export?format=csv", headers=AUTH)).status == 200


async def test_breadcrumbs_name_where_you_are(client: TestClient, make_endpoint: Any) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("Crumb <b>name</b>")
    page = await (await client.get(f"/endpoints/{endpoint['id']}")).text()
    crumbs = re.search(r'<nav class="crumbs" aria-label="Breadcrumb">(.*?)</nav>', page, re.S)
    assert crumbs
    assert '<a href="/endpoints">Endpoints</a>' in crumbs.group(1)
    assert '<span aria-current="page">Crumb &lt;b&gt;name&lt;/b&gt;</span>' in crumbs.group(1)
    listing = await (await client.get("/endpoints")).text()
    assert '<span aria-current="page">Endpoints</span>' in listing
    tester = await (await client.get("/tester")).text()
    assert '<span aria-current="page">Tester</span>' in tester


async def test_page_errors_render_inside_the_layout(client: TestClient) -> None:
    await sign_in(client)
    cases = (
        ("/no/such/page", 404),
        ("/endpoints/999", 404),
        ("/logout", 405),
        ("/endpoints/1/export?format=xml", 400),
    )
    for path, status in cases:
        resp = await client.get(path, headers=HTML)
        assert resp.status == status, path
        assert resp.content_type == "text/html"
        page = await resp.text()
        assert 'class="top"' in page and 'id="error-page"' in page, path  # base.html
        assert 'href="/endpoints" id="back"' in page
        assert 'aria-label="Breadcrumb"' in page
        assert resp.headers["Content-Security-Policy"]
    resp = await client.get("/logout", headers=HTML)
    assert resp.headers["Allow"] == "POST"
    # Captured text in a message stays text.
    page = await (await client.get("/hits/<script>x", headers=HTML)).text()
    assert "<script>x" not in page and "&lt;script&gt;x" in page
    # Not a browser: plain text, as before; the API keeps its JSON errors.
    resp = await client.get("/no/such/page")
    assert resp.status == 404 and resp.content_type == "text/plain"
    resp = await client.get("/api/no/such", headers={**AUTH, **HTML})
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_favicon_needs_no_sign_in(client: TestClient) -> None:
    for path in ("/favicon.ico", "/static/favicon.svg"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 200, path
        assert resp.content_type == "image/svg+xml"
        assert (await resp.text()).startswith("<svg")
    page = await (await client.get("/login")).text()
    assert re.search(r'<link rel="icon" type="image/svg\+xml" href="/static/favicon\.svg', page)


async def test_filter_times_are_kept_as_the_inputs_utc_values(
    client: TestClient, make_endpoint: Any
) -> None:
    """The page script reads the inputs as UTC and shows them in local time, so any
    accepted form of a time comes back as one: an offset is converted, not dropped."""
    await sign_in(client)
    endpoint = await make_endpoint("times")
    page = await (
        await client.get(
            f"/endpoints/{endpoint['id']}",
            params={"since": "2026-01-01T12:00:00+02:00", "until": "2026-01-02T08:30"},
        )
    ).text()
    assert 'name="since" step="1" value="2026-01-01T10:00:00"' in page
    assert 'name="until" step="1" value="2026-01-02T08:30:00"' in page
    assert "since=2026-01-01T10%3A00%3A00" in page  # the export and live links agree
