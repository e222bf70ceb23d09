"""The OpenAPI document names every operation for generated clients: a unique
operationId (camelCase) and one tag per resource."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from monitor.web.api.openapi import HTTP_METHODS
from tests.conftest import AUTH

RESOURCE_TAGS = {
    "endpoints", "hits", "presets", "forwards", "export", "tester", "replays", "reconciliations",
    "share-links",
    "senders",
    "tokens",
    "channels",
    "audit",
    "alerts",
    "charts",
}  # fmt: skip


async def test_every_operation_has_a_unique_operation_id_and_a_tag(client: TestClient) -> None:
    document: dict[str, Any] = await (await client.get("/api/openapi.json", headers=AUTH)).json()
    operations = [
        (method, path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]
    assert len(operations) >= 14
    ids = [op.get("operationId") for _, _, op in operations]
    assert all(isinstance(i, str) and re.fullmatch(r"[a-z][A-Za-z0-9]*", i) for i in ids), ids
    assert len(set(ids)) == len(ids), ids
    declared = {t["name"] for t in document["tags"]}
    assert declared == RESOURCE_TAGS
    for method, path, op in operations:
        assert len(op.get("tags", ())) == 1 and op["tags"][0] in declared, (method, path)
    # Stable names for what clients call most (changing one breaks generated clients).
    by_route = {(m, p): op["operationId"] for m, p, op in operations}
    assert by_route[("get", "/api/endpoints/{endpoint_id}/hits")] == "listEndpointHits"
    assert by_route[("patch", "/api/endpoints/{endpoint_id}")] == "updateEndpoint"
    assert by_route[("get", "/api/endpoints/{endpoint_id}/export")] == "exportEndpointHits"
    assert {op["tags"][0] for _, _, op in operations} == RESOURCE_TAGS
