"""Every test in this folder starts real processes: all of them are ``slow``, so
``pytest -m "not slow"`` is the fast loop of unit and integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from monitor.config import Config
from monitor.listen import listen
from monitor.server.app import create_app
from monitor.server.serve import start_capture
from tests.conftest import ADMIN_TOKEN
from tests.helpers.browser import DESKTOP, PHONE, Bases, open_page
from tests.helpers.rawhttp import free_port

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def server_config(pg_url: str, tmp_path: Path) -> Config:
    """The settings of the ``server`` fixture; a module overrides this fixture to
    change some (``server_config.replace(...)``)."""
    return Config(
        database_url=pg_url,
        data_dir=tmp_path / "data",
        admin_token=ADMIN_TOKEN,
        host="127.0.0.1",
        port=free_port(),
        capture_port=free_port(),
        batch_max_wait_ms=1.0,
    )


@pytest.fixture
async def server(
    aiohttp_server: Any, server_config: Config, db: asyncpg.Connection
) -> AsyncIterator[Bases]:
    """Both listeners on real ports, in this process: the pages on management, and
    the capture URLs they show working."""
    config = server_config
    app_server = await aiohttp_server(create_app(config), host="127.0.0.1", port=config.port)
    sockets = listen("127.0.0.1", config.capture_port, role="capture")
    await start_capture(app_server.runner, config, sockets, shutdown_timeout_s=5)
    yield Bases(config.management_url, config.base_url)


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    """A desktop-width page (1400 px)."""
    async with open_page(DESKTOP) as page:
        yield page


@pytest.fixture
async def phone() -> AsyncIterator[Any]:
    """A phone-width page (390 px, touch)."""
    async with open_page(PHONE, mobile=True) as page:
        yield page
