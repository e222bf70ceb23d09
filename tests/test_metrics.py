"""Metrics: what /metrics counts, its token, its text format, and many workers summing;
an object per app (per process when served), not a module global."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from monitor import metrics
from monitor.config import Config
from monitor.server.app import create_app
from monitor.web import metrics_route
from monitor.web.appkeys import METRICS
from tests.conftest import AUTH, CaptureClient, capture_path, open_capture
from tests.server import ServerProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: TestClient, **headers: str) -> Samples:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await resp.text())


async def send_mix(capture: CaptureClient, endpoint: dict[str, Any], tag: str) -> None:
    """Two clean GETs, a clean POST, a duplicate, a hit with two flags, an unknown token."""
    path = capture_path(endpoint)
    for query in (f"click_id={tag}a&payout=1.5", f"click_id={tag}b&payout=2"):
        assert (await capture.get(f"{path}?{query}")).status == 200
    resp = await capture.post(path, data={"click_id": f"{tag}c", "payout": "3"})
    assert resp.status == 200
    assert (await capture.get(f"{path}?click_id={tag}a&payout=1.5")).status == 200
    assert (await capture.get(f"{path}?click_id={{clickid}}&payout=abc")).status == 200
    assert (await capture.get("/p/no-such-token")).status == 404


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
    stored = await db.fetchval("SELECT max(received_at) FROM hits")
    client.app[METRICS].last_hit_s.clear()  # as a fresh process would start
    await metrics_route.refresh_endpoints(client.app, seed_last_hits=True)
    samples = await scrape(client)
    name = "postback_monitor_last_hit_timestamp_seconds"
    seeded = value(samples, name, endpoint=str(endpoint_id))
    assert seeded == pytest.approx(stored.timestamp())


async def test_deleted_endpoints_are_marked(client: TestClient, make_endpoint: Any) -> None:
    kept, deleted = await make_endpoint("kept"), await make_endpoint("deleted")
    await metrics_route.refresh_endpoints(client.app)
    samples = await scrape(client)
    for endpoint in (kept, deleted):
        assert value(samples, "postback_monitor_endpoint_exists", endpoint=str(endpoint["id"])) == 1
    resp = await client.delete(f"/api/endpoints/{deleted['id']}", headers=AUTH)
    assert resp.status == 200
    await metrics_route.refresh_endpoints(client.app)
    samples = await scrape(client)
    assert value(samples, "postback_monitor_endpoint_exists", endpoint=str(kept["id"])) == 1
    key = ("postback_monitor_endpoint_exists", frozenset({("endpoint", str(deleted["id"]))}))
    assert samples[key] == 0


async def test_metrics_token(aiohttp_client: Any, config: Config, db: Any) -> None:
    token = "metrics-token-0123456789"
    client = await aiohttp_client(create_app(config.replace(metrics_token=token)))
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=AUTH)).status == 401
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: apt-get install prometheus (.ci/run does)")
    return path


async def test_promtool_finds_no_problems_in_a_real_scrape(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint("linted")
    await send_mix(capture, endpoint, "lint")
    client.app[METRICS].record_forward(endpoint["id"], "delivered")
    resp = await client.get("/metrics")
    text = await resp.text()
    assert "postback_monitor_forwards_total" in text
    done = await asyncio.to_thread(
        subprocess.run,
        [promtool(), "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == b"" and done.stderr.strip() == b"", done.stdout + done.stderr


async def get_text(url: str, **headers: str) -> str:
    def fetch() -> str:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as resp:
            return resp.read().decode()

    return await asyncio.to_thread(fetch)


@pytest.mark.slow
async def test_processes_sharing_a_multiprocess_dir_sum_their_counts(
    tmp_path: Path, pg_url: str, db: Any
) -> None:
    shared = tmp_path / "prom"
    shared.mkdir()
    servers = [ServerProcess(tmp_path / f"data{i}", database_url=pg_url) for i in range(2)]
    for server in servers:
        server.env["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    try:
        for server in servers:
            server.start()
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{servers[0].url}/api/endpoints", json={"name": "mp"}, headers=AUTH
            ) as resp:
                endpoint = await resp.json()
            sent = [7, 5]
            for server, n in zip(servers, sent, strict=True):
                for i in range(n):
                    url = f"{server.capture_url}/p/{endpoint['token']}?click_id={server.port}-{i}"
                    async with session.get(url) as resp:
                        assert resp.status == 200
        ep = str(endpoint["id"])
        for server in servers:  # either process answers with the sum of both
            samples = parse(await get_text(server.url + "/metrics"))
            assert value(samples, "postback_monitor_hits_total", endpoint=ep, method="GET") == 12
            assert value(samples, "postback_monitor_writer_batch_size_hits_sum") == 12
        gone = servers[1]
        assert gone.proc is not None
        pid = gone.proc.pid
        assert gone.stop() == 0
        metrics.mark_process_dead(pid, shared)
        samples = parse(await get_text(servers[0].url + "/metrics"))
        assert value(samples, "postback_monitor_hits_total", endpoint=ep, method="GET") == 12
        assert not list(shared.glob(f"gauge_livesum_{pid}.db"))
    finally:
        for server in servers:
            server.stop()


FORKED_WORKERS = """
import os, sys
from monitor import metrics
metrics.prepare_multiprocess(sys.argv[1])
recorded = metrics.Metrics()  # after the directory is prepared: file-backed
children = []
for n in (3, 4):
    pid = os.fork()
    if pid == 0:
        for _ in range(n):
            recorded.record_forward(9, "delivered")
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
    metrics.mark_process_dead(pid)
