"""Export: CSV and NDJSON with the list's filters, streamed in bounded memory."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.conftest import AUTH, CaptureClient, capture_path

# 10,000 hits of ~1.2 KB each: ~12 MB of export that must not sit in memory at once.
SEED = """
INSERT INTO hits (id, endpoint_id, received_at, method, path, raw_query, params, headers,
    body, body_size, click_id, flags, flagged)
SELECT gen_random_uuid(), $1, now() - make_interval(secs => g), 'GET', '/p/x',
    convert_to('click_id=c' || g, 'UTF8'),
    jsonb_build_array(jsonb_build_array('click_id', 'c' || g),
                      jsonb_build_array('pad', repeat('x', 1000))),
    '[]'::jsonb, ''::bytea, 0, 'c' || g,
    CASE WHEN g % 10 = 0 THEN '[{"flag": "missing_param", "param": "p"}]'::jsonb
         ELSE '[]'::jsonb END,
    g % 10 = 0
FROM generate_series(1, $2) AS g"""


async def test_csv_and_ndjson_with_filters(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    for query in ("?click_id=a1&payout=1", "?click_id=%3Dcmd()&payout=2", "?click_id={x}"):
        assert (await capture.get(capture_path(endpoint) + query)).status == 200
    base = f"/api/endpoints/{endpoint['id']}/export"

    resp = await client.get(base + "?format=ndjson", headers=AUTH)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert [h["click_id"] for h in lines] == ["{x}", "=cmd()", "a1"]  # newest first
    listed = await (await client.get(f"/api/endpoints/{endpoint['id']}/hits", headers=AUTH)).json()
    assert lines == listed["items"]  # the same items as the list

    resp = await client.get(base + "?format=csv&flagged=false", headers=AUTH)
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    # A cell a spreadsheet would run as a formula is defused.
    assert [r["click_id"] for r in rows] == ["'=cmd()", "a1"]
    assert json.loads(rows[1]["params"]) == [["click_id", "a1"], ["payout", "1"]]

    resp = await client.get(base + "?format=csv&flag=unreplaced_macro", headers=AUTH)
    [row] = list(csv.DictReader(io.StringIO(await resp.text())))
    assert row["flags"] == "unreplaced_macro"

    resp = await client.get(base + "?format=xml", headers=AUTH)
    assert resp.status == 400
    resp = await client.get("/api/endpoints/999/export", headers=AUTH)
    assert resp.status == 404
    resp = await client.get(base)
    assert resp.status == 401


async def test_export_of_10000_hits_streams_in_bounded_memory(
    client: TestClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint()
    await db.execute(SEED, endpoint["id"], 10_000)
    for fmt in ("ndjson", "csv"):
        tracemalloc.start()
        try:
            resp = await client.get(
                f"/api/endpoints/{endpoint['id']}/export?format={fmt}", headers=AUTH
            )
            assert resp.status == 200
            total = lines = 0
            async for chunk in resp.content.iter_chunked(64 * 1024):
                total += len(chunk)
                lines += chunk.count(b"\n")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert lines == 10_000 + (fmt == "csv")
        assert total > 10_000_000
        # Server and client share this process: all of it stays far below the export.
        assert peak < total / 3, f"{fmt}: peak {peak} bytes for a {total}-byte export"

    resp = await client.get(
        f"/api/endpoints/{endpoint['id']}/export?format=ndjson&flagged=true", headers=AUTH
    )
    assert len((await resp.text()).splitlines()) == 1000
