"""Test and ping postbacks through the real capture listener and writer: stored and
flagged, but left out of the duplicate ledger, the stats, the alert metrics and
reconciliation's unexpected postbacks. (The rule itself: tests/unit/test_test_traffic.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from monitor.reconciling.options import RunOptions
from monitor.reconciling.runner import Reconciler
from monitor.storage import spool
from monitor.storage.hit_rows import COPY_COLUMNS, copy_record
from monitor.storage.reconciliations import ReconciliationStore
from monitor.web.appkeys import HITS, POOL
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.hits import judged_hit
from tests.helpers.metrics import parse, value
from tests.helpers.report_rows import Row, report_file, rows_opener


async def send(capture: CaptureClient, endpoint: dict[str, Any], *queries: str) -> None:
    for query in queries:
        assert (await capture.get(f"{capture_path(endpoint)}?{query}")).status == 200


async def hits_oldest_first(client: TestClient, endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/hits?limit=500", headers=AUTH)
    assert resp.status == 200
    return list(reversed((await resp.json())["items"]))


def flag_names(hit: dict[str, Any]) -> list[str]:
    return sorted(flag["flag"] for flag in hit["flags"])


async def test_a_test_hit_then_a_real_hit_the_real_one_is_the_original(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint(settings={"preset": "keitaro"})
    await send(
        capture,
        endpoint,
        "subid=k1&status=test&payout=0",  # Keitaro's test, with the real click id
        "subid=k1&status=ping",
        "subid=k1&status=sale&payout=12.50&currency=usd",  # the conversion
        "subid=k1&status=sale&payout=12.50&currency=usd",  # the sender retries
        "subid=k1&status=test",  # another test after it: still no duplicate
    )
    test, ping, real, retry, late_test = await hits_oldest_first(client, endpoint)
    assert flag_names(test) == flag_names(ping) == flag_names(late_test) == ["test_traffic"]
    assert flag_names(real) == []  # the original, not a duplicate of the test
    assert flag_names(retry) == ["duplicate_click_id"]
    (duplicate,) = retry["flags"]
    assert duplicate["first_hit_id"] == real["id"]
    # The ledger names only the real hit; the hits stay filterable by the flag.
    keys = await db.fetch(
        "SELECT event, first_hit_id FROM click_keys WHERE endpoint_id = $1", endpoint["id"]
    )
    assert [(k["event"], str(k["first_hit_id"])) for k in keys] == [("sale", real["id"])]
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/hits?flag=test_traffic", headers=AUTH)
    assert len((await resp.json())["items"]) == 3
    tests = await db.fetchval(
        "SELECT count(*) FROM hits WHERE endpoint_id = $1 AND is_test", endpoint["id"]
    )
    assert tests == 3


async def test_tests_in_one_batch_and_from_settings_stay_out_of_the_ledger(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    settings = {"test_traffic": {"click_ids": ["pb-test-0001"]}}
    endpoint = await make_endpoint(settings=settings)
    await send(capture, endpoint, *["click_id=pb-test-0001&event=lead"] * 3)
    await send(capture, endpoint, "click_id=c2&event=lead&test=1", "click_id=c2&event=lead")
    hits = await hits_oldest_first(client, endpoint)
    assert [flag_names(h) for h in hits] == [["test_traffic"]] * 4 + [[]]
    assert hits[0]["flags"][0]["source"] == "test_traffic.click_ids"


async def test_stats_and_the_web_counters_leave_test_hits_out(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    await send(capture, endpoint, "click_id=s1&payout=1", "click_id=s2&payout=x")
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/stats", headers=AUTH)
    before = await resp.json()
    await send(capture, endpoint, "click_id=s3&test=1", "click_id=s1&payout=1&is_test=true")
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/stats", headers=AUTH)
    stats = await resp.json()
    assert (stats["total"], stats["flagged"], stats["test_hits"]) == (2, 1, 2)
    assert stats["by_flag"] == {"invalid_amount": 1}
    assert stats["duplicate_rate"] == 0.0
    # The newest *real* hit: a tracker's pings do not make a silent endpoint look alive.
    assert stats["last_hit_at"] == before["last_hit_at"]
    # The endpoints page's counters and the endpoint page's summary strip.
    summary = (await client.app[HITS].summaries([endpoint["id"]]))[endpoint["id"]]
    assert (summary["hits_24h"], summary["flagged_24h"], summary["test_24h"]) == (2, 1, 2)
    assert summary["last_hit_at"] == datetime.fromisoformat(before["last_hit_at"])
    endpoint_page = await (await client.get(f"/endpoints/{endpoint['id']}", headers=AUTH)).text()
    assert 'data-k="hits_24h">2<' in endpoint_page
    assert 'data-k="flagged_24h">1<' in endpoint_page
    assert 'data-k="test_24h"><a href="?flag=test_traffic">2</a>' in endpoint_page


async def test_metrics_count_test_hits_apart(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    ep = str(endpoint["id"])
    await send(capture, endpoint, "click_id=m1&payout=2&currency=USD")
    before = parse(await (await client.get("/metrics")).text())
    await send(
        capture,
        endpoint,
        "click_id=m1&payout=2&currency=USD&test=1",  # would be a duplicate
        "click_id={clickid}&payout=5&currency=USD&ckm_test=1",  # would be flagged
        "transactionType=TEST_SALE&click_id=m2&payout=7",
    )
    after = parse(await (await client.get("/metrics")).text())

    def change(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert change("postback_monitor_test_hits_total", endpoint=ep) == 3
    assert change("postback_monitor_hits_total", endpoint=ep, method="GET") == 0
    assert change("postback_monitor_flagged_hits_total", endpoint=ep) == 0
    assert change("postback_monitor_duplicates_total", endpoint=ep) == 0
    for flag in ("test_traffic", "unreplaced_macro", "duplicate_click_id"):
        assert change("postback_monitor_flags_total", endpoint=ep, flag=flag) == 0
    payout = value(
        after, "postback_monitor_payout_total", endpoint=ep, event="none", currency="USD"
    )
    assert payout == 2.0
    last_hit = "postback_monitor_last_hit_timestamp_seconds"
    assert value(after, last_hit, endpoint=ep) == value(before, last_hit, endpoint=ep) > 0


async def test_reconciliation_does_not_list_test_hits_as_unexpected(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tmp_path: Path
) -> None:
    endpoint = await make_endpoint(
        settings={"preset": "cake", "test_traffic": {"ip_ranges": ["127.0.0.0/8", "::1/128"]}}
    )
    other = await make_endpoint(settings={"preset": "cake"})
    # From 127.0.0.1, a test range of the first endpoint only.
    await send(capture, endpoint, "click_id=r1&payout=1", "click_id=t-only&payout=1")
    await send(capture, other, "click_id=r2&payout=1", "click_id=t2&payout=0&ckm_test=1")
    await send(capture, other, "click_id=u1&payout=1")  # real, not in the report
    now = datetime.now(UTC)
    rows = [Row(1, "r1", None, None, None, now), Row(2, "r2", None, None, None, now)]
    pool = client.app[POOL]
    columns = ("click_id", "event", "amount", "currency", "time")
    reconciler = Reconciler(pool, ReconciliationStore(pool), rows_opener(columns, rows))
    options = RunOptions(
        endpoint_ids=[endpoint["id"], other["id"]],
        since=now - timedelta(hours=1),
        until=now + timedelta(hours=1),
    )
    run_id = await reconciler.run(report_file(tmp_path), options)
    run = await reconciler.store.get(run_id)
    assert run["status"] == "done", run
    items, _ = await reconciler.store.items(
        run_id, kind="unexpected_postback", limit=50, cursor=None
    )
    # t-only, r1 (test range) and t2 (ckm_test) are tests: only u1 is unexpected, and
    # r1's report row is missing, since its only capture was a test.
    assert [i["click_id"] for i in items] == ["u1"]
    missing, _ = await reconciler.store.items(
        run_id, kind="missing_postback", limit=50, cursor=None
    )
    assert [i["click_id"] for i in missing] == ["r1"]
    assert run["summary"]["matched"] == 1


def test_a_spooled_test_hit_is_still_a_test_when_replayed() -> None:
    """is_test is read from the flags, which the spool keeps: a hit acknowledged while
    the database was down stays out of the ledger and the stats on replay."""
    now = datetime.now(UTC)
    hit = judged_hit(1, {}, "click_id=sp1&event=sale&test=1", now)
    assert hit.is_test and hit.verdict.dedupe_key == ("sp1", "sale")
    replayed = spool.decode(spool.encode(hit)[spool.HEADER.size :])
    assert replayed.is_test
    assert copy_record(replayed)[COPY_COLUMNS.index("is_test")] is True
    real = judged_hit(1, {}, "click_id=sp1&event=sale", now)
    assert not real.is_test and copy_record(real)[COPY_COLUMNS.index("is_test")] is False


async def test_the_lists_filter_test_hits_in_or_out(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    await send(capture, endpoint, "click_id=f1", "click_id=f2&test=1", "click_id={x}&is_test=1")
    base = f"/api/endpoints/{endpoint['id']}/hits"

    async def click_ids(query: str) -> list[str | None]:
        resp = await client.get(f"{base}?{query}", headers=AUTH)
        assert resp.status == 200, await resp.text()
        return sorted(h["click_id"] or "-" for h in (await resp.json())["items"])

    assert await click_ids("test=false") == ["f1"]
    assert await click_ids("test=true") == ["f2", "{x}"]
    assert await click_ids("test=true&flag=unreplaced_macro") == ["{x}"]
    resp = await client.get(f"{base}?test=maybe", headers=AUTH)
    assert resp.status == 400
    # The web list: "no test postbacks" in the flag filter, and the flag itself.
    page = await client.get(f"/endpoints/{endpoint['id']}?flag=real", headers=AUTH)
    text = await page.text()
    assert page.status == 200 and "click_id=f1" in text and "click_id=f2" not in text
    assert '<option value="real" selected>no test postbacks</option>' in text
    page = await client.get(f"/endpoints/{endpoint['id']}?flag=test_traffic", headers=AUTH)
    text = await page.text()
    assert "click_id=f2" in text and "click_id=f1" not in text
    assert "which marks a test postback (a common test marker)" in text
