"""The real `postback-monitor serve` process: zero-setup start, graceful stop, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from itertools import chain
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import ADMIN_TOKEN, AUTH
from tests.helpers.rawhttp import free_port
from tests.helpers.server import ServerProcess, cli


async def create_endpoint(base: str, token: str, name: str = "e") -> dict[str, Any]:
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{base}/api/endpoints",
            json={"name": name},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 201
            return await resp.json()


def postgres_running(pgdata: Path) -> bool:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return any(str(pgdata) in line and "postgres" in line for line in out.splitlines())


async def test_zero_setup_start_with_embedded_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, database_url=None, admin_token=None).start()
    try:
        token = (data_dir / "admin_token").read_text().strip()
        assert token in server.log()  # printed once, on first start, with both listeners
        assert f"Web address: {server.url}/" in server.log()
        assert f"Capture URLs: {server.capture_url}/p/<token>" in server.log()
        assert (data_dir / "admin_token").stat().st_mode & 0o077 == 0
        endpoint = await create_endpoint(server.url, token)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{server.capture_url}/p/{endpoint['token']}?click_id=zero") as resp:
                assert resp.status == 200
            async with s.get(
                f"{server.url}/api/endpoints/{endpoint['id']}/hits",
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                hits = (await resp.json())["items"]
        assert [h["params"] for h in hits] == [[["click_id", "zero"]]]
    finally:
        assert server.stop() == 0
    assert not postgres_running(data_dir / "pgdata")
    first_log = server.log()
    # The second start reuses the cluster and the token, and does not print it again.
    server = ServerProcess(data_dir, database_url=None, admin_token=None).start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(
                f"{server.url}/api/endpoints", headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                assert [e["name"] for e in (await resp.json())["items"]] == ["e"]
    finally:
        assert server.stop() == 0
    assert first_log.count(token) == 1
    assert token not in server.log()


async def test_sigterm_in_flight_loses_no_acknowledged_hit(
    pg_url: str, tmp_path: Path, db: Any
) -> None:
    server = ServerProcess(tmp_path / "data", database_url=pg_url).start()
    endpoint = await create_endpoint(server.url, ADMIN_TOKEN)
    url = f"{server.capture_url}/p/{endpoint['token']}"
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def sender(worker: int) -> None:
        async with aiohttp.ClientSession() as s:
            i = 0
            while not stop.is_set():
                click = f"w{worker}-{i}"
                i += 1
                try:
                    async with s.get(url, params={"click_id": click}) as resp:
                        if resp.status == 200:
                            acknowledged.append(click)
                except aiohttp.ClientError:
                    await asyncio.sleep(0.01)

    senders = [asyncio.create_task(sender(w)) for w in range(20)]
    await asyncio.sleep(1.5)
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    code = await asyncio.to_thread(server.wait, 30)
    elapsed = time.monotonic() - started
    stop.set()
    await asyncio.gather(*senders)
    assert code == 0, server.log()
    assert elapsed < 30
    assert len(acknowledged) > 50
    stored = {
        r["click_id"]
        for r in await db.fetch("SELECT click_id FROM hits WHERE endpoint_id = $1", endpoint["id"])
    }
    lost = set(acknowledged) - stored
    assert not lost, f"{len(lost)} acknowledged hits lost"


async def test_cli_endpoint_and_hits(pg_url: str, tmp_path: Path, db: asyncpg.Connection) -> None:
    out = await asyncio.to_thread(
        cli, "endpoint", "create", "from cli", "--json", url=pg_url, tmp_path=tmp_path
    )
    assert out.returncode == 0, out.stderr
    endpoint = json.loads(out.stdout)
    assert endpoint["capture_url"].startswith("https://pb.example/p/")
    out = await asyncio.to_thread(cli, "endpoint", "list", url=pg_url, tmp_path=tmp_path)
    assert "from cli" in out.stdout and endpoint["capture_url"] in out.stdout
    out = await asyncio.to_thread(cli, "endpoint", "show", "999", url=pg_url, tmp_path=tmp_path)
    assert out.returncode == 1 and "no endpoint with id 999" in out.stderr

    server = ServerProcess(tmp_path / "data", database_url=pg_url).start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{server.capture_url}/p/{endpoint['token']}?click_id=first") as resp:
                assert resp.status == 200
        out = await asyncio.to_thread(
            cli,
            "hits",
            "tail",
            str(endpoint["id"]),
            "--no-follow",
            "--json",
            url=pg_url,
            tmp_path=tmp_path,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.splitlines()[0])["params"] == [["click_id", "first"]]

        # Follow mode prints a hit that arrives after it started.
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        tail = subprocess.Popen(  # noqa: ASYNC220 - a process that outlives this call
            [
                sys.executable,
                "-m",
                "monitor",
                "hits",
                "tail",
                str(endpoint["id"]),
                "-n",
                "0",
                "--database-url",
                pg_url,
                "--data-dir",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            await asyncio.sleep(2.0)
            async with aiohttp.ClientSession() as s:
                async with s.get(
                    f"{server.capture_url}/p/{endpoint['token']}?click_id=live-one"
                ) as resp:
                    assert resp.status == 200
            line = await asyncio.wait_for(asyncio.to_thread(tail.stdout.readline), 15)  # type: ignore[union-attr]
            assert "click_id=live-one" in line
            assert "GET" in line
        finally:
            tail.terminate()
            tail.communicate(timeout=10)
    finally:
        server.stop()

    out = await asyncio.to_thread(
        cli, "endpoint", "delete", str(endpoint["id"]), url=pg_url, tmp_path=tmp_path
    )
    assert out.returncode == 0 and "its 2 hits" in out.stdout
    assert await db.fetchval("SELECT count(*) FROM endpoints") == 0


def test_bad_setting_fails_at_start_naming_it(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "serve", "--port", "99999"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "port" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "serve", "--batch-max-hits", "many"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "batch_max_hits" in out.stderr
    _ = AUTH


@pytest.mark.parametrize(
    ("flag", "listener"), [("--port", "management"), ("--capture-port", "capture")]
)
def test_port_in_use_is_one_clear_line(tmp_path: Path, flag: str, listener: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--port": str(free_port()), "--capture-port": str(free_port()), flag: str(port)}
        out = subprocess.run(
            [
                *(sys.executable, "-m", "monitor", "serve", *chain.from_iterable(ports.items())),
                *("--data-dir", str(tmp_path), "--database-url", "postgresql://127.0.0.1:1/none"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"postback-monitor: cannot listen on 127.0.0.1:{port} ({listener}): Address already in use"
    ]


def test_both_listeners_on_one_address_is_refused_naming_the_setting(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "serve", "--port", "9000", "--capture-port", "9000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "capture_port" in out.stderr


async def test_capture_url_is_the_capture_listener(tmp_path: Path, pg_url: str) -> None:
    server = ServerProcess(tmp_path / "data", database_url=pg_url).start()
    try:
        endpoint = await create_endpoint(server.url, ADMIN_TOKEN)
        expected = f"http://127.0.0.1:{server.capture_port}/p/{endpoint['token']}"
        assert endpoint["capture_url"] == expected
        async with aiohttp.ClientSession() as s:
            async with s.get(endpoint["capture_url"]) as resp:
                assert resp.status == 200
            async with s.get(f"{server.url}/p/{endpoint['token']}") as resp:
                assert resp.status == 404  # not on the management listener
        started = next(line for line in server.log().splitlines() if "serve.started" in line)
        assert json.loads(started)["capture_url"] == server.capture_url
        assert json.loads(started)["management_url"] == server.url
    finally:
        assert server.stop() == 0
