"""`reconcile` run as a process against the test database: the summary and the
columns used on stdout, plain progress lines on stderr (no terminal), the items in
--out as CSV or NDJSON, and the report file left where it was."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.server import cli

REPORT = "Click ID;Payout;Currency\nc1;10,50;USD\nc2;3,00;USD\nc3;1,00;USD\n"


async def test_reconcile_prints_the_summary_and_writes_the_items(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, pg_url: str, tmp_path: Path
) -> None:
    endpoint = await make_endpoint()
    for query in ("click_id=c1&payout=10.50&currency=USD", "click_id=c2&payout=2&currency=USD"):
        assert (await capture.get(f"{capture_path(endpoint)}?{query}")).status == 200
    report = tmp_path / "report.csv"
    report.write_text(REPORT)
    out = tmp_path / "items.csv"
    args = [
        "reconcile", str(endpoint["id"]), "--report", str(report), "--decimal-comma",
        "--column", "click_id=Click ID", "--column", "amount=Payout",
        "--column", "currency=Currency", "--out", str(out),
    ]  # fmt: skip
    done = await asyncio.to_thread(cli, *args, url=pg_url, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "columns: click_id=Click ID, amount=Payout, currency=Currency" in done.stdout
    rows = [line.rsplit(None, 1) for line in done.stdout.splitlines() if line.startswith("  ")]
    lines = {label.strip(): value for label, value in rows}
    assert lines["report rows"] == "3" and lines["matched"] == "2"
    assert lines["missing postbacks"] == "1" and lines["amount mismatches"] == "1"
    assert "read 3 rows" in done.stderr and "\r" not in done.stderr  # no terminal: plain lines
    # Only the progress on stderr: the service's info log lines stay out of a command.
    assert "reconciliation.started" not in done.stderr, done.stderr
    assert report.read_text() == REPORT  # the user's file is kept
    items = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sorted((i["kind"], i["click_id"]) for i in items) == [
        ("amount_mismatch", "c2"),
        ("missing_postback", "c3"),
    ]
    (amount,) = [i for i in items if i["kind"] == "amount_mismatch"]
    assert (amount["report_amount"], amount["captured_amount"]) == ("3.00", "2")

    # The run is stored like the API's, and NDJSON is written for a .ndjson name.
    runs = await (await client.get("/api/reconciliations", headers=AUTH)).json()
    assert runs["items"][0]["summary"]["amount_mismatches"] == 1
    ndjson = tmp_path / "items.ndjson"
    args[-1] = str(ndjson)
    done = await asyncio.to_thread(cli, *args, url=pg_url, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["kind"] for line in ndjson.read_text().splitlines()} == {
        "amount_mismatch",
        "missing_postback",
    }


async def test_reconcile_refuses_unknown_endpoints_and_bad_columns(
    client: TestClient, make_endpoint: Any, pg_url: str, tmp_path: Path
) -> None:
    endpoint = await make_endpoint()
    report = tmp_path / "report.csv"
    report.write_text(REPORT)
    done = await asyncio.to_thread(
        cli, "reconcile", "999", "--report", str(report), url=pg_url, tmp_path=tmp_path
    )
    assert done.returncode == 1 and "no endpoint 999" in done.stderr
    done = await asyncio.to_thread(
        cli, "reconcile", str(endpoint["id"]), "--report", str(report),
        "--column", "click_id=Nope", url=pg_url, tmp_path=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1 and "Nope" in done.stderr