sys.stdout.write(recorded.exposition().decode())
"""


def test_prepare_multiprocess_before_forking_workers(tmp_path: Path) -> None:
    shared = tmp_path / "prom"
    shared.mkdir()
    (shared / "counter_123.db").write_bytes(b"stale from an earlier run")
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run(
        [sys.executable, "-c", FORKED_WORKERS, str(shared)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    samples = parse(done.stdout)
    assert value(samples, "postback_monitor_forwards_total", endpoint="9", outcome="delivered") == 7


@pytest.mark.slow
def served_per_worker(shared: Path) -> list[float]:
    """Capture requests each worker process has recorded in the multiprocess files."""
    return [
        sample.value
        for path in shared.glob("histogram_*.db")
        for family in MultiProcessCollector.merge([str(path)])
        for sample in family.samples
        if sample.name == "postback_monitor_capture_duration_seconds_count"
    ]


async def test_workers_2_counts_on_metrics_equal_hits_sent(
    tmp_path: Path, pg_url: str, db: Any
) -> None:
    server = ServerProcess(tmp_path / "data", database_url=pg_url, extra=["--workers", "2"])
    shared = tmp_path / "prom"
    server.env["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    server.start()
    server.wait_listening_workers(2)
    try:
        # A new connection per request; workers share one accepting socket, so whichever
        # is free takes the next connection: send rounds until both have served.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.post(
                f"{server.url}/api/endpoints", json={"name": "workers"}, headers=AUTH
            ) as resp:
                endpoint = await resp.json()

            async def hit(i: int) -> None:
                url = f"{server.capture_url}/p/{endpoint['token']}?click_id=w{i}&payout=1"
                async with session.get(url) as resp:
                    assert resp.status == 200

            sent = 0
            for _ in range(20):
                await asyncio.gather(*(hit(sent + i) for i in range(30)))
                sent += 30
                if len([n for n in served_per_worker(shared) if n > 0]) == 2:
                    break
            await hit(0)  # one duplicate
            ep = str(endpoint["id"])
            # Whichever worker answers the scrape, it reports every worker's hits.
            for _ in range(10):
                async with session.get(f"{server.url}/metrics") as resp:
                    samples = parse(await resp.text())
                hits = value(samples, "postback_monitor_hits_total", endpoint=ep, method="GET")
                assert hits == sent + 1
                assert value(samples, "postback_monitor_duplicates_total", endpoint=ep) == 1
                assert value(samples, "postback_monitor_writer_batch_size_hits_sum") == sent + 1
                assert value(samples, "postback_monitor_capture_duration_seconds_count") == sent + 1
                assert value(samples, "postback_monitor_writer_queued_hits") == 0
        # Both workers took hits (else the sums above would prove nothing).
        served = served_per_worker(shared)
        assert len([n for n in served if n > 0]) == 2, served
        assert sum(served) == sent + 1
    finally:
        assert server.stop() == 0
