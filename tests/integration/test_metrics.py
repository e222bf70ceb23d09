"""Metrics: what /metrics counts and its token; an object per app (per process when
served), not a module global. (Its text format checked by promtool and many workers
summing: tests/system/test_metrics_processes.py.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from monitor import metrics
from monitor.config import Config
from monitor.server.app import create_app
from monitor.web import metrics_route
from monitor.web.appkeys import METRICS
from tests.conftest import AUTH, CaptureClient, capture_path, open_capture
from tests.helpers.dbproxy import DatabaseProxy
from tests.helpers.metrics import Samples, nodes, parse, send_mix, value


async def scrape(client: TestClient, **headers: str) -> Samples:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await resp.text())


async def test_stored_hits_are_counted(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint("counted")
    ep = str(endpoint["id"])
    before = await scrape(client)
    await send_mix(capture, endpoint, "count")
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("postback_monitor_hits_total", endpoint=ep, method="GET") == 4
    assert delta("postback_monitor_hits_total", endpoint=ep, method="POST") == 1
    assert delta("postback_monitor_flagged_hits_total", endpoint=ep) == 2
    assert delta("postback_monitor_duplicates_total", endpoint=ep) == 1
    assert delta("postback_monitor_flags_total", endpoint=ep, flag="duplicate_click_id") == 1
    assert delta("postback_monitor_flags_total", endpoint=ep, flag="unreplaced_macro") == 1
    assert delta("postback_monitor_flags_total", endpoint=ep, flag="invalid_amount") == 1
    # 1.5 + 2 + 3: the duplicate of the 1.5 and the invalid "abc" add nothing.
    assert delta("postback_monitor_payout_total", endpoint=ep, event="none", currency="none") == 6.5
    assert delta("postback_monitor_unknown_token_requests_total") == 1
    assert delta("postback_monitor_capture_duration_seconds_count") == 6
    assert delta("postback_monitor_writer_batch_size_hits_sum") == 5
    assert delta("postback_monitor_writer_commit_duration_seconds_count") >= 1
    last = value(after, "postback_monitor_last_hit_timestamp_seconds", endpoint=ep)
    assert abs(last - time.time()) < 30
    assert value(after, "postback_monitor_writer_queued_hits") == 0
    assert ("postback_monitor_spool_pending_hits", frozenset()) in after
    assert ("postback_monitor_capture_errors_total", frozenset({("status_class", "5xx")})) in after


async def test_rejected_captures_are_counted_by_status_class(
    aiohttp_client: Any, config: Config, db: Any
) -> None:
    small = config.replace(max_body_bytes=10, hard_max_body_bytes=10)
    client = await aiohttp_client(create_app(small))
    resp = await client.post("/api/endpoints", json={"name": "small"}, headers=AUTH)
    endpoint = await resp.json()
    before = await scrape(client)
    async with open_capture(client, small) as capture:
        assert (await capture.post(capture_path(endpoint), data=b"x" * 100)).status == 413
    after = await scrape(client)
    key = ("postback_monitor_capture_errors_total", frozenset({("status_class", "4xx")}))
    assert after[key] - before.get(key, 0.0) == 1


def test_status_and_method_classes() -> None:
    assert metrics.status_class(503) == "5xx"
    assert metrics.method_class("GET") == "GET"
    assert metrics.method_class("PROPFIND") == "other"
    with pytest.raises(ValueError, match="outcome"):
        metrics.Metrics().record_forward(1, "exploded")


def test_each_app_has_its_own_metrics(config: Config) -> None:
    first, second = create_app(config), create_app(config)
    assert first[METRICS] is not second[METRICS]
    first[METRICS].record_forward(3, "delivered")
    key = (
        "postback_monitor_forwards_total",
        frozenset({("endpoint", "3"), ("outcome", "delivered")}),
    )
    assert parse(first[METRICS].exposition().decode())[key] == 1
    assert key not in parse(second[METRICS].exposition().decode())
    given = metrics.Metrics()
    assert create_app(config, given)[METRICS] is given


def test_metrics_refuse_a_multiprocess_dir_set_too_late(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prometheus_client chose in-memory values when imported: without prepare_multiprocess
    # these metrics would count in memory while /metrics reads the files.
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path / "prom"))
    with pytest.raises(RuntimeError, match="prepare_multiprocess"):
        metrics.Metrics()


async def test_last_hit_time_survives_a_restart(
    aiohttp_client: Any, config: Config, db: Any
) -> None:
    await db.execute("INSERT INTO endpoints (token, name) VALUES ('tok-seed', 'seeded')")
    endpoint_id = await db.fetchval("SELECT id FROM endpoints WHERE token = 'tok-seed'")
    client = await aiohttp_client(create_app(config))
    async with open_capture(client, config) as capture:
        assert (await capture.get("/p/tok-seed?click_id=seed1")).status == 200
        await asyncio.sleep(0.01)  # a later millisecond
        # A test postback after it is no traffic: the seed is the real hit's time.
        assert (await capture.get("/p/tok-seed?click_id=seed2&test=1")).status == 200
    stored = await db.fetchval("SELECT max(received_at) FROM hits WHERE NOT is_test")
    newest = await db.fetchval("SELECT max(received_at) FROM hits")
    assert newest > stored
    client.app[METRICS].last_hit_s.clear()  # as a fresh process would start
    await metrics_route.seed_last_hits(client.app)
    samples = await scrape(client)
    name = "postback_monitor_last_hit_timestamp_seconds"
    seeded = value(samples, name, endpoint=str(endpoint_id))
    assert seeded == pytest.approx(stored.timestamp())


async def test_metrics_token(aiohttp_client: Any, config: Config, db: Any) -> None:
    token = "metrics-token-0123456789"
    client = await aiohttp_client(create_app(config.replace(metrics_token=token)))
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=AUTH)).status == 401
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200


async def test_every_series_carries_the_node(aiohttp_client: Any, config: Config, db: Any) -> None:
    """Several machines on one database are told apart by --node-name, on every
    series: counters, histograms, gauges and those read at scrape alike."""
    client = await aiohttp_client(create_app(config.replace(node_name="eu-1")))
    resp = await client.post("/api/endpoints", json={"name": "noded"}, headers=AUTH)
    endpoint = await resp.json()
    async with open_capture(client, config) as capture:
        await send_mix(capture, endpoint, "node")
    text = await (await client.get("/metrics")).text()
    assert nodes(text) == {"eu-1"}  # None would be a sample without the label
    samples, ep = parse(text), str(endpoint["id"])
    assert value(samples, "postback_monitor_hits_total", endpoint=ep, method="GET") == 4
    info = {
        "endpoint": ep,
        "name": "noded",
        "preset": "",
        "url": f"{config.management_url}/endpoints/{ep}",
    }
    assert samples["postback_monitor_endpoint_info", frozenset(info.items())] == 1
    assert nodes(create_app(config)[METRICS].exposition().decode()) == {config.node}


async def test_database_up_follows_the_database(
    aiohttp_client: Any, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe sees an outage even when no postback arrives to be spooled."""
    monkeypatch.setattr(metrics_route, "DATABASE_PROBE_S", 0.2)
    proxy = await DatabaseProxy(config.database_url or "").start()
    try:
        client = await aiohttp_client(create_app(config.replace(database_url=proxy.url)))

        async def database_up_becomes(expected: float) -> None:
            async with asyncio.timeout(15):
                while True:  # polling the scrape is what Prometheus does
                    if value(await scrape(client), "postback_monitor_database_up") == expected:
                        return
                    await asyncio.sleep(0.1)

        await database_up_becomes(1)
        proxy.cut()
        await database_up_becomes(0)
        proxy.restore()
        await database_up_becomes(1)
    finally:
        await proxy.close()
