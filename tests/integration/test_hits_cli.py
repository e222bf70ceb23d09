"""`hits list --forward-state` and `hits replay` run as processes against the test
database (issue #14 item 10): the failed forwards of an endpoint found and replayed
from the command line, with progress."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from monitor.config import Config
from tests.conftest import CaptureClient
from tests.helpers.server import cli
from tests.helpers.tracker import Tracker
from tests.integration.test_replays import failed_then_delivered


@pytest.fixture
def config(config: Config) -> Config:
    return config.replace(forward_allow=("127.0.0.1",), forward_poll_s=0.1, outbound_timeout_s=5.0)


async def run(*args: str, pg_url: str, tmp_path: Path) -> Any:
    return await asyncio.to_thread(cli, "hits", *args, url=pg_url, tmp_path=tmp_path)


async def test_failed_forwards_listed_and_replayed_from_the_cli(
    client: TestClient,
    capture: CaptureClient,
    make_endpoint: Any,
    tracker: Tracker,
    pg_url: str,
    tmp_path: Path,
) -> None:
    endpoint, failed, delivered = await failed_then_delivered(
        client, capture, make_endpoint, tracker
    )
    ident = str(endpoint["id"])
    out = await run("list", ident, "--forward-state", "failed", pg_url=pg_url, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(failed)
    assert all("forward=failed" in line for line in lines)
    assert "3 hit(s)" in out.stderr
    out = await run("list", ident, "--json", "-n", "1", pg_url=pg_url, tmp_path=tmp_path)
    page = json.loads(out.stdout)
    assert [h["id"] for h in page["items"]] == [delivered[-1]] and page["next_cursor"]
    assert page["items"][0]["forward_state"] == "delivered"
    out = await run("list", ident, "--forward-state", "lost", pg_url=pg_url, tmp_path=tmp_path)
    assert out.returncode == 1 and "forward_state: one of pending" in out.stderr

    # The replay leaves from the CLI's process: it needs the server's --forward-allow.
    before = len(tracker.requests)
    out = await run(
        "replay", ident, "--forward-state", "failed", "--since", "2020-01-01T00:00:00Z",
        "--forward-allow", "127.0.0.1", pg_url=pg_url, tmp_path=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "replayed 3/3: 3 delivered, 0 failed"
    assert {r.header("X-Postback-Monitor-Hit-Id") for r in tracker.requests[before:]} == set(failed)
    out = await run("list", ident, "--forward-state", "failed", pg_url=pg_url, tmp_path=tmp_path)
    assert out.stdout == "" and "0 hit(s)" in out.stderr

    # Failures are counted and give exit 1; no target is refused with the reason.
    tracker.default = 503
    out = await run(
        "replay", ident, "--click-id", "d0", "--forward-allow", "127.0.0.1",
        pg_url=pg_url, tmp_path=tmp_path,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stdout.splitlines()[-1] == "replayed 1/1: 0 delivered, 1 failed"
    plain = await make_endpoint(name="plain")
    out = await run("replay", str(plain["id"]), pg_url=pg_url, tmp_path=tmp_path)
    assert out.returncode == 1 and "no forward target" in out.stderr
