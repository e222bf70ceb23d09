"""Issue #14, items 11 and 12 through the JSON API: PATCH merges settings (JSON Merge
Patch, RFC 7396); the hit list's q, method and flag filters; a hit's amount and
currency."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import AUTH, CaptureClient, capture_path


async def patch_settings(client: TestClient, endpoint: dict[str, Any], settings: Any) -> Any:
    resp = await client.patch(
        f"/api/endpoints/{endpoint['id']}", json={"settings": settings}, headers=AUTH
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_patch_settings_keeps_the_preset_and_postback_url(
    client: TestClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint("voluum", settings={"preset": "voluum"})
    assert endpoint["postback_url"] is not None
    updated = await patch_settings(client, endpoint, {"required_params": ["cid"]})
    assert updated["settings"]["preset"] == "voluum"
    assert updated["settings"]["required_params"] == ["cid"]
    assert updated["postback_url"] == endpoint["postback_url"]
    stored = await (await client.get(f"/api/endpoints/{endpoint['id']}", headers=AUTH)).json()
    assert stored["settings"] == updated["settings"]


async def test_patch_settings_null_removes_a_key(client: TestClient, make_endpoint: Any) -> None:
    endpoint = await make_endpoint(
        settings={"preset": "voluum", "required_params": ["cid"], "rate_limit_per_s": 5}
    )
    updated = await patch_settings(client, endpoint, {"required_params": None})
    assert "required_params" not in updated["settings"]
    assert updated["settings"]["preset"] == "voluum"
    assert updated["settings"]["rate_limit_per_s"] == 5
    updated = await patch_settings(client, endpoint, {"preset": None})
    assert "preset" not in updated["settings"]
    assert updated["postback_url"] is None
    assert updated["settings"]["rate_limit_per_s"] == 5


async def test_patch_settings_merges_nested_objects(client: TestClient, make_endpoint: Any) -> None:
    endpoint = await make_endpoint(
        settings={
            "secret": {"value": "s3cret", "param": "sig"},
            "dedupe": {"scope": "click_id", "window": "1h"},
        }
    )
    updated = await patch_settings(client, endpoint, {"secret": {"param": "token"}})
    assert updated["settings"]["secret"]["value"] == "s3cret"
    assert updated["settings"]["secret"]["param"] == "token"
    assert updated["settings"]["dedupe"] == endpoint["settings"]["dedupe"]
    updated = await patch_settings(client, endpoint, {"dedupe": {"scope": "off"}})
    assert updated["settings"]["dedupe"]["scope"] == "off"
    assert updated["settings"]["dedupe"]["window"] == endpoint["settings"]["dedupe"]["window"]
    assert updated["settings"]["secret"]["value"] == "s3cret"


async def test_patch_settings_result_is_still_checked(
    client: TestClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint(settings={"preset": "voluum"})
    resp = await client.patch(
        f"/api/endpoints/{endpoint['id']}",
        json={"settings": {"no_such_setting": 1}},
        headers=AUTH,
    )
    assert resp.status == 400
    assert "no_such_setting" in (await resp.json())["error"]["message"]
    stored = await (await client.get(f"/api/endpoints/{endpoint['id']}", headers=AUTH)).json()
    assert stored["settings"] == endpoint["settings"]


async def list_hits(client: TestClient, endpoint: dict[str, Any], query: str) -> Any:
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/hits?{query}", headers=AUTH)
    return resp.status, await resp.json()


async def test_q_and_method_filters(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    path = capture_path(endpoint)
    await capture.get(path + "?click_id=alpha-1&event=sale")
    await capture.get(path + "?click_id=beta-2&event=lead")
    await capture.post(path, data={"click_id": "gamma-3", "note": "Special_Offer"})

    async def click_ids(query: str) -> list[str | None]:
        status, body = await list_hits(client, endpoint, query)
        assert status == 200, body
        return sorted(h["click_id"] for h in body["items"])

    assert await click_ids("q=ALPHA") == ["alpha-1"]
    assert await click_ids("q=lead") == ["beta-2"]
    assert await click_ids("q=special_offer") == ["gamma-3"]  # body params, _ taken literally
    assert await click_ids("q=special%25") == []  # % is a character, not a wildcard
    assert await click_ids("method=post") == ["gamma-3"]
    assert await click_ids("method=GET") == ["alpha-1", "beta-2"]
    assert await click_ids("method=GET&q=beta") == ["beta-2"]
    assert await click_ids("method=PUT") == []
    assert await click_ids("q=&method=") == ["alpha-1", "beta-2", "gamma-3"]
    status, body = await list_hits(client, endpoint, "method=G%20T")
    assert status == 400 and body["error"]["message"].startswith("method:")


async def test_unknown_flag_is_a_400_naming_the_parameter(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint(settings={"required_params": ["click_id"]})
    await capture.get(capture_path(endpoint) + "?x=1")
    status, body = await list_hits(client, endpoint, "flag=missing_parm")
    assert status == 400
    assert body["error"]["code"] == "invalid_query"
    assert body["error"]["message"].startswith("flag:")
    assert "missing_parm" in body["error"]["message"]
    status, body = await list_hits(client, endpoint, "flag=missing_param")
    assert status == 200 and len(body["items"]) == 1
    status, body = await list_hits(client, endpoint, "flag=missing_param&flag=bogus")
    assert status == 400 and body["error"]["message"].startswith("flag:")


async def test_hits_carry_amount_and_currency(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint()
    await capture.get(capture_path(endpoint) + "?click_id=paid&payout=1.50&currency=USD")
    await capture.get(capture_path(endpoint) + "?click_id=free")
    status, body = await list_hits(client, endpoint, "")
    assert status == 200
    by_click = {h["click_id"]: h for h in body["items"]}
    assert (by_click["paid"]["amount"], by_click["paid"]["currency"]) == ("1.50", "USD")
    assert (by_click["free"]["amount"], by_click["free"]["currency"]) == (None, None)
    for click_id, expected in (("paid", ("1.50", "USD")), ("free", (None, None))):
        resp = await client.get(f"/api/hits/{by_click[click_id]['id']}", headers=AUTH)
        hit = await resp.json()
        assert (hit["amount"], hit["currency"]) == expected
