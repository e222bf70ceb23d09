"""Unknown senders through the real capture listener and writer: networks and
parameter shapes learned in the database, flagged after the learning period."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.server.app import create_app
from monitor.web.appkeys import POOL, WRITER
from tests.conftest import AUTH, CaptureClient, capture_path, open_capture
from tests.helpers.signin import csrf_of, sign_in


@pytest.fixture
def config(config: Config) -> Config:
    """The capture client connects from 127.0.0.1: trusting it as a proxy lets each
    request name its sender in X-Forwarded-For."""
    return config.replace(trusted_proxies=("127.0.0.0/8",))


async def send(
    capture: CaptureClient, endpoint: dict[str, Any], query: str, ip: str = "198.51.100.1"
) -> str:
    resp = await capture.get(
        f"{capture_path(endpoint)}?{query}",
        headers={"X-Forwarded-For": ip, "User-Agent": f"net/{ip}"},
    )
    assert resp.status == 200
    return resp.headers["X-Postback-Monitor-Hit-Id"]


async def stored_flags(client: TestClient, hit_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/hits/{hit_id}", headers=AUTH)
    assert resp.status == 200
    return (await resp.json())["flags"]


async def names(client: TestClient, hit_id: str) -> list[str]:
    return [flag["flag"] for flag in await stored_flags(client, hit_id)]


async def learn(capture: CaptureClient, endpoint: dict[str, Any], count: int = 5) -> None:
    for i in range(count):
        hit_id = await send(capture, endpoint, f"click_id=l{i}&payout=1.5", f"198.51.100.{i + 1}")
        assert hit_id


async def make(make_endpoint: Any, **senders: Any) -> dict[str, Any]:
    return await make_endpoint(settings={"senders": {"learn_hits": 5, **senders}})


async def test_new_network_after_learning_is_flagged_until_accepted(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make(make_endpoint)
    during = await send(capture, endpoint, "click_id=d&payout=1", "192.0.2.7")
    assert await names(client, during) == []  # learning: nothing flagged, the network learned
    await learn(capture, endpoint)
    same_net = await send(capture, endpoint, "click_id=s&payout=1", "198.51.100.200")
    assert await names(client, same_net) == []
    also_learned = await send(capture, endpoint, "click_id=a&payout=1", "192.0.2.99")
    assert await names(client, also_learned) == []
    new = await send(capture, endpoint, "click_id=n&payout=1", "203.0.113.5")
    (flag,) = await stored_flags(client, new)
    assert flag["flag"] == "new_sender"
    assert flag["network"] == "203.0.113.0/24" and flag["address"] == "203.0.113.5"
    again = await send(capture, endpoint, "click_id=n2&payout=1", "203.0.113.6")
    assert await names(client, again) == ["new_sender"]  # flagged until accepted

    resp = await client.post(
        f"/api/endpoints/{endpoint['id']}/senders/accept",
        json={"network": "203.0.113.0/24"},
        headers=AUTH,
    )
    assert resp.status == 200, await resp.text()
    accepted = await send(capture, endpoint, "click_id=n3&payout=1", "203.0.113.7")
    assert await names(client, accepted) == []
    assert await names(client, new) == ["new_sender"]  # flagged hits keep their flag

    await client.app[WRITER].flush_counts()  # known senders' hits are counted off the batch
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/senders", headers=AUTH)
    assert resp.status == 200
    body = await resp.json()
    by_network = {row["network"]: row for row in body["networks"]}
    assert set(by_network) == {"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"}
    row = by_network["203.0.113.0/24"]
    assert row["hits"] == 3 and row["accepted"] and row["after_learning"]
    assert row["user_agent"] == "net/203.0.113.7"
    assert by_network["198.51.100.0/24"]["hits"] == 6
    assert not by_network["198.51.100.0/24"]["after_learning"]
    (shape,) = body["shapes"]
    assert shape["names"] == ["click_id", "payout"] and shape["hits"] == 11


async def test_ipv6_networks_are_48s(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make(make_endpoint, learn_hits=1)
    await send(capture, endpoint, "click_id=a&payout=1", "2001:db8:1:2::1")
    same = await send(capture, endpoint, "click_id=b&payout=1", "2001:db8:1:ffff::9")
    assert await names(client, same) == []
    other = await send(capture, endpoint, "click_id=c&payout=1", "2001:db8:2::1")
    (flag,) = await stored_flags(client, other)
    assert flag["network"] == "2001:db8:2::/48"


async def test_renamed_param_after_learning_is_a_shape_change(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make(make_endpoint)
    await learn(capture, endpoint)
    renamed = await send(capture, endpoint, "click_id=r&amount=1.5")
    (flag,) = await stored_flags(client, renamed)
    assert flag["flag"] == "param_shape_changed"
    assert flag["added"] == ["amount"] and flag["removed"] == ["payout"]
    # Only the hit that brought the shape: it is known from then on.
    assert await names(client, await send(capture, endpoint, "click_id=r2&amount=2")) == []
    # Values do not matter, names do; an empty value still names its field.
    assert await names(client, await send(capture, endpoint, "click_id=&payout=")) == []


async def test_switches_turn_each_check_off(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    quiet = await make(make_endpoint, new_sender=False)
    await learn(capture, quiet)
    hit_id = await send(capture, quiet, "click_id=x&amount=1", "203.0.113.5")
    assert await names(client, hit_id) == ["param_shape_changed"]
    other = await make(make_endpoint, param_shape_changed=False)
    await learn(capture, other)
    hit_id = await send(capture, other, "click_id=x&amount=1", "203.0.113.5")
    assert await names(client, hit_id) == ["new_sender"]
    off = await make(make_endpoint, new_sender=False, param_shape_changed=False)
    await learn(capture, off)
    hit_id = await send(capture, off, "click_id=x&amount=1", "203.0.113.5")
    assert await names(client, hit_id) == []


async def test_test_hits_are_left_out(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make(make_endpoint)
    for i in range(6):  # test hits neither end learning nor are learned
        await send(capture, endpoint, f"click_id=t{i}&payout=1&test=1", "203.0.113.5")
    resp = await client.get(f"/api/endpoints/{endpoint['id']}/senders", headers=AUTH)
    assert await resp.json() == {"networks": [], "shapes": []}
    await learn(capture, endpoint)
    hit_id = await send(capture, endpoint, "click_id=z&payout=1", "203.0.113.5")
    assert await names(client, hit_id) == ["new_sender"]


async def test_a_restart_keeps_what_was_learned(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, config: Config,
    aiohttp_client: Any,
) -> None:  # fmt: skip
    endpoint = await make(make_endpoint)
    await learn(capture, endpoint)
    second = await aiohttp_client(create_app(config))
    async with open_capture(second, config) as capture2:
        known = await send(capture2, endpoint, "click_id=k&payout=1", "198.51.100.50")
        new = await send(capture2, endpoint, "click_id=k2&payout=1", "203.0.113.5")
    assert await names(client, known) == []
    assert await names(client, new) == ["new_sender"]


async def test_settings_errors_name_the_key(client: TestClient, make_endpoint: Any) -> None:
    for senders, key in (
        ({"learn_hit": 5}, "senders.learn_hit"),
        ({"learn_days": -1}, "senders.learn_days"),
        ({"new_sender": "yes"}, "senders.new_sender"),
    ):
        resp = await client.post(
            "/api/endpoints", json={"name": "x", "settings": {"senders": senders}}, headers=AUTH
        )
        assert resp.status == 400
        assert key in await resp.text()


async def test_the_settings_page_lists_senders_and_accepts_a_new_one(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    endpoint = await make(make_endpoint)
    await learn(capture, endpoint)
    await send(capture, endpoint, "click_id=p&payout=1", "203.0.113.5")
    await sign_in(client)
    url = f"/endpoints/{endpoint['id']}/settings"
    page = await (await client.get(url)).text()
    assert 'id="senders"' in page and 'class="table-scroll"' in page
    assert 'data-network="198.51.100.0/24"' in page and "net/198.51.100.5" in page
    assert "click_id, payout" in page
    # Only the network first seen after learning has an Accept button.
    assert page.count('action="/endpoints/{}/senders/accept"'.format(endpoint["id"])) == 1
    form = {"csrf": csrf_of(page), "network": "203.0.113.0/24"}
    resp = await client.post(f"{url.removesuffix('/settings')}/senders/accept", data=form,
                             allow_redirects=False)  # fmt: skip
    assert resp.status == 303, await resp.text()
    page = await (await client.get(resp.headers["Location"])).text()
    assert 'id="sender-accepted"' in page and "senders/accept" not in page
    hit_id = await send(capture, endpoint, "click_id=p2&payout=1", "203.0.113.9")
    assert await names(client, hit_id) == []
    unknown = {"csrf": csrf_of(page), "network": "192.0.2.0/24"}
    resp = await client.post(f"/endpoints/{endpoint['id']}/senders/accept", data=unknown)
    assert resp.status == 404


async def test_known_senders_leave_their_rows_alone_until_the_flush(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    """After learning, a batch of known senders writes no sender row (upserting the same
    hot rows in every batch made each batch wait for the one before it to commit); the
    counts reach the rows at the flush, each hit once."""
    endpoint = await make(make_endpoint)
    await learn(capture, endpoint)
    await send(capture, endpoint, "click_id=k0&payout=1", "198.51.100.9")  # learning now over
    await client.app[WRITER].flush_counts()
    pool = client.app[POOL]
    row_versions = """
        SELECT (SELECT array_agg(xmin::text ORDER BY network) FROM endpoint_senders
                WHERE endpoint_id = $1),
               (SELECT array_agg(xmin::text) FROM endpoint_param_shapes WHERE endpoint_id = $1),
               (SELECT sum(hits) FROM endpoint_senders WHERE endpoint_id = $1)"""
    before = await pool.fetchrow(row_versions, endpoint["id"])
    for i in range(3):
        hit_id = await send(capture, endpoint, f"click_id=k{i + 1}&payout=1", "198.51.100.9")
        assert await names(client, hit_id) == []
    assert await pool.fetchrow(row_versions, endpoint["id"]) == before

    await client.app[WRITER].flush_counts()
    after = await pool.fetchrow(row_versions, endpoint["id"])
    assert after[2] == before[2] + 3
    assert after[0] != before[0] and after[1] != before[1]
    await client.app[WRITER].flush_counts()  # nothing left: counted once
    assert (await pool.fetchrow(row_versions, endpoint["id"]))[2] == before[2] + 3
