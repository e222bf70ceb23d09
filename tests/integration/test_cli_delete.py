"""`hits delete` and `endpoint clear` from the CLI, run as processes against the test
database the app's capture writes to."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.server import cli


async def fire(capture: CaptureClient, endpoint: dict[str, Any], query: str) -> str:
    resp = await capture.get(capture_path(endpoint) + query)
    assert resp.status == 200, await resp.text()
    return resp.headers["X-Postback-Monitor-Hit-Id"]


async def run(pg_url: str, tmp_path: Path, *args: str) -> Any:
    return await asyncio.to_thread(cli, *args, url=pg_url, tmp_path=tmp_path)


async def test_hits_delete_and_endpoint_clear(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, pg_url: str, tmp_path: Path
) -> None:
    endpoint = await make_endpoint("cli-delete")
    ident = str(endpoint["id"])
    first = await fire(capture, endpoint, "?click_id=z1")
    await fire(capture, endpoint, "?click_id=z2")
    await fire(capture, endpoint, "?click_id=z3")

    out = await run(pg_url, tmp_path, "hits", "delete", first)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"deleted hit {first} of endpoint {ident}"
    assert (await client.get(f"/api/hits/{first}", headers=AUTH)).status == 404
    out = await run(pg_url, tmp_path, "hits", "delete", first)
    assert out.returncode == 1
    assert f"no hit with id {first}" in out.stderr

    # Without --yes nothing is deleted.
    out = await run(pg_url, tmp_path, "endpoint", "clear", ident)
    assert out.returncode == 2
    assert "add --yes" in out.stderr
    listing = await client.get(f"/api/endpoints/{ident}/hits", headers=AUTH)
    assert len((await listing.json())["items"]) == 2

    out = await run(pg_url, tmp_path, "endpoint", "clear", ident, "--yes")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"deleted 2 hits of endpoint {ident}"
    listing = await client.get(f"/api/endpoints/{ident}/hits", headers=AUTH)
    assert (await listing.json())["items"] == []
    out = await run(pg_url, tmp_path, "endpoint", "clear", "999999", "--yes")
    assert out.returncode == 1
    assert "no endpoint with id 999999" in out.stderr
