from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.listen import listen
from monitor.server.app import create_app
from monitor.server.serve import start_capture
from monitor.storage.db import connect
from tests.helpers.auth import ADMIN_TOKEN, AUTH
from tests.helpers.pg import ScratchDatabase
from tests.helpers.server import ServerProcess
from tests.helpers.smtp import SmtpServer
from tests.helpers.tracker import Tracker

# Keeps pytest-timeout's limit when its alarm reaches another thread (see the module).
pytest_plugins = ["tests.helpers.watchdog"]

__all__ = ["ADMIN_TOKEN", "AUTH", "CaptureClient", "capture_path", "open_capture"]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # pytest numbers its temp dirs pytest-0, -1, ... and prunes old ones; runs that
    # overlap on one machine would prune each other's (and their embedded Postgres).
    if not config.option.basetemp:
        config.option.basetemp = tempfile.mkdtemp(prefix="pbm-tests-")
        config.stash[OWN_BASETEMP] = config.option.basetemp


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(OWN_BASETEMP, None)
    if own and getattr(config, "_pbm_exitstatus", 1) == 0:
        shutil.rmtree(own, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._pbm_exitstatus = exitstatus  # type: ignore[attr-defined]


OWN_BASETEMP = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def test_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchDatabase]:
    db = ScratchDatabase(tmp_path_factory.mktemp("db"))
    db.start()
    try:
        yield db
    finally:
        db.stop()


@pytest.fixture(scope="session")
def pg_url(test_db: ScratchDatabase) -> str:
    return test_db.url


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database, emptied before the test."""
    conn = await connect(pg_url)
    await conn.execute(
        "TRUNCATE endpoints, hits, click_keys, click_lifecycle, forward_outbox, forward_attempts,"
        " endpoint_senders, endpoint_param_shapes, hit_hours,"
        " reconciliations, api_tokens, web_sessions, channels, channel_deliveries,"
        " reconciliation_items, reconciliation_rows, share_links, audit_log, alerts"
        " RESTART IDENTITY"
    )
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Iterator[ServerProcess]:
    """A real `postback-monitor serve` process on the test database, per test module."""
    proc = ServerProcess(tmp_path_factory.mktemp("serve"), database_url=pg_url).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def config(pg_url: str, tmp_path: Path) -> Config:
    return Config(
        database_url=pg_url,
        data_dir=tmp_path / "data",
        admin_token=ADMIN_TOKEN,
        public_url="http://capture.test",
        batch_max_wait_ms=1.0,
    )


@pytest.fixture
async def client(aiohttp_client: Any, config: Config, db: asyncpg.Connection) -> TestClient:
    return await aiohttp_client(create_app(config))


class CaptureClient:
    """Requests to the capture listener of the ``client`` fixture's app: the front
    protocol that senders meet, not a copy of it."""

    host = "127.0.0.1"

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session = session
        self.port = port
        self.base = f"http://{self.host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> Any:
        return self.request("HEAD", path, **kwargs)


@contextlib.asynccontextmanager
async def open_capture(client: TestClient, config: Config) -> AsyncIterator[CaptureClient]:
    """The capture listener for ``client``'s app, on a free port, started after the
    app's startup (its writer and endpoint cache exist), as ``serve`` starts it."""
    runner = client.server.runner
    assert isinstance(runner, web.AppRunner)
    sockets = listen("127.0.0.1", 0, role="capture")
    site = await start_capture(runner, config, sockets, shutdown_timeout_s=5)
    try:
        async with aiohttp.ClientSession() as session:
            yield CaptureClient(session, site.port)
    finally:
        await site.stop()


@pytest.fixture
async def capture(client: TestClient, config: Config) -> AsyncIterator[CaptureClient]:
    """The capture listener of the ``client`` fixture's app."""
    async with open_capture(client, config) as opened:
        yield opened


@pytest.fixture
def make_endpoint(client: TestClient) -> Any:
    """Create an endpoint through the API; returns its JSON."""

    async def make(name: str = "test", **fields: Any) -> dict[str, Any]:
        resp = await client.post("/api/endpoints", json={"name": name, **fields}, headers=AUTH)
        assert resp.status == 201, await resp.text()
        return await resp.json()

    return make


@pytest.fixture
async def tracker() -> AsyncIterator[Tracker]:
    """A local aiohttp server standing in for a tracker at the far end."""
    t = await Tracker().start()
    try:
        yield t
    finally:
        await t.close()


def capture_path(endpoint: dict[str, Any]) -> str:
    return f"/p/{endpoint['token']}"


def pytest_report_header() -> str:
    where = os.environ.get("DATABASE_URL") or "embedded PostgreSQL (no DATABASE_URL)"
    return f"postback-monitor tests against: {where}"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd), standing in for the mail relay."""
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()
