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


async def test_endpoint_update_merges_settings_as_the_api_does(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    def run(*args: str) -> str:
        out = cli(*args, url=pg_url, tmp_path=tmp_path)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def settings_after(*update: str) -> dict[str, object]:
        run("endpoint", "update", endpoint_id, "--settings", *update)
        return dict(json.loads(run("endpoint", "show", endpoint_id))["settings"])

    created = json.loads(
        await asyncio.to_thread(
            run, "endpoint", "create", "binom", "--preset", "binom", "--json",
            "--settings", '{"dedupe": {"window": "24h"}}',
        )
    )  # fmt: skip
    endpoint_id = str(created["id"])
    assert await asyncio.to_thread(settings_after, '{"required_params": ["payout"]}') == {
        "preset": "binom",
        "dedupe": {"window": "24h"},
        "required_params": ["payout"],
    }
    assert await asyncio.to_thread(settings_after, '{"dedupe": null}') == {
        "preset": "binom",
        "required_params": ["payout"],
    }
