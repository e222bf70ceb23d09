"""The latest reconciliation of each endpoint on /metrics (issue #15): a run over two
endpoints shows its counts under both, a newer run replaces it, a deleted one's
series go, and an endpoint never reconciled has none."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from monitor.web import metrics_route
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.metrics import Samples, parse, value
from tests.helpers.reconcile import csv_text, start

ITEMS = "postback_monitor_reconciliation_items"


@pytest.fixture(autouse=True)
def quick_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_route, "RECONCILIATION_REFRESH_S", 0.05)


async def scrape_until(client: TestClient, check: Any) -> Samples:
    for _ in range(100):
        samples = parse(await (await client.get("/metrics")).text())
        if check(samples):
            return samples
        await asyncio.sleep(0.05)
    raise AssertionError("the reconciliation series never showed what was expected")


async def reconcile(client: TestClient, endpoint_ids: list[int], *rows: str) -> int:
    resp = await start(client, csv_text("click_id,amount", *rows), {"endpoint_ids": endpoint_ids})
    assert resp.status == 201, await resp.text()
    run_id: int = (await resp.json())["id"]
    return run_id


async def test_each_endpoints_latest_run_is_a_gauge(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    a, b, idle = await make_endpoint("a"), await make_endpoint("b"), await make_endpoint("idle")
    for endpoint, query in ((a, "click_id=c1&payout=1"), (b, "click_id=c2&payout=2")):
        assert (await capture.get(f"{capture_path(endpoint)}?{query}")).status == 200
    # c1 matches, c2 differs in amount, m1 and m2 never arrived.
    first = await reconcile(client, [a["id"], b["id"]], "c1,1", "c2,3", "m1,1", "m2,1")
    labels = {"reconciliation": str(first)}
    samples = await scrape_until(
        client, lambda s: value(s, ITEMS, endpoint=str(b["id"]), kind="missing_postback", **labels)
    )
    for endpoint in (a, b):
        ident = str(endpoint["id"])
        assert value(samples, ITEMS, endpoint=ident, kind="missing_postback", **labels) == 2
        assert value(samples, ITEMS, endpoint=ident, kind="amount_mismatch", **labels) == 1
        assert value(samples, ITEMS, endpoint=ident, kind="unexpected_postback", **labels) == 0
        rows = "postback_monitor_reconciliation_report_rows"
        assert value(samples, rows, endpoint=ident, **labels) == 4
        assert (
            value(samples, "postback_monitor_reconciliation_matched", endpoint=ident, **labels) == 2
        )
        finished = "postback_monitor_reconciliation_finished_timestamp_seconds"
        assert value(samples, finished, endpoint=ident, **labels) > 1.7e9
    assert not any(
        dict(key[1]).get("endpoint") == str(idle["id"])
        for key in samples
        if key[0].startswith("postback_monitor_reconciliation")
    )

    # A newer run of endpoint a replaces its series; b keeps the first run's.
    second = await reconcile(client, [a["id"]], "c1,1")
    samples = await scrape_until(
        client,
        lambda s: (ITEMS, frozenset({("endpoint", str(a["id"])), ("reconciliation", str(second)),
                                     ("kind", "missing_postback")})) in s,
    )  # fmt: skip
    a_runs = {
        dict(key[1])["reconciliation"]
        for key in samples
        if key[0] == ITEMS and dict(key[1])["endpoint"] == str(a["id"])
    }
    assert a_runs == {str(second)}
    assert value(samples, ITEMS, endpoint=str(a["id"]), kind="missing_postback",
                 reconciliation=str(second)) == 0  # fmt: skip
    assert value(samples, ITEMS, endpoint=str(b["id"]), kind="missing_postback", **labels) == 2

    # Deleting the first run leaves b with no series.
    assert (await client.delete(f"/api/reconciliations/{first}", headers=AUTH)).status == 204
    samples = await scrape_until(
        client,
        lambda s: (
            not any(key[0] == ITEMS and dict(key[1])["endpoint"] == str(b["id"]) for key in s)
        ),
    )
    assert value(samples, ITEMS, endpoint=str(a["id"]), kind="missing_postback",
                 reconciliation=str(second)) == 0  # fmt: skip
