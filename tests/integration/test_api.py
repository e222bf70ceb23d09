"""The JSON API: auth, endpoints CRUD, validation, hit pagination."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_TOKEN, AUTH, CaptureClient, capture_path

PROTECTED = [
    ("GET", "/api/endpoints"),
    ("POST", "/api/endpoints"),
    ("GET", "/api/endpoints/1"),
    ("PATCH", "/api/endpoints/1"),
    ("DELETE", "/api/endpoints/1"),
    ("POST", "/api/endpoints/1/rotate-token"),
    ("GET", "/api/endpoints/1/hits"),
    ("GET", "/api/hits/01a21052-cfb3-7b0e-b133-b8af3c96b62f"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_admin_token_required(
    client: TestClient, make_endpoint: Any, method: str, path: str
) -> None:
    await make_endpoint()
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": ADMIN_TOKEN}):
        resp = await client.request(method, path, headers=headers, json={})
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthorized"
        assert "Bearer" in resp.headers["WWW-Authenticate"]
    resp = await client.request(
        method, path, headers=AUTH, json={"name": "x"} if method != "GET" else None
    )
    assert resp.status in (200, 201, 404)


async def test_health_and_capture_need_no_token(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    assert (await capture.get(capture_path(endpoint))).status == 200


async def test_endpoint_crud(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: Any
) -> None:
    created = await make_endpoint("Voluum test", description="campaign 7")
    assert set(created) >= {"id", "token", "name", "capture_url", "settings", "created_at"}
    assert created["capture_url"] == f"http://capture.test/p/{created['token']}"
    assert len(created["token"]) >= 22  # >= 128 random bits, URL-safe
    other = await make_endpoint("second")
    assert other["token"] != created["token"]

    listed = await (await client.get("/api/endpoints", headers=AUTH)).json()
    assert [e["name"] for e in listed["items"]] == ["Voluum test", "second"]

    resp = await client.patch(
        f"/api/endpoints/{created['id']}",
        json={"name": "renamed", "response": {"status": 201, "body": "ok"}},
        headers=AUTH,
    )
    assert resp.status == 200
    updated = await resp.json()
    assert updated["name"] == "renamed"
    assert updated["description"] == "campaign 7"
    assert updated["response"] == {
        "status": 201,
        "body": "ok",
        "content_type": "text/plain; charset=utf-8",
    }
    assert (await capture.get(capture_path(created))).status == 201

    await capture.get(capture_path(created) + "?click_id=1")
    resp = await client.delete(f"/api/endpoints/{created['id']}", headers=AUTH)
    assert resp.status == 200
    assert (await resp.json())["hits_deleted"] == 2
    assert (await client.get(f"/api/endpoints/{created['id']}", headers=AUTH)).status == 404
    assert (await capture.get(capture_path(created))).status == 404
    assert await db.fetchval("SELECT count(*) FROM hits WHERE endpoint_id = $1", created["id"]) == 0


async def test_rotate_token_stops_old_url(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    resp = await client.post(f"/api/endpoints/{endpoint['id']}/rotate-token", headers=AUTH)
    rotated = await resp.json()
    assert rotated["token"] != endpoint["token"]
    assert (await capture.get(capture_path(endpoint))).status == 404
    assert (await capture.get(capture_path(rotated))).status == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_body"),
        ('{"description": "no name"}', "invalid_field"),
        ('{"name": ""}', "invalid_field"),
        ('{"name": 5}', "invalid_field"),
        ('{"name": "x", "bogus": 1}', "invalid_field"),
        ('{"name": "x", "response": {"status": 99}}', "invalid_field"),
        ('{"name": "x", "response": {"status": "200"}}', "invalid_field"),
        ('{"name": "x", "response": {"content_type": "a\\r\\nb"}}', "invalid_field"),
        ('{"name": "x\\u0000y"}', "invalid_field"),
        ('{"name": "x", "settings": []}', "invalid_settings"),
    ],
)
async def test_bad_input_is_a_clear_400(client: TestClient, body: str, code: str) -> None:
    resp = await client.post(
        "/api/endpoints", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == code
    assert error["message"]


async def test_unknown_ids_are_404(client: TestClient) -> None:
    for path in (
        "/api/endpoints/999",
        "/api/endpoints/abc",
        "/api/endpoints/999/hits",
        "/api/hits/not-a-uuid",
        "/api/hits/01a21052-cfb3-7b0e-b133-b8af3c96b62f",
    ):
        resp = await client.get(path, headers=AUTH)
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"].endswith("_not_found")


async def test_bad_query_params_are_400(client: TestClient, make_endpoint: Any) -> None:
    endpoint = await make_endpoint()
    for query in (
        "limit=0",
        "limit=abc",
        "limit=100000",
        "cursor=@@@",
        "since=yesterday",
        "flagged=maybe",
    ):
        resp = await client.get(f"/api/endpoints/{endpoint['id']}/hits?{query}", headers=AUTH)
        assert resp.status == 400, query


async def test_cursor_pagination_is_stable_under_concurrent_inserts(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    await asyncio.gather(*(capture.get(capture_path(endpoint) + f"?n={i}") for i in range(25)))
    seen: list[str] = []
    cursor = None
    page = 0
    while True:
        query = "limit=7" + (f"&cursor={cursor}" if cursor else "")
        body = await (
            await client.get(f"/api/endpoints/{endpoint['id']}/hits?{query}", headers=AUTH)
        ).json()
        seen += [h["id"] for h in body["items"]]
        if page == 0:  # new hits arriving while paging must not shift later pages
            await asyncio.gather(
                *(capture.get(capture_path(endpoint) + f"?late={i}") for i in range(5))
            )
        page += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 25
    assert page == 4
    assert seen == sorted(seen, reverse=True)  # UUIDv7 ids follow capture time


async def test_list_items_omit_body_detail_has_it(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    await capture.post(capture_path(endpoint), data=b"payload")
    items = (
        await (await client.get(f"/api/endpoints/{endpoint['id']}/hits", headers=AUTH)).json()
    )["items"]
    assert "body_text" not in items[0]
    hit = await (await client.get(f"/api/hits/{items[0]['id']}", headers=AUTH)).json()
    assert hit["body_text"] == "payload"
    expected = {
        "id",
        "endpoint_id",
        "received_at",
        "method",
        "path",
        "query_string",
        "params",
        "headers",
        "content_type",
        "body_size",
        "remote_ip",
        "flags",
    }
    assert expected <= set(hit)


async def test_unknown_query_parameters_are_refused(client: TestClient, make_endpoint: Any) -> None:
    endpoint = await make_endpoint()
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/hits?flaged=true", headers=AUTH)
    assert resp.status == 400
    assert "flaged" in (await resp.json())["error"]["message"]
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/hits?flagged=true", headers=AUTH)
    assert resp.status == 200
