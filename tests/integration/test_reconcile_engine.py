"""The reconciliation engine on hits captured through the capture listener: every
kind, two endpoints, the window, progress and recovery (report rows made in the test;
the API's tests read real CSV)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from monitor.model.errors import Conflict
from monitor.reconciling.options import RunOptions
from monitor.reconciling.runner import Reconciler
from monitor.storage.db import connect
from monitor.storage.reconciliations import ReconciliationStore, RunWriter
from monitor.web.appkeys import POOL
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.report_rows import Row, Unparsed, report_file, rows_opener

COLUMNS = ("click_id", "event", "amount", "currency", "time")


async def capture_all(capture: CaptureClient, endpoint: dict[str, Any], *queries: str) -> None:
    for query in queries:
        assert (await capture.get(f"{capture_path(endpoint)}?{query}")).status == 200


def engine(client: TestClient, columns: tuple[str, ...], rows: list[Any]) -> Reconciler:
    pool = client.app[POOL]
    return Reconciler(pool, ReconciliationStore(pool), rows_opener(columns, rows), batch_rows=3)


async def test_every_kind_on_a_report_with_known_discrepancies(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tmp_path: Path
) -> None:
    a, b = await make_endpoint("network a"), await make_endpoint("network b")
    await capture_all(
        capture,
        a,
        "click_id=c1&event=sale&payout=10.00&currency=USD",
        "click_id=c2&event=sale&payout=5&currency=USD",
        "click_id=c3&event=sale&payout=3&currency=EUR",
        "click_id=c4&event=sale&payout=1&currency=USD",
        "click_id=c4&event=sale&payout=1&currency=USD",  # captured twice
        "click_id=c6&event=sale",  # not in the report
        "click_id=c7&event=sale",
        "click_id=c7&event=sale",  # a duplicate of an unexpected one: counted once
        "event=sale",  # no click id: cannot be reconciled
        "click_id=c9&event=lead",  # the report has c9's sale, not its lead
    )
    await capture_all(capture, b, "click_id=c5&event=sale&currency=usd")
    now = datetime.now(UTC)
    t = now - timedelta(seconds=60)
    rows: list[Any] = [
        Row(1, "c1", "sale", Decimal("10"), "USD", t),
        Row(2, "c2", "sale", Decimal("7.00"), "USD", t),
        Row(3, "c3", "sale", Decimal("3"), "usd", t),
        Row(4, "c4", "sale", Decimal("1.005"), "USD", t),  # within the tolerance
        Row(5, "c5", "Sale", Decimal("2"), "USD", t),  # the hit has no amount
        Row(6, "c8", "sale", None, None, t),
        Row(7, "c1", "sale", Decimal("10"), "USD", t),  # the report repeats c1
        Unparsed(8, "no click id", ",sale,1,USD,"),
        Row(9, "c9", "sale", None, None, None),
    ]
    reconciler = engine(client, COLUMNS, rows)
    options = RunOptions(
        endpoint_ids=[a["id"], b["id"]],
        since=now - timedelta(hours=1),
        until=now + timedelta(hours=1),
    )
    run_id = await reconciler.run(report_file(tmp_path), options)
    store = reconciler.store
    run = await store.get(run_id)
    assert run["status"] == "done", run
    summary = run["summary"]
    delay = summary.pop("delay_seconds")
    buckets = summary.pop("delay_buckets")
    assert summary == {
        "report_rows": 8,
        "matched": 6,
        "missing_postbacks": 2,
        "unexpected_postbacks": 3,
        "amount_mismatches": 1,
        "currency_mismatches": 1,
        "duplicate_postbacks": 1,
        "unparsed_rows": 1,
        "repeated_report_rows": 1,
    }
    assert 55 < delay["p50"] <= delay["p95"] <= delay["max"] < 300
    # The six matched rows with a time (c1 twice), each captured under 60 s after it.
    assert [(b["label"], b["count"]) for b in buckets][:2] == [("< 1 min", 6), ("1–5 min", 0)]
    assert sum(b["count"] for b in buckets) == 6 and len(buckets) == 8
    assert run["progress"] == {"rows_read": 9, "bytes_read": 100, "bytes_total": 100}
    assert run["columns"] == {c: c for c in COLUMNS}
    assert not (tmp_path / "report.csv").exists()

    async def kind(name: str) -> list[dict[str, Any]]:
        items, _ = await store.items(run_id, kind=name, limit=100, cursor=None)
        return items

    missing = await kind("missing_postback")
    assert [(i["click_id"], i["report"]["line"]) for i in missing] == [("c8", 6), ("c9", 9)]
    (amount,) = await kind("amount_mismatch")
    assert (amount["click_id"], amount["report"]["amount"]) == ("c2", "7.00")
    assert [(c["amount"], c["currency"]) for c in amount["captured"]] == [("5", "USD")]
    (currency,) = await kind("currency_mismatch")
    assert (currency["report"]["currency"], currency["captured"][0]["currency"]) == ("usd", "EUR")
    (duplicate,) = await kind("duplicate_postback")
    assert duplicate["click_id"] == "c4" and duplicate["captured"][0]["duplicate"] is True
    unexpected = await kind("unexpected_postback")
    assert [(i["click_id"], i["event"]) for i in unexpected] == [
        ("c6", "sale"),
        ("c7", "sale"),
        ("c9", "lead"),
    ]
    assert all(i["report"] is None and len(i["hit_ids"]) == 1 for i in unexpected)
    (unparsed,) = await kind("unparsed_row")
    assert unparsed["report"] == {"line": 8, "reason": "no click id", "text": ",sale,1,USD,"}

    page, cursor = await store.items(run_id, kind=None, limit=5, cursor=None)
    rest, end = await store.items(run_id, kind=None, limit=100, cursor=cursor)
    assert len(page) == 5 and cursor is not None and end is None
    assert len(page) + len(rest) == 9
    assert await store.pool.fetchval("SELECT count(*) FROM reconciliation_rows") == 0
    # Hits keep the amount as sent (an exact decimal) and the currency their rules read.
    stored = await store.pool.fetchrow(
        "SELECT amount::text, currency FROM hits WHERE click_id = 'c1'"
    )
    assert tuple(stored) == ("10.00", "USD")


async def test_without_an_event_column_every_capture_of_the_click_is_one(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tmp_path: Path
) -> None:
    """No event column: the lead and the sale of c1 are two captures of one report row,
    and the window is all time (no times in the report)."""
    endpoint = await make_endpoint()
    await capture_all(capture, endpoint, "click_id=c1&event=lead", "click_id=c1&event=sale")
    reconciler = engine(client, ("click_id",), [Row(1, "c1")])
    run_id = await reconciler.run(report_file(tmp_path), RunOptions(endpoint_ids=[endpoint["id"]]))
    run = await reconciler.store.get(run_id)
    assert (run["since"], run["until"], run["summary"]["delay_seconds"]) == (None, None, None)
    assert run["summary"]["delay_buckets"] is None  # no time column
    assert run["summary"]["matched"] == 1 and run["summary"]["duplicate_postbacks"] == 1
    items, _ = await reconciler.store.items(run_id, kind=None, limit=10, cursor=None)
    assert [(i["kind"], i["event"]) for i in items] == [("duplicate_postback", "sale")]


async def test_the_window_defaults_to_the_reports_times(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, tmp_path: Path
) -> None:
    """A hit before the report's first conversion is outside the window: not unexpected."""
    endpoint = await make_endpoint()
    await capture_all(capture, endpoint, "click_id=early")
    await asyncio.sleep(0.01)  # hits are stamped to the millisecond
    now = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await capture_all(capture, endpoint, "click_id=c1", "click_id=late")
    rows = [
        Row(1, "c1", time=now),
        Row(2, "c2", time=now + timedelta(hours=1)),
    ]
    reconciler = engine(client, ("click_id", "time"), rows)
    run_id = await reconciler.run(report_file(tmp_path), RunOptions(endpoint_ids=[endpoint["id"]]))
    run = await reconciler.store.get(run_id)
    assert datetime.fromisoformat(run["since"]) == rows[0].time
    assert datetime.fromisoformat(run["until"]) == rows[1].time
    summary = run["summary"]
    assert (summary["matched"], summary["missing_postbacks"]) == (1, 1)
    items, _ = await reconciler.store.items(
        run_id, kind="unexpected_postback", limit=10, cursor=None
    )
    assert [i["click_id"] for i in items] == ["late"]


