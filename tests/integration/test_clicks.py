"""The click timeline (GET /api/clicks/{click_id} and /clicks/{click_id}): one click
id's hits across endpoints in arrival order, only those of the endpoints a token may
see, bad click ids refused, capped with ``truncated``; the page with statuses and
flags explained, linked from the hit page and the endpoints page's search box."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from monitor.web.api import clicks as click_api
from tests.conftest import AUTH, CaptureClient
from tests.helpers.signin import sign_in
from tests.helpers.tokens import bearer, make_token
from tests.integration.test_lifecycle import send


async def two_endpoints_one_click(
    capture: CaptureClient, make_endpoint: Any, click: str = "clk-1"
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """A lead and a sale on one endpoint, then the reversal on another (which has seen
    no conversion of it: orphan_reversal), and another click's hit on each."""
    net = await make_endpoint("network", settings={"preset": "keitaro"})
    shop = await make_endpoint("shop", settings={"preset": "keitaro"})
    q = quote(click, safe="")
    ids = [
        await send(capture, net, f"subid={q}&status=lead"),
        await send(capture, net, f"subid={q}&status=sale&payout=12.50&currency=USD"),
        await send(capture, shop, f"subid={q}&status=rejected&payout=12.50"),
    ]
    await send(capture, net, "subid=other&status=sale")
    await send(capture, shop, "subid=other&status=sale")
    return net, shop, ids


async def timeline(client: TestClient, path: str, headers: Any = AUTH) -> Any:
    resp = await client.get(path, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_click_across_two_endpoints_oldest_first(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    net, shop, ids = await two_endpoints_one_click(capture, make_endpoint)
    doc = await timeline(client, "/api/clicks/clk-1")
    assert doc["click_id"] == "clk-1" and doc["truncated"] is False
    items = doc["items"]
    assert [i["id"] for i in items] == ids
    assert [i["endpoint_id"] for i in items] == [net["id"], net["id"], shop["id"]]
    assert [i["endpoint_name"] for i in items] == ["network", "network", "shop"]
    assert [i["status"] for i in items] == ["lead", "sale", "rejected"]
    assert (items[1]["amount"], items[1]["currency"]) == ("12.50", "USD")
    assert [[f["flag"] for f in i["flags"]] for i in items] == [[], [], ["orphan_reversal"]]
    assert {"event", "method", "received_at", "forward_state"} <= items[0].keys()
    narrowed = await timeline(client, f"/api/clicks/clk-1?endpoint_id={shop['id']}")
    assert [i["id"] for i in narrowed["items"]] == ids[2:]
    assert (await timeline(client, "/api/clicks/nobody"))["items"] == []
    # A click id with a slash, a space and non-ASCII is one URL-encoded segment.
    odd = "a/b c%é"
    _, _, odd_ids = await two_endpoints_one_click(capture, make_endpoint, odd)
    doc = await timeline(client, "/api/clicks/" + quote(odd, safe=""))
    assert doc["click_id"] == odd and [i["id"] for i in doc["items"]] == odd_ids


async def test_a_restricted_token_sees_only_its_endpoints_hits(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    net, shop, ids = await two_endpoints_one_click(capture, make_endpoint)
    token = await make_token(client, "read", [shop["id"]])
    doc = await timeline(client, "/api/clicks/clk-1", bearer(token))
    assert [i["id"] for i in doc["items"]] == ids[2:]
    # Narrowed to an endpoint it may not see: nothing, as for an unknown click id.
    doc = await timeline(client, f"/api/clicks/clk-1?endpoint_id={net['id']}", bearer(token))
    assert doc["items"] == []
    await sign_in(client, token=token["token"])
    html = await (await client.get("/clicks/clk-1")).text()
    assert ids[2] in html and ids[0] not in html and ids[1] not in html


async def test_bad_click_ids_and_endpoint_ids_are_400(client: TestClient) -> None:
    for path in (
        "/api/clicks/%20",
        "/api/clicks/" + "x" * 257,
        "/api/clicks/a%00b",
        "/api/clicks/ok?endpoint_id=abc",
        "/api/clicks/ok?endpoint_id=0",  # ids start at 1 (schemathesis found it)
        "/api/clicks/ok?endpoint_id=",
    ):
        resp = await client.get(path, headers=AUTH)
        assert resp.status == 400, path
        assert (await resp.json())["error"]["code"] in ("invalid_click_id", "invalid_query")
    assert (await client.get("/api/clicks/" + "x" * 256, headers=AUTH)).status == 200


async def test_a_long_timeline_is_cut_and_says_so(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, monkeypatch: Any
) -> None:
    _, _, ids = await two_endpoints_one_click(capture, make_endpoint)
    monkeypatch.setattr(click_api, "LIMIT", 2)
    doc = await timeline(client, "/api/clicks/clk-1")
    assert [i["id"] for i in doc["items"]] == ids[:2] and doc["truncated"] is True
    await sign_in(client)
    html = await (await client.get("/clicks/clk-1")).text()
    assert 'id="timeline-truncated"' in html


async def test_the_page_shows_statuses_and_flags_and_is_linked(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    _, shop, ids = await two_endpoints_one_click(capture, make_endpoint)
    await sign_in(client)
    html = await (await client.get("/clicks/clk-1")).text()
    for status in ("lead", "sale", "rejected"):
        assert f'<span class="badge status status-{status}">{status}</span>' in html
    assert html.index(ids[0]) < html.index(ids[1]) < html.index(ids[2])
    assert f'href="/endpoints/{shop["id"]}">shop</a>' in html and "12.50 USD" in html
    assert "orphan_reversal" in html and 'id="flag-help"' in html
    # The hit page links its click id here; the search box redirects here, encoded.
    hit_page = await (await client.get(f"/hits/{ids[0]}")).text()
    assert 'href="/clicks/clk-1" id="click-timeline"' in hit_page
    resp = await client.get("/clicks", params={"click_id": "a/b"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/clicks/a%2Fb"
    assert 'action="/clicks"' in await (await client.get("/endpoints")).text()
    assert (await client.get("/clicks", params={"click_id": ""})).status == 400
    empty = await (await client.get("/clicks/nobody")).text()
    assert 'id="timeline-empty"' in empty


@pytest.mark.parametrize("path", ["/api/clicks/clk-1", "/clicks/clk-1"])
async def test_signed_out_is_refused(client: TestClient, path: str) -> None:
    resp = await client.get(path, allow_redirects=False)
    assert resp.status in (302, 303, 401)


async def test_share_link_pages_do_not_link_to_the_timeline(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    """The timeline crosses endpoints; a share link opens one (and needs no session)."""
    net, _, ids = await two_endpoints_one_click(capture, make_endpoint)
    resp = await client.post(f"/api/endpoints/{net['id']}/share-links", json={}, headers=AUTH)
    base = "/s/" + (await resp.json())["url"].rsplit("/s/", 1)[1]
    for path in (base, f"{base}/hits/{ids[0]}"):
        page = await (await client.get(path)).text()
        assert "clk-1" in page and "/clicks" not in page, path
