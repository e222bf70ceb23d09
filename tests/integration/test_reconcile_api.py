"""The reconciliation API with real CSV reports through multipart: every kind, two
endpoints, paging, export, delete, the errors (400s, 413) and a run still running."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from monitor.config import Config
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.reconcile import URL, csv_text, start, upload


async def error_of(resp: aiohttp.ClientResponse, status: int) -> dict[str, str]:
    assert resp.status == status, await resp.text()
    return (await resp.json())["error"]


async def test_a_report_with_every_kind_through_the_api(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    a, b = await make_endpoint("a"), await make_endpoint("b")
    for endpoint, query in (
        (a, "click_id=c1&event=sale&payout=10.00&currency=USD"),
        (a, "click_id=c2&event=sale&payout=5&currency=USD"),
        (a, "click_id=c3&event=sale&payout=3&currency=EUR"),
        (a, "click_id=c4&event=sale&payout=1&currency=USD"),
        (a, "click_id=c4&event=sale&payout=1&currency=USD"),
        (a, "click_id=c6&event=sale"),
        (b, "click_id=c5&event=sale&payout=2&currency=USD"),
    ):
        assert (await capture.get(f"{capture_path(endpoint)}?{query}")).status == 200
    t = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = csv_text(
        "click_id,event,amount,currency,time",
        f"c1,sale,10,USD,{t}",
        f"c2,sale,7.00,USD,{t}",
        f"c3,sale,3,USD,{t}",
        f"c4,sale,1,USD,{t}",
        f"c5,sale,2,USD,{t}",
        f"c8,sale,4,USD,{t}",
        f"c9,sale,abc,USD,{t}",
    )
    now = datetime.now(UTC)
    options = {
        "endpoint_ids": [a["id"], b["id"]],
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(hours=1)).isoformat(),
    }
    resp = await start(client, report, options)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Location"].startswith(URL)
    run = await resp.json()
    assert run["status"] == "done" and run["error"] is None
    assert run["endpoint_ids"] == [a["id"], b["id"]]
    assert set(run["columns"]) == {"click_id", "event", "amount", "currency", "time"}
    assert run["progress"]["rows_read"] == 7
    assert run["progress"]["bytes_read"] == run["progress"]["bytes_total"] == len(report)
    summary = dict(run["summary"])
    delay = summary.pop("delay_seconds")
    buckets = summary.pop("delay_buckets")
    assert summary == {
        "report_rows": 6,
        "matched": 5,
        "missing_postbacks": 1,
        "unexpected_postbacks": 1,
        "amount_mismatches": 1,
        "currency_mismatches": 1,
        "duplicate_postbacks": 1,
        "unparsed_rows": 1,
        "repeated_report_rows": 0,
    }
    assert 100 < delay["p50"] <= delay["max"] < 600
    # The five matched rows, each captured between 2 and 5 minutes after its time.
    assert [b["count"] for b in buckets] == [0, 5, 0, 0, 0, 0, 0, 0]
    ident = run["id"]
    assert (await (await client.get(f"{URL}/{ident}", headers=AUTH)).json()) == run

    # Items, one kind at a time and paged.
    resp = await client.get(f"{URL}/{ident}/items?kind=amount_mismatch", headers=AUTH)
    (item,) = (await resp.json())["items"]
    assert item["report"]["amount"] == "7.00" and item["captured"][0]["amount"] == "5"
    assert item["hit_ids"] == [item["captured"][0]["hit_id"]]
    seen, cursor = [], None
    while True:
        query = f"limit=2&cursor={cursor}" if cursor else "limit=2"
        page = await (await client.get(f"{URL}/{ident}/items?{query}", headers=AUTH)).json()
        seen += [i["kind"] for i in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(seen) == sorted(
        ["unparsed_row", "missing_postback", "amount_mismatch", "currency_mismatch",
         "duplicate_postback", "unexpected_postback"]
    )  # fmt: skip

    # Export: CSV (spreadsheet-safe) and NDJSON carry the same items.
    resp = await client.get(f"{URL}/{ident}/export?format=csv", headers=AUTH)
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert sorted(r["kind"] for r in rows) == sorted(seen)
    (unparsed,) = [r for r in rows if r["kind"] == "unparsed_row"]
    assert unparsed["report_line"] == "8" and "c9" in unparsed["unparsed_text"]
    resp = await client.get(f"{URL}/{ident}/export?format=ndjson", headers=AUTH)
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert [i["kind"] for i in lines] == [r["kind"] for r in rows]

    listed = await (await client.get(URL, headers=AUTH)).json()
    assert [r["id"] for r in listed["items"]] == [ident] and listed["next_cursor"] is None
    assert (await client.delete(f"{URL}/{ident}", headers=AUTH)).status == 204
    assert (await client.get(f"{URL}/{ident}", headers=AUTH)).status == 404
    assert (await client.get(f"{URL}/{ident}/items", headers=AUTH)).status == 404


async def test_runs_are_listed_newest_first_in_pages(
    client: TestClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    for _ in range(3):
        resp = await start(client, csv_text("click_id", "c1"), {"endpoint_ids": [endpoint["id"]]})
        assert resp.status == 201, await resp.text()
    first = await (await client.get(f"{URL}?limit=2", headers=AUTH)).json()
    assert [r["id"] for r in first["items"]] == [3, 2]
    rest = await (await client.get(f"{URL}?cursor={first['next_cursor']}", headers=AUTH)).json()
    assert [r["id"] for r in rest["items"]] == [1] and rest["next_cursor"] is None


async def test_bad_uploads_are_refused_with_the_reason(
    client: TestClient, make_endpoint: Any, config: Config
) -> None:
    endpoint = await make_endpoint()
    good = {"endpoint_ids": [endpoint["id"]]}
    report = csv_text("click_id", "c1")
    assert (await error_of(await start(client, report, "{"), 400))["code"] == "invalid_options"
    unknown = {"endpoint_ids": [endpoint["id"], 98, 99]}
    error = await error_of(await start(client, report, unknown), 400)
    assert error["code"] == "unknown_endpoints" and "98, 99" in error["message"]
    assert (await error_of(await start(client, None, good), 400))["code"] == "missing_report"
    assert (await error_of(await start(client, report, None), 400))["code"] == "invalid_options"
    two_columns = csv_text("click_id,amount", "c1,2")
    wrong = {**good, "columns": {"click_id": "nope"}}
    error = await error_of(await start(client, two_columns, wrong), 400)
    assert error["code"] == "invalid_columns" and "nope" in error["message"]
    error = await error_of(await start(client, b"\x00\x01\x02binary", good), 400)
    assert error["code"] == "invalid_report"
    resp = await client.post(URL, json=good, headers=AUTH)
    assert (await error_of(resp, 400))["code"] == "invalid_body"
    assert (await client.post(URL, data=upload(report, good))).status == 401
    # Nothing is left of refused uploads, and no run was made.
    assert list((config.data_dir / "reconciliations").iterdir()) == []
    assert (await (await client.get(URL, headers=AUTH)).json())["items"] == []


async def test_a_report_over_the_size_cap_is_413(
    aiohttp_client: Any, config: Config, db: Any, make_endpoint: Any
) -> None:
    from monitor.server.app import create_app

    small = await aiohttp_client(create_app(config.replace(reconcile_max_bytes=1000)))
    resp = await small.post("/api/endpoints", json={"name": "x"}, headers=AUTH)
    endpoint = await resp.json()
    big = csv_text("click_id", *[f"click-{i}" for i in range(200)])
    error = await error_of(await start(small, big, {"endpoint_ids": [endpoint["id"]]}), 413)
    assert error["code"] == "report_too_large"
    assert list((config.data_dir / "reconciliations").iterdir()) == []


async def test_a_malformed_multipart_body_is_400(client: TestClient) -> None:
    """A part header aiohttp cannot parse (schemathesis found one) is the caller's error."""
    body = (
        b'--BB\r\nContent-Disposition: form-data; name="\xc2\x9f\x14"\r\n\r\n-6.1\r\n'
        b'--BB\r\nContent-Disposition: form-data; name="options"\r\n\r\n{}\r\n--BB--\r\n'
    )
    headers = {**AUTH, "Content-Type": "multipart/form-data; boundary=BB"}
    resp = await client.post(URL, data=body, headers=headers)
    assert (await error_of(resp, 400))["code"] == "invalid_body"


