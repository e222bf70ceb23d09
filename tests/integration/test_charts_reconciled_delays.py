"""The delay chart from a reconciliation run (issue #20 item 3): a run whose report has
a time column keeps its matched rows' delays per bucket in its summary, and an
endpoint without a conversion_time_param charts the newest such run covering it
(the setting still wins where it is set); restricted tokens see only runs of their
endpoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from monitor.rules.charts import DELAY_BUCKETS, delay_bucket
from tests.helpers.reconcile import csv_text, start
from tests.helpers.signin import sign_in
from tests.helpers.tokens import bearer, make_token
from tests.integration.test_charts import charts, store

LABELS = [label for label, _ in DELAY_BUCKETS]
# Seconds from each reported conversion to its postback: the last one was posted
# back 90 s before the network's conversion time (a clock off, or a mistake).
DELAYS_S = {"d30": 30, "d5m": 300, "d2h": 7200, "early": -90}


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


async def reconcile(client: TestClient, endpoint_ids: list[int], *rows: str) -> dict[str, Any]:
    resp = await start(client, csv_text(*rows), {"endpoint_ids": endpoint_ids})
    assert resp.status == 201, await resp.text()
    run: dict[str, Any] = await resp.json()
    assert run["status"] == "done", run
    return run


def counts(buckets: list[dict[str, Any]]) -> dict[str, int]:
    return {b["label"]: b["count"] for b in buckets}


async def test_a_run_with_times_feeds_the_delay_chart_of_endpoints_without_the_setting(
    client: TestClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    a, b = await make_endpoint("network a"), await make_endpoint("network b")
    param = await make_endpoint("with the setting", settings={"conversion_time_param": "ts"})
    outside = await make_endpoint("in no run")
    received = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    await store(db, a, *[(f"click_id={c}", received) for c in ("d30", "d5m", "early")])
    await store(db, b, ("click_id=d2h", received))
    await store(db, param, (f"click_id=p1&ts={int(received.timestamp()) - 20}", received))
    report = [
        "click_id,time",
        *[f"{c},{iso(received - timedelta(seconds=d))}" for c, d in DELAYS_S.items()],
        f"p1,{iso(received - timedelta(hours=3))}",  # the setting's endpoint: 3 h
        f"never,{iso(received - timedelta(minutes=1))}",  # missing: no delay
    ]
    run = await reconcile(client, [a["id"], b["id"], param["id"]], *report)
    summary = run["summary"]
    assert summary["matched"] == 5 and summary["missing_postbacks"] == 1
    want = {label: 0 for label in LABELS}
    want.update({"< 1 min": 2, "5–15 min": 1, "1–6 h": 2})
    assert counts(summary["delay_buckets"]) == want
    # The param chart's buckets: a negative delay is under a minute, 300 s is 5–15 min.
    by_python = [0] * len(DELAY_BUCKETS)
    for d in [*DELAYS_S.values(), 3 * 3600]:
        by_python[delay_bucket(d)] += 1
    assert [b["count"] for b in summary["delay_buckets"]] == by_python
    assert [(b["label"], b["below_seconds"]) for b in summary["delay_buckets"]] == list(
        DELAY_BUCKETS
    )
    assert summary["delay_seconds"] == {"p50": 300.0, "p95": 10080.0, "max": 10800.0}

    # Each endpoint of the run charts the run's buckets, all its endpoints counted.
    for endpoint in (a, b):
        delays = (await charts(client, endpoint))["delays"]
        assert delays == {
            "source": "reconciliation",
            "run_id": run["id"],
            "finished_at": run["finished_at"],
            "buckets": summary["delay_buckets"],
        }
    # Where the setting is set, it wins: its own hit, 20 s.
    own = (await charts(client, param))["delays"]
    assert own["source"] == "param" and own["param"] == "ts" and own["hits_read"] == 1
    assert counts(own["buckets"])["< 1 min"] == 1 and counts(own["buckets"])["1–6 h"] == 0
    assert (await charts(client, outside))["delays"] is None

    # A newer run without times changes nothing; a newer one with times is charted.
    await reconcile(client, [a["id"]], "click_id", "d30")
    assert (await charts(client, a))["delays"]["run_id"] == run["id"]
    newer = await reconcile(
        client, [a["id"]], "click_id,time", f"d30,{iso(received - timedelta(hours=12))}"
    )
    delays = (await charts(client, a))["delays"]
    assert (delays["run_id"], counts(delays["buckets"])["6–24 h"]) == (newer["id"], 1)
    assert sum(b["count"] for b in delays["buckets"]) == 1
    assert (await charts(client, b))["delays"]["run_id"] == run["id"]  # not in the newer

    # A token of b alone sees no run that covered a too; one of a sees a's own run.
    only_b = await make_token(client, "read", [b["id"]])
    resp = await client.get(f"/api/endpoints/{b['id']}/charts", headers=bearer(only_b))
    assert resp.status == 200 and (await resp.json())["delays"] is None
    only_a = await make_token(client, "read", [a["id"]])
    resp = await client.get(f"/api/endpoints/{a['id']}/charts", headers=bearer(only_a))
    assert (await resp.json())["delays"]["run_id"] == newer["id"]


async def test_the_page_names_the_run_it_charts(
    client: TestClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    a, b = await make_endpoint("network a"), await make_endpoint("network b")
    received = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    await store(db, a, ("click_id=x1", received), ("click_id=x2", received))
    await store(db, b, ("click_id=x3", received))
    run = await reconcile(
        client,
        [a["id"], b["id"]],
        "click_id,time",
        f"x1,{iso(received - timedelta(seconds=10))}",
        f"x2,{iso(received - timedelta(minutes=20))}",
        f"x3,{iso(received - timedelta(minutes=20))}",
    )
    await sign_in(client, f"/endpoints/{a['id']}")
    page = await (await client.get(f"/endpoints/{a['id']}")).text()
    day = run["finished_at"][:10]
    assert (
        f'from <a href="/reconciliations/{run["id"]}">reconciliation run #{run["id"]}</a> of '
        f'<time datetime="{run["finished_at"]}">{day}' in page
    )
    assert "all its endpoints: the report's conversion time to the first capture of 3 matched " \
        "conversions" in page.replace("&#39;", "'")  # fmt: skip
    assert '<table class="delays" id="delay-chart" data-source="reconciliation"' in page
    assert '<th class="num">Conversions</th>' in page
    for label, n in (("&lt; 1 min", 1), ("15–60 min", 2), ("1–5 min", 0)):
        assert f'<th scope="row">{label}</th><td class="num">{n}</td>' in page, label
    # The live page's fragment is the same section.
    fragment = await (await client.get(f"/endpoints/{a['id']}/charts")).text()
    assert f"reconciliation run #{run['id']}" in fragment
