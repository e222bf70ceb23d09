"""The reconciliation pages through the aiohttp client, signed in as a browser: the
upload form and its refusals (values kept), column detection, a run started and
shown (counts, tabs, items linked to their hits), its export and delete, CSRF."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.storage.reconciliations import RunWriter
from monitor.web.appkeys import POOL, RECONCILER
from tests.conftest import CaptureClient, capture_path
from tests.helpers.reconcile import csv_text
from tests.helpers.signin import sign_in

EVERFLOW = b"transaction_id,conversion_unix_timestamp,event_name,payout,currency_id,adv1\n"


def form(
    csrf: str | None, report: bytes | None, filename: str = "report.csv", **fields: Any
) -> aiohttp.FormData:
    """The upload form as a browser posts it, in the page's order: csrf, the choices
    (``endpoint_id`` may be a list), the report and its columns (``column_*``,
    ``detected_columns``). No file chosen: an empty part named ""."""
    data = aiohttp.FormData(default_to_multipart=True)
    if csrf is not None:
        data.add_field("csrf", csrf)
    last = ("column_", "detected_")

    def add(of_report: bool) -> None:
        for name, value in fields.items():
            if name.startswith(last) is of_report:
                for v in value if isinstance(value, list) else [value]:
                    data.add_field(name, str(v))

    add(False)
    if report is not None:
        data.add_field("report", report, filename=filename, content_type="text/csv")
    add(True)
    return data


def uploads_left(config: Config) -> list[str]:
    folder = config.data_dir / "reconciliations"
    return [p.name for p in folder.iterdir()] if folder.exists() else []


async def fire(capture: CaptureClient, endpoint: dict[str, Any], query: str) -> str:
    resp = await capture.get(f"{capture_path(endpoint)}?{query}")
    assert resp.status == 200, await resp.text()
    return resp.headers["X-Postback-Monitor-Hit-Id"]


async def test_the_upload_page_links_and_preselects_the_endpoint(
    client: TestClient, make_endpoint: Any
) -> None:
    a, b = await make_endpoint("Alpha <net>"), await make_endpoint("Beta")
    await sign_in(client)
    endpoint_page = await (await client.get(f"/endpoints/{a['id']}")).text()
    assert f'href="/reconcile?endpoint={a["id"]}"' in endpoint_page
    assert 'href="/reconcile">Reconcile</a>' in endpoint_page  # the header's nav
    page = await (await client.get(f"/reconcile?endpoint={a['id']}")).text()
    assert re.search(rf'value="{a["id"]}" checked', page)
    assert not re.search(rf'value="{b["id"]}" checked', page)
    assert "Alpha &lt;net&gt;" in page
    assert 'enctype="multipart/form-data"' in page
    assert "default to the report's time range" in html.unescape(page)
    assert 'name="amount_tolerance" inputmode="decimal" value="0.01"' in page
    assert "No reconciliations yet" in page
    resp = await client.get("/reconciliations", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/reconcile"


async def test_detect_reads_the_head_of_the_file_as_the_run_would(client: TestClient) -> None:
    csrf = await sign_in(client)
    headers = {"X-CSRF-Token": csrf, "Content-Type": "application/octet-stream"}
    body = EVERFLOW + b"abc,1767225600,sale,1.50,USD,x\n"
    resp = await client.post("/reconcile/detect", data=body, headers=headers)
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    assert doc["detected_format"] == "everflow"
    assert doc["detected_label"] == "Everflow conversion export"
    assert doc["delimiter"] == ","
    assert doc["header"][:2] == ["transaction_id", "conversion_unix_timestamp"]
    assert doc["columns"]["click_id"] == "transaction_id"
    assert doc["columns"]["amount"] == "payout"
    # Not a report: the reader's reason, as JSON for the page script.
    resp = await client.post("/reconcile/detect", data=b"just one column\nx\n", headers=headers)
    assert resp.status == 400
    assert "single column" in (await resp.json())["error"]
    resp = await client.post("/reconcile/detect", data=b"name,size\nx,1\n", headers=headers)
    assert resp.status == 400 and "click id" in (await resp.json())["error"]
    # More than the head is refused; so is a request without the session's CSRF token.
    resp = await client.post("/reconcile/detect", data=b"x" * (64 * 1024 + 1), headers=headers)
    assert resp.status == 413
    resp = await client.post("/reconcile/detect", data=body, headers={"X-CSRF-Token": "nope"})
    assert resp.status == 403 and "error" in await resp.json()


async def test_a_refused_form_comes_back_with_the_reason_and_the_values(
    client: TestClient, make_endpoint: Any, config: Config
) -> None:
    endpoint = await make_endpoint("shop")
    csrf = await sign_in(client)
    report = csv_text("click_id,amount", "c1,2")
    kept = {"since": "2026-01-02T03:04:05", "amount_tolerance": "0.5", "decimal_comma": "1"}

    resp = await client.post("/reconcile", data=form(csrf, report, **kept))
    assert resp.status == 400
    page = await resp.text()
    assert "Choose at least one endpoint" in page and "Choose the file again" in page
    assert 'value="2026-01-02T03:04:05"' in page and 'value="0.5"' in page
    assert re.search(r'name="decimal_comma" value="1"\s+checked', page)

    wrong = form(csrf, report, endpoint_id=endpoint["id"], column_click_id="nope", **kept)
    resp = await client.post("/reconcile", data=wrong)
    assert resp.status == 400
    page = html.unescape(await resp.text())
    assert '"nope" is not a column of the report' in page and "click_id, amount" in page
    assert re.search(rf'value="{endpoint["id"]}" checked', page)
    assert "<option selected>nope</option>" in page  # the chosen column, kept

    no_file = form(csrf, b"", filename="", endpoint_id=endpoint["id"])
    resp = await client.post("/reconcile", data=no_file)
    assert resp.status == 400 and "Choose the report file" in await resp.text()
    resp = await client.post("/reconcile", data=form(csrf, None, endpoint_id=endpoint["id"]))
    assert resp.status == 400 and "Choose the report file" in await resp.text()
    binary = form(csrf, b"\x00\x01\x02binary", endpoint_id=endpoint["id"])
    resp = await client.post("/reconcile", data=binary)
    assert resp.status == 400 and 'role="alert"' in await resp.text()
    bad_time = form(csrf, report, endpoint_id=endpoint["id"], since="yesterday")
    resp = await client.post("/reconcile", data=bad_time)
    assert resp.status == 400 and "since: a time such as" in await resp.text()
    bad_tolerance = form(csrf, report, endpoint_id=endpoint["id"], amount_tolerance="-1")
    resp = await client.post("/reconcile", data=bad_tolerance)
    assert resp.status == 400 and "amount_tolerance: a number from 0 up" in await resp.text()
    gone = form(csrf, report, endpoint_id=[endpoint["id"], 999])
    resp = await client.post("/reconcile", data=gone)
    assert resp.status == 400 and "no endpoint 999" in await resp.text()
    assert uploads_left(config) == []
    listed = await (await client.get("/reconcile")).text()
    assert "No reconciliations yet" in listed


async def test_a_report_over_the_cap_is_refused_in_the_form(
    aiohttp_client: Any, config: Config, db: asyncpg.Connection
) -> None:
    from monitor.server.app import create_app

    small = await aiohttp_client(create_app(config.replace(reconcile_max_bytes=1000)))
    csrf = await sign_in(small)
    await small.post("/endpoints", data={"csrf": csrf, "name": "x"})
    big = csv_text("click_id", *[f"click-{i}" for i in range(200)])
    choices = {"endpoint_id": 1, "since": "2026-01-02T03:04:05", "amount_tolerance": "0.5"}
    resp = await small.post("/reconcile", data=form(csrf, big, **choices))
    assert resp.status == 413
    page = await resp.text()
    assert "report: at most 1000 bytes" in page and "Choose the file again" in page
    # The rest of the body was never read, yet every choice before the report is kept.
    assert re.search(r'value="1" checked', page)
    assert 'value="2026-01-02T03:04:05"' in page and 'value="0.5"' in page
    assert uploads_left(config) == []


async def test_a_form_without_the_csrf_token_is_refused_before_the_file_is_kept(
    client: TestClient, make_endpoint: Any, config: Config
) -> None:
    endpoint = await make_endpoint()
    await sign_in(client)
    report = csv_text("click_id", "c1")
    for csrf in (None, "forged"):
        resp = await client.post("/reconcile", data=form(csrf, report, endpoint_id=endpoint["id"]))
        assert resp.status == 403
    assert uploads_left(config) == []
    assert "No reconciliations yet" in await (await client.get("/reconcile")).text()


async def test_a_run_from_the_form_shows_its_summary_tabs_items_and_exports(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, config: Config
) -> None:
    shop, other = await make_endpoint("shop"), await make_endpoint("other")
    hits = {
        "c1": await fire(capture, shop, "click_id=c1&event=sale&payout=10&currency=USD"),
        "c2": await fire(capture, shop, "click_id=c2&event=sale&payout=5&currency=USD"),
        "c4": await fire(capture, shop, "click_id=c4&event=sale&payout=1&currency=USD"),
        "c4b": await fire(capture, shop, "click_id=c4&event=sale&payout=1&currency=USD"),
        "c6": await fire(capture, shop, "click_id=c6&event=sale&payout=2&currency=USD"),
    }
    t = (datetime.now(UTC) - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = csv_text(
        "click_id,event,amount,currency,time",
        f"c1,sale,10,USD,{t}",
        f"c2,sale,7.00,USD,{t}",
        f"c4,sale,1,USD,{t}",
        f"c8,sale,4,USD,{t}",
        f"c9,sale,abc,USD,{t}",
    )
    csrf = await sign_in(client)
    now = datetime.now(UTC).replace(tzinfo=None)
    window = {
        "since": (now - timedelta(hours=1)).isoformat(timespec="seconds"),
        "until": (now + timedelta(hours=1)).isoformat(timespec="seconds"),
    }
    resp = await client.post(
        "/reconcile",
        data=form(csrf, report, endpoint_id=[shop["id"], other["id"]], **window),
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    location = resp.headers["Location"]
    assert re.fullmatch(r"/reconciliations/\d+", location)
    assert uploads_left(config) == []

    page = await (await client.get(location)).text()
    counts = dict(re.findall(r'id="sum-(\w+)">(?:<span class="badge bad">)?(\d+)', page))
    assert counts == {
        "report_rows": "4",
        "matched": "3",
        "missing_postback": "1",
        "unexpected_postback": "1",
        "amount_mismatch": "1",
        "currency_mismatch": "0",
        "duplicate_postback": "1",
        "unparsed_row": "1",
    }
    assert "median " in page and "longest " in page and "min" in page  # delays in words
    assert "Everflow" not in page and "common column names" in page
    assert ">shop</a>" in page and ">other</a>" in page
    # The result opens on the first kind with items: missing, with no capture.
    assert 'id="tab-missing_postback" aria-current="page"' in page
    assert ">c8<" in page and "never captured" in page
    tabs = dict(re.findall(r'id="tab-(\w+)"[^>]*>[^<]*<span class="count">(\d+)', page))
    assert tabs["amount_mismatch"] == "1" and tabs["currency_mismatch"] == "0"

    amount = await (await client.get(f"{location}?kind=amount_mismatch")).text()
    assert f'href="/hits/{hits["c2"]}"' in amount
    assert "7.00 USD" in amount and "5 USD" in amount
    duplicates = await (await client.get(f"{location}?kind=duplicate_postback")).text()
    assert f'href="/hits/{hits["c4b"]}"' in duplicates
    unexpected = await (await client.get(f"{location}?kind=unexpected_postback")).text()
    assert f'href="/hits/{hits["c6"]}"' in unexpected and "not in the report" in unexpected
    unparsed = await (await client.get(f"{location}?kind=unparsed_row")).text()
    assert "c9,sale,abc" in unparsed and "amount" in unparsed
    assert (await client.get(f"{location}?kind=bogus")).status == 400

    resp = await client.get(f"{location}/export?format=csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert sorted(r["kind"] for r in rows) == sorted(
        ["missing_postback", "unexpected_postback", "amount_mismatch", "duplicate_postback",
         "unparsed_row"]
    )  # fmt: skip
    resp = await client.get(f"{location}/export?format=ndjson")
    assert resp.status == 200 and len((await resp.text()).splitlines()) == 5

    listed = await (await client.get("/reconcile")).text()
    assert f'href="{location}"' in listed and "shop, other" in listed

    # Delete: the CSRF token is required, then the run is gone and the list says so.
    resp = await client.post(f"{location}/delete", data={}, allow_redirects=False)
    assert resp.status == 403
    resp = await client.post(f"{location}/delete", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/reconcile?deleted=")
    assert (await client.get(location)).status == 404
    assert "No reconciliations yet" in await (await client.get("/reconcile")).text()


async def test_a_running_run_refreshes_its_progress_and_a_failed_one_says_why(
    client: TestClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    csrf = await sign_in(client)
    async with client.app[POOL].acquire() as conn:
        writer = await RunWriter.create(conn, [endpoint["id"]], None, None, {}, 1000)
        await writer.progress(120, 250)
        resp = await client.get(f"/reconciliations/{writer.run_id}")
        assert resp.status == 200 and resp.headers["Refresh"] == "1"
        page = await resp.text()
        assert '<progress id="run-bar" max="1000" value="250">' in page
        assert "120 rows so far (25 %)" in page
        assert 'id="delete-run"' not in page
        resp = await client.post(f"/reconciliations/{writer.run_id}/delete", data={"csrf": csrf})
        assert resp.status == 409 and "still running" in await resp.text()
        await writer.fail("columns.amount: <b>gone</b>")
        await writer.close()
    resp = await client.get(f"/reconciliations/{writer.run_id}")
    assert "Refresh" not in resp.headers
    page = await resp.text()
    assert "The run failed: columns.amount: &lt;b&gt;gone&lt;/b&gt;" in page
    assert (await client.get("/reconciliations/99999")).status == 404
    assert (await client.get("/reconciliations/x1")).status == 404


async def test_a_mapping_left_as_detected_lets_the_run_detect_and_name_the_export(
    client: TestClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    csrf = await sign_in(client)
    report = EVERFLOW + b"abc,1767225600,sale,1.50,USD,x\n"
    detected = (
        '{"click_id": "transaction_id", "event": "event_name", "amount": "payout", '
        '"currency": "currency_id", "time": "conversion_unix_timestamp"}'
    )
    columns = {
        "column_click_id": "transaction_id",
        "column_event": "event_name",
        "column_amount": "payout",
        "column_currency": "currency_id",
        "column_time": "conversion_unix_timestamp",
    }
    for chosen, named in (
        ({}, "Everflow conversion export"),  # no script: the selects say "detect"
        (columns, "Everflow conversion export"),  # confirmed as detected
        ({**columns, "column_event": ""}, "the columns you chose"),  # changed
    ):
        data = form(csrf, report, endpoint_id=endpoint["id"], detected_columns=detected, **chosen)
        resp = await client.post("/reconcile", data=data)
        assert resp.status == 200 and "/reconciliations/" in str(resp.url)
        page = await resp.text()
        assert f"(from {named};" in page
        assert ("event ← " in page) is (chosen.get("column_event") != "")


async def test_a_busy_server_refuses_the_form_before_the_upload(
    client: TestClient, make_endpoint: Any, config: Config
) -> None:
    endpoint = await make_endpoint()
    csrf = await sign_in(client)
    client.app[RECONCILER].max_running = 0  # as if two runs were going on
    resp = await client.post(
        "/reconcile", data=form(csrf, b"click_id\nc1\n", endpoint_id=endpoint["id"])
    )
    assert resp.status == 409
    assert "reconciliations are running in this server process" in await resp.text()
    assert uploads_left(config) == []


async def test_items_are_paged_with_a_more_link(client: TestClient, make_endpoint: Any) -> None:
    endpoint = await make_endpoint()
    csrf = await sign_in(client)
    report = csv_text("click_id", *[f"gone-{i:02}" for i in range(55)])
    resp = await client.post("/reconcile", data=form(csrf, report, endpoint_id=endpoint["id"]))
    first = await resp.text()
    assert first.count('<tr class="item">') == 50
    assert ">gone-00<" in first and ">gone-49<" in first and ">gone-50<" not in first
    more = re.search(r'href="(\?kind=missing_postback&amp;cursor=[^"]+)" id="more-items"', first)
    assert more
    rest = await (await client.get(str(resp.url.path) + html.unescape(more.group(1)))).text()
    assert rest.count('<tr class="item">') == 5 and ">gone-54<" in rest
    assert 'id="more-items"' not in rest and "« First" in rest