async def test_a_run_left_running_by_a_dead_process_is_marked_interrupted(
    client: TestClient, pg_url: str
) -> None:
    pool = client.app[POOL]
    store = ReconciliationStore(pool)
    other = await connect(pg_url)  # a live process's run: its lock is held
    live = await RunWriter.create(other, [1], None, None, {}, 10)
    dead_conn = await connect(pg_url)
    dead = await RunWriter.create(dead_conn, [1], None, None, {}, 10)
    await dead_conn.close()  # the process died: its lock went with its session
    try:
        assert await store.fail_interrupted() == [dead.run_id]
        assert (await store.get(dead.run_id))["error"] == "interrupted"
        assert (await store.get(live.run_id))["status"] == "running"
        assert await store.fail_interrupted() == []  # the locks it tried were let go
    finally:
        await other.close()


def gated_opener(gate: threading.Event) -> Any:
    """An ``open_report`` whose rows stop after the first batch until ``gate`` is set."""
    first = [Row(i, f"c{i}") for i in range(1, 4)]

    def open_report(source: Any, **_: Any) -> tuple[Any, Any]:
        def rows() -> Any:
            yield from first
            gate.wait(30)
            yield Row(4, "c4")

        return rows_opener(("click_id",), [])(source)[0], rows()

    return open_report


