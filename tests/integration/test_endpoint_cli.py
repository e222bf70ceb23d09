"""`endpoint create --preset` from the CLI, run as a process against the test database:
the ready postback URL in words and in JSON, and a mistyped preset named."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg

from monitor.rules.presets import PRESETS
from tests.helpers.server import cli


async def test_endpoint_create_with_a_preset(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    out = await asyncio.to_thread(
        cli,
        "endpoint",
        "create",
        "from voluum",
        "--preset",
        "voluum",
        url=pg_url,
        tmp_path=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    template = PRESETS["voluum"].template
    assert "postback URL (voluum): https://pb.example/p/" in out.stdout
    line = next(line for line in out.stdout.splitlines() if "postback URL" in line)
    assert line.endswith("?" + template)

    out = await asyncio.to_thread(
        cli,
        "endpoint",
        "create",
        "json",
        "--preset",
        "Everflow",
        "--settings",
        '{"dedupe": {"window": "24h"}}',
        "--json",
        url=pg_url,
        tmp_path=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    endpoint = json.loads(out.stdout)
    assert endpoint["settings"] == {"preset": "everflow", "dedupe": {"window": "24h"}}
    assert endpoint["postback_url"] == endpoint["capture_url"] + "?" + PRESETS["everflow"].template

    out = await asyncio.to_thread(
        cli, "endpoint", "create", "typo", "--preset", "volum", url=pg_url, tmp_path=tmp_path
    )
    assert out.returncode == 1
    assert "unknown preset 'volum'" in out.stderr and "voluum" in out.stderr
    assert await db.fetchval("SELECT count(*) FROM endpoints") == 2