async def test_a_run_not_done_in_time_is_202_and_polled_to_its_end(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: Any, monkeypatch: Any
) -> None:
    """The scratch table held locked by the test keeps the run from loading its rows."""
    from monitor.web.api import reconciliations

    monkeypatch.setattr(reconciliations, "POST_WAIT_S", 0.2)
    endpoint = await make_endpoint()
    assert (await capture.get(f"{capture_path(endpoint)}?click_id=c1")).status == 200
    report = csv_text("click_id,amount", "c1,1", "c2,2")
    async with db.transaction():
        await db.execute("LOCK TABLE reconciliation_rows IN ACCESS EXCLUSIVE MODE")
        resp = await start(client, report, {"endpoint_ids": [endpoint["id"]]})
        assert resp.status == 202, await resp.text()
        run = await resp.json()
        assert (run["status"], run["summary"], run["finished_at"]) == ("running", None, None)
        assert run["progress"]["bytes_total"] == len(report)
        again = await (await client.get(resp.headers["Location"], headers=AUTH)).json()
        assert again["status"] == "running"
    for _ in range(200):
        run = await (await client.get(resp.headers["Location"], headers=AUTH)).json()
        if run["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert run["status"] == "done" and run["finished_at"] is not None
    assert (run["summary"]["matched"], run["summary"]["missing_postbacks"]) == (1, 1)
