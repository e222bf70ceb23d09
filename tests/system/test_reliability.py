"""Nothing acknowledged is lost: database outage, crash, graceful stop, full spool.

Each scenario runs a real `postback-monitor serve` process against a PostgreSQL the
test controls (embedded, in a temp dir), loads it from clients on loopback, and
checks at the end that every hit id that got a 2xx is stored exactly once.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from monitor.storage.embedded import EmbeddedPostgres
from tests.conftest import ADMIN_TOKEN
from tests.helpers.load import LoadResult, run_load
from tests.helpers.server import ServerProcess


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL this test may stop and start."""
    pg = EmbeddedPostgres(tmp_path / "pg")
    pg.start()
    try:
        yield pg
    finally:
        pg.stop(force=True)


async def create_endpoint(server: ServerProcess) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{server.url}/api/endpoints",
            json={"name": "load"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as resp:
            assert resp.status == 201
            return await resp.json()


async def stored_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT id::text AS id, count(*) AS n FROM hits GROUP BY id")
    finally:
        await conn.close()
    return {r["id"]: r["n"] for r in rows}


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def readyz(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(server.url + "/readyz", timeout=2) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_ready(server: ServerProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(server.url + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready after {timeout_s}s:\n{server.log()[-3000:]}")


def check_none_lost(result: LoadResult, stored: dict[str, int], scenario: str) -> None:
    acknowledged = set(result.acknowledged)
    lost = acknowledged - set(stored)
    twice = {hit_id: n for hit_id, n in stored.items() if n != 1}
    print(f"{scenario}: {result.summary()} stored={len(stored)} lost={len(lost)}")
    assert len(acknowledged) == len(result.acknowledged)
    assert not lost, f"{len(lost)} acknowledged hits lost"
    assert not twice, f"stored more than once: {twice}"
    assert set(stored) <= acknowledged | set(stored)


async def test_database_outage_spools_then_replays(
    own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    server = ServerProcess(
        tmp_path / "data", database_url=own_postgres.url, extra=["--commit-timeout-s", "2"]
    ).start()
    try:
        endpoint = await create_endpoint(server)
        stop = asyncio.Event()
        load = asyncio.create_task(
            run_load(f"{server.capture_url}/p/{endpoint['token']}", stop, workers=8)
        )
        await asyncio.sleep(1.5)
        await asyncio.to_thread(own_postgres.stop, force=True)
        await asyncio.sleep(2.5)  # capture keeps answering from the spool
        assert await asyncio.to_thread(http_status, server.url + "/healthz") == 200
        # readyz says in words what is wrong: the database (not ours) is down, hits spool
        status, body = await asyncio.to_thread(readyz, server)
        assert status == 503 and body["status"] == "unavailable", body
        (database,) = [p for p in body["problems"] if p.startswith("database: ")]
        assert database.startswith("database: PostgreSQL is not answering ("), database
        assert "; hits are being spooled (" in database, database
        await asyncio.to_thread(own_postgres.start)
        await asyncio.sleep(1.5)
        stop.set()
        result = await load
        await asyncio.to_thread(wait_ready, server)
    finally:
        assert server.stop() == 0, server.log()[-3000:]
    assert "writer.spooling" in server.log()
    assert "spool.replayed" in server.log()
    assert result.statuses.get(200, 0) > 100
    check_none_lost(result, await stored_counts(own_postgres.url), "outage")


async def test_sigkill_while_spooling_then_restart_drains(
    own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(
        data_dir, database_url=own_postgres.url, extra=["--commit-timeout-s", "2"]
    ).start()
    endpoint = await create_endpoint(server)
    stop = asyncio.Event()
    load = asyncio.create_task(
        run_load(f"{server.capture_url}/p/{endpoint['token']}", stop, workers=8)
    )
    await asyncio.sleep(1.0)
    await asyncio.to_thread(own_postgres.stop, force=True)
    await asyncio.sleep(1.5)
    server.signal(signal.SIGKILL)
    server.wait()
    stop.set()
    result = await load
    assert list((data_dir / "spool").glob("*.spool")), "nothing was spooled"
    await asyncio.to_thread(own_postgres.start)
    restarted = ServerProcess(
        data_dir, database_url=own_postgres.url, port=server.port, capture_port=server.capture_port
    ).start()
    try:
        assert "spool.drained" in restarted.log()
    finally:
        assert restarted.stop() == 0
    assert not list((data_dir / "spool").glob("*.spool"))
    check_none_lost(result, await stored_counts(own_postgres.url), "sigkill")


async def test_sigkill_under_load_then_restart(
    own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, database_url=own_postgres.url).start()
    endpoint = await create_endpoint(server)
    stop = asyncio.Event()
    load = asyncio.create_task(
        run_load(f"{server.capture_url}/p/{endpoint['token']}", stop, workers=16)
    )
    await asyncio.sleep(2.0)
    server.signal(signal.SIGKILL)
    server.wait()
    stop.set()
    result = await load
    restarted = ServerProcess(data_dir, database_url=own_postgres.url).start()
    restarted.stop()
    check_none_lost(result, await stored_counts(own_postgres.url), "sigkill-db-up")


async def test_sigterm_under_load_exits_promptly(
    own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    server = ServerProcess(tmp_path / "data", database_url=own_postgres.url).start()
    endpoint = await create_endpoint(server)
    stop = asyncio.Event()
    load = asyncio.create_task(
        run_load(f"{server.capture_url}/p/{endpoint['token']}", stop, workers=16)
    )
    await asyncio.sleep(2.0)
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    code = await asyncio.to_thread(server.wait, 30)
    elapsed = time.monotonic() - started
    stop.set()
    result = await load
    assert code == 0
    assert elapsed < 15, f"took {elapsed:.1f}s to stop"
    check_none_lost(result, await stored_counts(own_postgres.url), "sigterm")


async def test_full_spool_answers_503_not_200(
    own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    server = ServerProcess(
        tmp_path / "data",
        database_url=own_postgres.url,
        extra=["--commit-timeout-s", "1", "--spool-max-bytes", "20000"],
    ).start()
    try:
        endpoint = await create_endpoint(server)
        await asyncio.to_thread(own_postgres.stop, force=True)
        stop = asyncio.Event()
        load = asyncio.create_task(
            run_load(f"{server.capture_url}/p/{endpoint['token']}", stop, workers=4)
        )
        await asyncio.sleep(3.0)
        stop.set()
        result = await load
        assert result.statuses.get(503, 0) > 0, result.summary()
        assert "spool.full" in server.log()
        await asyncio.to_thread(own_postgres.start)
        await asyncio.to_thread(wait_ready, server)
    finally:
        server.stop()
    check_none_lost(result, await stored_counts(own_postgres.url), "spool-full")
