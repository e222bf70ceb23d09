"""`serve --workers N`: several processes on one port, restarted when they die."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from monitor import config as config_mod
from monitor.config import Config
from tests.conftest import AUTH
from tests.helpers.server import ServerProcess


def test_settings_travel_to_workers_through_the_environment() -> None:
    original = Config(
        port=9123,
        workers=3,
        trusted_proxies=("10.0.0.0/8", "127.0.0.1"),
        admin_token="x" * 20,
        batch_max_wait_ms=0.5,
    )
    assert config_mod.load({}, config_mod.to_environ(original)) == original


def worker_pids(parent: int) -> set[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True
    )
    return {int(p) for p in out.stdout.split()}


async def wait_for_workers(parent: int, done: Any, timeout_s: float = 30.0) -> None:
    """Poll the parent's children until `done(pids)` (ps has no event to wait on)."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / 0.2)):
        if done(worker_pids(parent)) or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)


async def test_two_workers_share_the_port_and_a_dead_one_comes_back(
    tmp_path: Path, pg_url: str, db: Any
) -> None:
    server = ServerProcess(tmp_path / "data", database_url=pg_url, extra=["--workers", "2"]).start()
    try:
        assert server.proc is not None
        await asyncio.to_thread(server.wait_listening_workers, 2)
        pids = worker_pids(server.proc.pid)
        assert len(pids) == 2
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.post(
                f"{server.url}/api/endpoints", json={"name": "w"}, headers=AUTH
            ) as resp:
                endpoint = await resp.json()
            url = f"{server.capture_url}/p/{endpoint['token']}"
            statuses = await asyncio.gather(
                *(session.get(url, params={"n": str(i)}) for i in range(100))
            )
            assert all(r.status == 200 for r in statuses)
            # Every worker accepts on both listeners; each answers the probes alike.
            for base in (server.url, server.capture_url) * 4:
                async with session.get(f"{base}/readyz") as resp:
                    assert resp.status == 200 and (await resp.json())["status"] == "ready"

            victim = sorted(pids)[0]
            os.kill(victim, signal.SIGKILL)
            await wait_for_workers(server.proc.pid, lambda now: len(now) == 2 and victim not in now)
            assert len(worker_pids(server.proc.pid)) == 2
            assert victim not in worker_pids(server.proc.pid)
            await asyncio.sleep(1.0)
            async with session.get(url, params={"n": "after"}) as resp:
                assert resp.status == 200
        assert "worker.died" in server.log()
    finally:
        assert server.stop() == 0, server.log()[-2000:]
    assert (
        await db.fetchval("SELECT count(*) FROM hits WHERE endpoint_id = $1", endpoint["id"]) == 101
    )
    assert worker_pids(server.proc.pid) == set()


async def test_workers_with_embedded_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(
        data_dir, database_url=None, admin_token=None, extra=["--workers", "2"]
    ).start()
    try:
        token = (data_dir / "admin_token").read_text().strip()
        assert server.log().count(token) == 1  # printed once, by the parent
        async with aiohttp.ClientSession() as session:
            async with session.get(
                f"{server.url}/api/endpoints", headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                assert resp.status == 200
    finally:
        assert server.stop() == 0


async def test_a_second_serve_cannot_take_part_of_the_port(
    tmp_path: Path, pg_url: str, db: Any
) -> None:
    """Only the service's own workers share its port: they inherit the parent's socket."""
    first = ServerProcess(tmp_path / "one", database_url=pg_url, extra=["--workers", "2"]).start()
    try:
        second = await asyncio.to_thread(
            subprocess.run,
            [
                *(sys.executable, "-m", "monitor", "serve", "--workers", "2"),
                *("--port", str(first.port), "--data-dir", str(tmp_path / "two")),
                *("--database-url", pg_url, "--admin-token", "x" * 20),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env=first.env,
        )
    finally:
        assert first.stop() == 0, first.log()[-2000:]
    assert second.returncode == 1
    assert second.stderr.splitlines() == [
        f"postback-monitor: cannot listen on 127.0.0.1:{first.port} (management): "
        "Address already in use"
    ]


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's reaper may be slow to wait for it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_workers_stop_when_their_parent_is_killed(
    tmp_path: Path, pg_url: str, db: Any
) -> None:
    """A parent killed outright (the OOM killer) cannot pass SIGTERM on: the kernel
    does, so no orphaned worker keeps the ports and the node starts again on them."""
    server = ServerProcess(tmp_path / "data", database_url=pg_url, extra=["--workers", "2"]).start()
    assert server.proc is not None
    await asyncio.to_thread(server.wait_listening_workers, 2)
    orphans = worker_pids(server.proc.pid)
    assert len(orphans) == 2
    server.kill()  # SIGKILL, by its pid
    deadline = time.monotonic() + 30
    while alive := {pid for pid in orphans if running(pid)}:
        if time.monotonic() > deadline:
            for pid in alive:
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"workers {alive} outlived their killed parent")
        await asyncio.sleep(0.1)
    again = ServerProcess(
        tmp_path / "data", database_url=pg_url, extra=["--workers", "2"],
        port=server.port, capture_port=server.capture_port,
    )  # fmt: skip
    again.start()
    assert again.stop() == 0, again.log()[-2000:]
