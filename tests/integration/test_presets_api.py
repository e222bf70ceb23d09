"""Platform presets through the API and the capture listener: the list, an endpoint's
ready postback URL, and a pasted postback URL flagged until its macros are filled.
(The presets themselves, as data and pure judging: tests/unit/test_presets.py.)"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient

from monitor.rules.presets import PRESETS, postback_url, preset_list
from tests.conftest import AUTH, CaptureClient
from tests.helpers import rawhttp
from tests.unit.test_presets import EXPECTED_KEYS


async def test_api_lists_presets(client: TestClient) -> None:
    resp = await client.get("/api/presets", headers=AUTH)
    assert resp.status == 200
    items = (await resp.json())["items"]
    assert items == preset_list()
    assert {item["key"] for item in items} == EXPECTED_KEYS
    assert (await client.get("/api/presets")).status == 401


async def test_endpoint_gives_the_ready_postback_url_of_its_preset(
    client: TestClient, make_endpoint: Any
) -> None:
    plain = await make_endpoint("plain")
    assert plain["postback_url"] is None
    endpoint = await make_endpoint("voluum", settings={"preset": " Voluum "})
    assert endpoint["settings"]["preset"] == "voluum"
    assert endpoint["postback_url"] == endpoint["capture_url"] + "?" + PRESETS["voluum"].template
    assert endpoint["capture_url"].startswith("http://capture.test/p/")
    path = f"/api/endpoints/{endpoint['id']}"
    for fetched in (
        await client.get(path, headers=AUTH),
        await client.get("/api/endpoints", headers=AUTH),
    ):
        doc = await fetched.json()
        listed = doc["items"][-1] if "items" in doc else doc
        assert listed["postback_url"] == endpoint["postback_url"]
    changed = await client.patch(path, json={"settings": {"preset": "everflow"}}, headers=AUTH)
    assert (await changed.json())["postback_url"] == postback_url(
        "everflow", endpoint["capture_url"]
    )
    # settings merge (RFC 7396): {} changes nothing, a null preset drops it.
    kept = await client.patch(path, json={"settings": {}}, headers=AUTH)
    assert (await kept.json())["postback_url"] == (await changed.json())["postback_url"]
    dropped = await client.patch(path, json={"settings": {"preset": None}}, headers=AUTH)
    assert (await dropped.json())["postback_url"] is None
    rotated = await (await client.post(f"{path}/rotate-token", headers=AUTH)).json()
    assert rotated["postback_url"] is None


@pytest.mark.parametrize("key", ["everflow", "redtrack", "generic"])
async def test_pasted_postback_url_is_flagged_until_its_macros_are_filled(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, key: str
) -> None:
    endpoint = await make_endpoint(key, settings={"preset": key})
    url = urlsplit(endpoint["postback_url"])
    host, port = capture.host, capture.port

    async def send(query: str) -> dict[str, Any]:
        status, response = await rawhttp.send(
            host, port, rawhttp.get(f"{url.path}?{query}", close=True)
        )
        assert status == 200
        hit_id = rawhttp.header(response, "X-Postback-Monitor-Hit-Id")
        assert hit_id is not None
        resp = await client.get(f"/api/hits/{hit_id}", headers=AUTH)
        return await resp.json()

    # Pasted as is: every placeholder is flagged with an explanation.
    unfilled = await send(url.query)
    flags = unfilled["flags"]
    assert flags and {flag["flag"] for flag in flags} == {"unreplaced_macro"}
    assert {flag["param"] for flag in flags} == {
        part.partition("=")[0] for part in url.query.split("&")
    }
    assert all("did not replace it" in flag["message"] for flag in flags)
    # Filled in by the platform: clean.
    preset = PRESETS[key]
    filled = []
    for part in url.query.split("&"):
        name = part.partition("=")[0]
        value = {preset.amount_param: "3.10", preset.currency_param: "EUR"}.get(name, f"v-{name}")
        filled.append(f"{name}={value}")
    clean = await send("&".join(filled))
    assert clean["flags"] == []
    assert clean["click_id"] == f"v-{preset.click_id_param}"
