"""Scoped API tokens made through the API with the admin token, for tests."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers.auth import AUTH


async def make_token(
    client: TestClient, scope: str, endpoint_ids: list[int] | None = None, **fields: Any
) -> dict[str, Any]:
    """A new token's JSON, its secret in ``token``."""
    body = {"name": f"{scope} token", "scope": scope, **fields}
    if endpoint_ids is not None:
        body["endpoint_ids"] = endpoint_ids
    resp = await client.post("/api/tokens", json=body, headers=AUTH)
    assert resp.status == 201, await resp.text()
    made: dict[str, Any] = await resp.json()
    return made


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['token']}"}
