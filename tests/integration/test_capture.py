"""Capture round-trips every method and body kind byte-exact through the API."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AUTH, CaptureClient, capture_path, open_capture
from tests.helpers import rawhttp


async def only_hit(client: TestClient, endpoint: dict[str, Any]) -> dict[str, Any]:
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/hits", headers=AUTH)
    assert resp.status == 200
    items = (await resp.json())["items"]
    assert len(items) == 1, items
    resp = await client.get(f"/api/hits/{items[0]['id']}", headers=AUTH)
    assert resp.status == 200
    return await resp.json()


def body_bytes(hit: dict[str, Any]) -> bytes:
    if "body_text" in hit:
        return hit["body_text"].encode("utf-8")
    return base64.b64decode(hit["body_base64"])


BODIES = [
    ("POST", "application/x-www-form-urlencoded", b"click_id=abc&payout=1.50&currency=USD"),
    (
        "POST",
        "application/json",
        b'{"click_id": "abc", "event": {"name": "purchase", "value": 9.99}}',
    ),
    ("POST", "text/plain", b"hello postback"),
    ("POST", "application/octet-stream", bytes(range(256))),
    ("PUT", "application/json", b'{"a": 1}'),
    ("PATCH", "application/x-www-form-urlencoded", b"status=approved"),
    ("DELETE", "", b""),
    ("OPTIONS", "", b""),
    ("POST", "text/plain", b"invalid utf-8 \xff\xfe and NUL \x00 bytes"),
]


@pytest.mark.parametrize(("method", "content_type", "body"), BODIES)
async def test_methods_and_bodies_round_trip(
    client: TestClient,
    capture: CaptureClient,
    make_endpoint: Any,
    method: str,
    content_type: str,
    body: bytes,
) -> None:
    endpoint = await make_endpoint()
    headers = {"Content-Type": content_type} if content_type else {}
    resp = await capture.request(
        method, capture_path(endpoint) + "?click_id=x1", data=body or None, headers=headers
    )
    assert resp.status == 200
    assert await resp.text() == "OK"
    hit = await only_hit(client, endpoint)
    assert hit["method"] == method
    assert body_bytes(hit) == body
    assert hit["body_size"] == len(body)
    assert hit["content_type"] == content_type
    assert hit["query_string"] == "click_id=x1"
    assert hit["params"] == [["click_id", "x1"]]
    assert hit["endpoint_id"] == endpoint["id"]


async def test_get_and_head(client: TestClient, capture: CaptureClient, make_endpoint: Any) -> None:
    endpoint = await make_endpoint()
    resp = await capture.head(capture_path(endpoint) + "?a=1")
    assert resp.status == 200
    resp = await capture.get(capture_path(endpoint) + "?a=2")
    assert resp.status == 200
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/hits", headers=AUTH)
    methods = [h["method"] for h in (await resp.json())["items"]]
    assert methods == ["GET", "HEAD"]


async def test_body_hex_and_json_parsing(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    body = b'{"click_id": "c-1", "amount": 2.5, "ok": true, "none": null, "items": [{"sku": "A"}]}'
    await capture.post(
        capture_path(endpoint), data=body, headers={"Content-Type": "application/json"}
    )
    hit = await only_hit(client, endpoint)
    assert hit["body_params"] == [
        ["click_id", "c-1"],
        ["amount", "2.5"],
        ["ok", "true"],
        ["items.0.sku", "A"],
    ]
    assert hit["body_text"] == body.decode()


async def test_raw_query_kept_exactly(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    raw = (
        "cid=%7Bclickid%7D&x=%ZZ&nul=%00&bad=%ff%fe&plus=a+b&flag&k=1&k=2"
        "&%D0%BA%D0%BB%D1%8E%D1%87=%F0%9F%98%80"
    )
    target = capture_path(endpoint) + "/tail/part?" + raw
    status, _ = await rawhttp.send(capture.host, capture.port, rawhttp.get(target, close=True))
    assert status == 200
    hit = await only_hit(client, endpoint)
    assert hit["query_string"] == raw
    assert hit["path"] == capture_path(endpoint) + "/tail/part"
    assert hit["params"] == [
        ["cid", "{clickid}"],
        ["x", "%ZZ"],
        ["nul", "\ufffd"],
        ["bad", "\ufffd\ufffd"],
        ["plus", "a b"],
        ["flag", ""],
        ["k", "1"],
        ["k", "2"],
        ["ключ", "😀"],
    ]


async def test_two_hundred_params_and_megabyte_body(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    query = "&".join(f"p{i}=v{i}" for i in range(200))
    body = bytes(i % 251 for i in range(1024 * 1024))
    resp = await capture.post(capture_path(endpoint) + "?" + query, data=body)
    assert resp.status == 200
    hit = await only_hit(client, endpoint)
    assert hit["params"] == [[f"p{i}", f"v{i}"] for i in range(200)]
    assert body_bytes(hit) == body
    assert hit["flags"] == []


async def test_oversized_body_kept_truncated_and_flagged(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    body = b"x" * (1024 * 1024 + 10)
    resp = await capture.post(capture_path(endpoint), data=io.BytesIO(body))
    assert resp.status == 200
    hit = await only_hit(client, endpoint)
    assert hit["body_size"] == len(body)
    assert body_bytes(hit) == body[: 1024 * 1024]
    assert [f["flag"] for f in hit["flags"]] == ["body_truncated"]


async def test_headers_ordered_with_repeats(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    from multidict import CIMultiDict

    endpoint = await make_endpoint()
    headers = CIMultiDict(
        [("X-Tag", "one"), ("X-Other", "x"), ("X-Tag", "two"), ("User-Agent", "Tracker/1.0")]
    )
    await capture.get(capture_path(endpoint), headers=headers)
    hit = await only_hit(client, endpoint)
    sent = [h for h in hit["headers"] if h[0].lower() in ("x-tag", "x-other")]
    assert sent == [["X-Tag", "one"], ["X-Other", "x"], ["X-Tag", "two"]]
    assert hit["user_agent"] == "Tracker/1.0"
    assert hit["remote_ip"] == "127.0.0.1"


async def test_unknown_token_is_404_and_not_stored(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: Any
) -> None:
    await make_endpoint()
    resp = await capture.get("/p/not-a-real-token?click_id=1")
    assert resp.status == 404
    assert await db.fetchval("SELECT count(*) FROM hits") == 0


async def test_configured_response(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint(
        response={"status": 202, "body": "success=true;", "content_type": "text/html"}
    )
    resp = await capture.get(capture_path(endpoint))
    assert resp.status == 202
    assert await resp.text() == "success=true;"
    assert resp.headers["Content-Type"].startswith("text/html")


async def test_forwarded_ip_only_from_trusted_proxy(
    aiohttp_client: Any, config: Any, db: Any
) -> None:
    from monitor.server.app import create_app

    for trusted, expected in (((), "127.0.0.1"), (("127.0.0.0/8",), "203.0.113.9")):
        served = config.replace(trusted_proxies=trusted)
        client = await aiohttp_client(create_app(served))
        resp = await client.post("/api/endpoints", json={"name": "p"}, headers=AUTH)
        endpoint = await resp.json()
        async with open_capture(client, served) as capture:
            await capture.get(
                capture_path(endpoint), headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
            )
        hit = await only_hit(client, endpoint)
        assert hit["remote_ip"] == expected


async def test_forwarded_header_rfc7239(aiohttp_client: Any, config: Any, db: Any) -> None:
    from monitor.server.app import create_app

    trusting = config.replace(trusted_proxies=("127.0.0.1/32",), trusted_proxy_header="Forwarded")
    client = await aiohttp_client(create_app(trusting))
    endpoint = await (await client.post("/api/endpoints", json={"name": "p"}, headers=AUTH)).json()
    async with open_capture(client, trusting) as capture:
        await capture.get(
            capture_path(endpoint), headers={"Forwarded": 'for="[2001:db8::1]:4711";proto=https'}
        )
    assert (await only_hit(client, endpoint))["remote_ip"] == "2001:db8::1"


async def test_raw_non_utf8_bytes_in_request_line(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: Any
) -> None:
    endpoint = await make_endpoint()
    # Raw bytes >= 0x80 are not allowed in a request target: the HTTP parser refuses
    # them with a clear 400 (never a 500), and nothing half-parsed is stored.
    target = capture_path(endpoint).encode() + b"?v=\xff\xfe&s=caf\xc3\xa9"
    request = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, _ = await rawhttp.send(capture.host, capture.port, request)
    assert status == 400
    assert await db.fetchval("SELECT count(*) FROM hits") == 0
    # The same bytes percent-encoded, as senders send them, are captured and decoded.
    status, _ = await rawhttp.send(
        capture.host,
        capture.port,
        rawhttp.get(capture_path(endpoint) + "?v=%ff%fe&s=caf%c3%a9", close=True),
    )
    assert status == 200
    hit = await only_hit(client, endpoint)
    assert hit["params"] == [["v", "\ufffd\ufffd"], ["s", "café"]]


async def test_made_up_tokens_do_not_become_a_flood_of_queries(
    client: TestClient, make_endpoint: Any, pg_url: str
) -> None:
    from monitor.model import ids
    from monitor.storage.db import create_pool
    from monitor.storage.endpoint_cache import MISS_LOOKUPS_PER_S, EndpointCache
    from monitor.storage.endpoints import EndpointStore

    class CountingStore(EndpointStore):
        lookups = 0

        async def by_token(self, token: str) -> Any:
            CountingStore.lookups += 1
            return await super().by_token(token)

    endpoint = await make_endpoint()  # created elsewhere: only the database knows it yet
    pool = await create_pool(pg_url, min_size=1, max_size=2)
    try:
        cache = EndpointCache(CountingStore(pool), pg_url)
        for garbage in ("x", "../../etc", "a" * 500, "not-a-real-token"):
            assert await cache.lookup(garbage) is None
        assert CountingStore.lookups == 0  # not the shape of a token we issue
        assert (await cache.lookup(endpoint["token"])) is not None
        started = time.monotonic()
        for _ in range(500):
            assert await cache.lookup(ids.capture_token()) is None
        # The bucket refills while the loop runs (slowly, on a loaded machine): a
        # second's worth at most, plus what the elapsed time has refilled.
        allowed = MISS_LOOKUPS_PER_S * (1 + time.monotonic() - started) + 5
        assert CountingStore.lookups <= allowed
        assert (await cache.lookup(endpoint["token"])) is not None  # cached now
    finally:
        await pool.close()


async def test_a_reload_keeps_what_changed_while_its_snapshot_was_read(
    make_endpoint: Any, pg_url: str
) -> None:
    """A reload's snapshot read before an endpoint existed must not drop it from the cache."""
    from monitor.storage.db import create_pool
    from monitor.storage.endpoint_cache import EndpointCache
    from monitor.storage.endpoints import EndpointStore

    snapshot_taken = asyncio.Event()
    go_on = asyncio.Event()

    class SlowListStore(EndpointStore):
        async def list(self) -> Any:
            endpoints = await super().list()
            snapshot_taken.set()
            await go_on.wait()  # the snapshot is older than what happens now
            return endpoints

    pool = await create_pool(pg_url, min_size=1, max_size=2)
    try:
        store = SlowListStore(pool)
        cache = EndpointCache(store, pg_url)
        reload = asyncio.create_task(cache.reload_all())
        await snapshot_taken.wait()
        created = await make_endpoint()  # after the snapshot; its NOTIFY is handled now
        await cache.refresh(created["id"])
        go_on.set()
        await reload
        assert cache.get(created["token"]) is not None
    finally:
        await pool.close()


async def test_a_refresh_that_read_an_older_row_does_not_undo_a_newer_change(
    make_endpoint: Any, pg_url: str
) -> None:
    """Refreshes run as tasks: one that read the row before an update, or before a
    delete, may finish after it; the cache keeps the newer state."""
    from dataclasses import replace
    from datetime import timedelta

    from monitor.storage.db import create_pool
    from monitor.storage.endpoint_cache import EndpointCache
    from monitor.storage.endpoints import EndpointStore

    created = await make_endpoint()
    pool = await create_pool(pg_url, min_size=1, max_size=2)
    try:
        cache = EndpointCache(EndpointStore(pool), pg_url)
        current = await cache.store.get(created["id"])
        older = replace(
            current, response_status=299, updated_at=current.updated_at - timedelta(seconds=1)
        )
        cache.put(current)
        cache.put(older)  # the late refresh
        cached = cache.get(created["token"])
        assert cached is not None and cached.response_status == current.response_status
        cache.forget(created["id"])  # deleted
        cache.put(current)  # a refresh that read the row before the delete
        assert cache.get(created["token"]) is None
    finally:
        await pool.close()
