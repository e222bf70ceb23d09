"""Metrics beyond one app in one process: the text format checked by promtool, and
counts summed across processes and forked workers sharing a multiprocess directory."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.multiprocess import MultiProcessCollector

from monitor import metrics
from monitor.web.appkeys import METRICS
from tests.conftest import AUTH, CaptureClient
from tests.helpers.metrics import parse, send_mix, value
from tests.helpers.server import ServerProcess


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
                    assert resp.status == 200, await resp.text()
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


async def test_workers_2_report_each_endpoint_once_and_follow_renames(
    tmp_path: Path, pg_url: str, db: Any
) -> None:
    """The endpoint series come from the answering worker's endpoint cache: one series
    per endpoint (not one per worker), and a rename or delete leaves no stale one."""
    server = ServerProcess(tmp_path / "data", database_url=pg_url, extra=["--workers", "2"])
    server.env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prom")
    server.start()
    server.wait_listening_workers(2)
    try:
        connector = aiohttp.TCPConnector(force_close=True)  # scrapes reach either worker
        async with aiohttp.ClientSession(connector=connector) as session:

            async def api(method: str, path: str, **json: Any) -> dict[str, Any]:
                url = f"{server.url}/api/endpoints{path}"
                async with session.request(method, url, json=json or None, headers=AUTH) as resp:
                    assert resp.status in (200, 201), await resp.text()
                    return dict(await resp.json())

            async def info_names(endpoint_id: int) -> list[list[str]]:
                """The info series' names for the endpoint, in each of 8 scrapes."""
                scrapes = []
                for _ in range(8):
                    async with session.get(f"{server.url}/metrics") as resp:
                        assert resp.status == 200, await resp.text()
                        samples = parse(await resp.text())
                    scrapes.append(
                        [
                            dict(labels)["name"]
                            for (name, labels) in samples
                            if name == "postback_monitor_endpoint_info"
                            and ("endpoint", str(endpoint_id)) in labels
                        ]
                    )
                return scrapes

            async def settle(endpoint_id: int, want: list[str]) -> None:
                # NOTIFY reaches the other worker's cache within moments, not at once.
                for _ in range(50):
                    if all(names == want for names in await info_names(endpoint_id)):
                        return
                    await asyncio.sleep(0.1)
                raise AssertionError(f"{endpoint_id}: {await info_names(endpoint_id)} != {want}")

            endpoint = await api("POST", "", name="first name")
            await settle(endpoint["id"], ["first name"])
            await api("PATCH", f"/{endpoint['id']}", name="second name")
            await settle(endpoint["id"], ["second name"])
            url = f"{server.capture_url}/p/{endpoint['token']}?click_id=once&payout=2&currency=EUR"
            async with session.get(url) as resp:
                assert resp.status == 200
            async with session.get(f"{server.url}/metrics") as resp:
                assert resp.status == 200, await resp.text()
                samples = parse(await resp.text())
            paid = {"endpoint": str(endpoint["id"]), "event": "none", "currency": "EUR"}
            assert value(samples, "postback_monitor_payout_total", **paid) == 2
            await api("DELETE", f"/{endpoint['id']}")
            await settle(endpoint["id"], [])
    finally:
        assert server.stop() == 0
