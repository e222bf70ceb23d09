"""Hostile bodies are stored whole and answered; their parsed views are cut and flagged."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from monitor.rules.params import MAX_PARAMS
from tests.conftest import CaptureClient, capture_path
from tests.integration.test_capture import body_bytes, only_hit

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("body", "body_params", "reason"),
    [
        # The case: 500,000 numbers in 1 MiB took seconds and stalled every sender.
        (b"[" + b"1," * (MIB // 2 - 2) + b"1]", MAX_PARAMS, f"more than {MAX_PARAMS} params"),
        (b"[" * (MIB // 2) + b"]" * (MIB // 2), 0, "JSON nested deeper than 32 levels"),
    ],
)
async def test_hostile_json_is_stored_whole_with_a_cut_view(
    client: TestClient,
    capture: CaptureClient,
    make_endpoint: Any,
    body: bytes,
    body_params: int,
    reason: str,
) -> None:
    endpoint = await make_endpoint()
    resp = await capture.post(
        capture_path(endpoint) + "?click_id=c1",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 200
    hit = await only_hit(client, endpoint)
    assert body_bytes(hit) == body
    assert len(hit["body_params"]) == body_params
    assert hit["params"] == [["click_id", "c1"]]
    (flag,) = hit["flags"]
    assert (flag["flag"], flag["part"]) == ("params_truncated", "body")
    assert reason in flag["message"]


async def test_lone_surrogate_in_json_is_stored_not_a_server_error(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    resp = await capture.post(
        capture_path(endpoint),
        data=b'{"click_id": "\\ud800"}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 200
    hit = await only_hit(client, endpoint)
    assert hit["body_params"] == [["click_id", "\ufffd"]]
    assert hit["click_id"] == "\ufffd"