async def test_a_running_run_shows_its_progress_and_a_stopped_one_is_interrupted(
    client: TestClient, make_endpoint: Any, tmp_path: Path
) -> None:
    endpoint = await make_endpoint()
    pool = client.app[POOL]
    gate = threading.Event()
    reconciler = Reconciler(pool, ReconciliationStore(pool), gated_opener(gate), batch_rows=3)
    try:
        run_id = await reconciler.start(report_file(tmp_path), RunOptions([endpoint["id"]]))
        for _ in range(100):
            resp = await client.get(f"/api/reconciliations/{run_id}", headers=AUTH)
            run = await resp.json()
            if run["progress"]["rows_read"]:
                break
            await asyncio.sleep(0.05)
        assert run["status"] == "running" and run["summary"] is None
        assert run["progress"]["rows_read"] == 3 and run["progress"]["bytes_total"] == 100
        assert (await client.delete(f"/api/reconciliations/{run_id}", headers=AUTH)).status == 409
        await reconciler.close()  # the server stopping
    finally:
        gate.set()
    run = await reconciler.store.get(run_id)
    assert (run["status"], run["error"]) == ("failed", "interrupted")
    assert not (tmp_path / "report.csv").exists()
    assert await pool.fetchval("SELECT count(*) FROM reconciliation_rows") == 0


async def test_runs_beyond_the_cap_are_refused_and_their_upload_deleted(
    client: TestClient, make_endpoint: Any, tmp_path: Path
) -> None:
    endpoint = await make_endpoint()
    pool = client.app[POOL]
    gate = threading.Event()
    opener = gated_opener(gate)
    reconciler = Reconciler(pool, ReconciliationStore(pool), opener, batch_rows=3, max_running=1)
    try:
        first = await reconciler.start(report_file(tmp_path), RunOptions([endpoint["id"]]))
        second = tmp_path / "second.csv"
        second.write_bytes(b"x")
        with pytest.raises(Conflict) as refused:
            await reconciler.start(second, RunOptions([endpoint["id"]]))
        assert refused.value.code == "reconciliations_busy" and not second.exists()
    finally:
        gate.set()
    await reconciler.wait(first)
    assert (await reconciler.store.get(first))["status"] == "done"


async def test_a_server_starting_marks_a_dead_processs_runs_interrupted(
    aiohttp_client: Any, config: Any, db: Any, pg_url: str
) -> None:
    """The server's startup (reconciler_ctx) finds the run whose lock went with its process."""
    from monitor.server.app import create_app

    dead_conn = await connect(pg_url)
    dead = await RunWriter.create(dead_conn, [1], None, None, {}, 10)
    await dead.progress(5, 5)
    await dead_conn.close()
    client = await aiohttp_client(create_app(config))
    run = await (await client.get(f"/api/reconciliations/{dead.run_id}", headers=AUTH)).json()
    assert (run["status"], run["error"]) == ("failed", "interrupted")
    assert run["finished_at"] is not None and run["progress"]["rows_read"] == 5
