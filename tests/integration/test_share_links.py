"""Share links: the API that makes, lists and revokes them, the read-only pages they
open without an account (only their endpoint's hits, secrets hidden, no way into the
management pages), the one not-found page for unknown, expired and revoked links,
and the settings page's card."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from monitor.config import Config
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.signin import sign_in

SECRET = "s3cr3t-value-for-sig"
HTML = {"Accept": "text/html"}


async def fire(capture: CaptureClient, endpoint: dict[str, Any], query: str, **kw: Any) -> str:
    resp = await capture.request(kw.pop("method", "GET"), capture_path(endpoint) + query, **kw)
    assert resp.status == 200, await resp.text()
    return str(resp.headers["X-Postback-Monitor-Hit-Id"])


async def make_link(client: TestClient, endpoint_id: int, **body: Any) -> dict[str, Any]:
    resp = await client.post(f"/api/endpoints/{endpoint_id}/share-links", json=body, headers=AUTH)
    assert resp.status == 201, await resp.text()
    link: dict[str, Any] = await resp.json()
    return link


def path_of(link: dict[str, Any]) -> str:
    return "/s/" + link["url"].rsplit("/s/", 1)[1]


async def test_create_list_and_revoke(
    client: TestClient, config: Config, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint("shared")
    before = datetime.now(UTC)
    link = await make_link(client, endpoint["id"])
    token = link["url"].rsplit("/", 1)[1]
    assert link["url"] == f"{config.management_url}/s/{token}"
    assert link["url"].startswith("http://")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 256 random bits
    expires = datetime.fromisoformat(link["expires_at"])
    assert timedelta(days=29, hours=23) < expires - before < timedelta(days=30, minutes=1)
    assert link["endpoint_id"] == endpoint["id"] and link["expired"] is False

    in_a_week = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    other = await make_link(client, endpoint["id"], expires_at=in_a_week)
    assert datetime.fromisoformat(other["expires_at"]) == datetime.fromisoformat(in_a_week)

    resp = await client.get(f"/api/endpoints/{endpoint['id']}/share-links", headers=AUTH)
    assert resp.status == 200
    listed = await resp.text()
    assert token not in listed and "url" not in listed
    items = (await resp.json())["items"]
    assert [i["id"] for i in items] == [other["id"], link["id"]]
    assert items[1]["last_opened_at"] is None

    assert (await client.get(path_of(link))).status == 200
    items = (
        await (
            await client.get(f"/api/endpoints/{endpoint['id']}/share-links", headers=AUTH)
        ).json()
    )["items"]
    assert items[1]["last_opened_at"] is not None

    url = f"/api/endpoints/{endpoint['id']}/share-links/{link['id']}"
    assert (await client.delete(url, headers=AUTH)).status == 204
    assert (await client.get(path_of(link))).status == 404  # at once
    assert (await client.delete(url, headers=AUTH)).status == 404
    items = (
        await (
            await client.get(f"/api/endpoints/{endpoint['id']}/share-links", headers=AUTH)
        ).json()
    )["items"]
    assert [i["id"] for i in items] == [other["id"]]


async def test_bad_requests(client: TestClient, make_endpoint: Any) -> None:
    endpoint = await make_endpoint("shared")
    url = f"/api/endpoints/{endpoint['id']}/share-links"
    now = datetime.now(UTC)
    for body, words in [
        ({"expires_at": (now - timedelta(minutes=1)).isoformat()}, "in the future"),
        ({"expires_at": (now + timedelta(days=366)).isoformat()}, "at most 365 days"),
        ({"expires_at": "next tuesday"}, "RFC 3339"),
        ({"expires_at": 12}, "RFC 3339"),
        ({"expires_at": "2030-01-01T00:00:00"}, "time zone"),
        ({"expiry": "2030-01-01T00:00:00Z"}, "unknown field"),
        ([1, 2], "JSON object"),
    ]:
        resp = await client.post(url, json=body, headers=AUTH)
        assert resp.status == 400, (body, await resp.text())
        assert words in (await resp.json())["error"]["message"], body
    assert (await client.post("/api/endpoints/999/share-links", headers=AUTH)).status == 404
    assert (await client.get("/api/endpoints/999/share-links", headers=AUTH)).status == 404
    assert (await client.post(url)).status == 401  # bearer, like the rest of /api/
    assert (await client.get(url)).status == 401
    items = (await (await client.get(url, headers=AUTH)).json())["items"]
    assert items == []


async def test_the_shared_view_shows_one_endpoint_and_hides_secrets(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, config: Config
) -> None:
    shared = await make_endpoint(
        "Acme offers",
        settings={"secret": {"value": SECRET, "param": "sig"}, "required_params": ["payout"]},
    )
    other = await make_endpoint("Private")
    mine = await fire(
        capture,
        shared,
        f"?click_id=c-1&sig={SECRET}&note=has-{shared['token']}",
        headers={"Authorization": "Bearer partner-key", "Cookie": "sid=abc", "X-Trace": "t-1"},
    )
    newer = await fire(capture, shared, "?click_id=c-0&payout=2.50")
    theirs = await fire(capture, other, "?click_id=private-1")
    link = await make_link(client, shared["id"])
    base = path_of(link)

    resp = await client.get(base, headers=HTML)
    page = await resp.text()
    assert resp.status == 200
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in resp.headers["X-Robots-Tag"]
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert "Shared view of <strong>Acme offers</strong>, read-only, expires" in page
    assert f'href="{base}/hits/{mine}"' in page and f'href="{base}/hits/{newer}"' in page
    assert page.index(newer) < page.index(mine)  # newest first
    assert "missing_param" in page and "payout" in page  # flags, with their reasons
    assert theirs not in page and "private-1" not in page
    # The hits chart counts this endpoint's hits only, and shows no money.
    assert '<span data-k="total">2</span> hits' in page
    assert "payout-chart" not in page and "delay-chart" not in page
    assert_nothing_secret(page, shared, config)
    week = await (await client.get(f"{base}?chart=7d", headers=HTML)).text()
    assert week.count('<g class="bucket"') == 168 and '<span data-k="total">2</span>' in week

    resp = await client.get(f"{base}/hits/{mine}", headers=HTML)
    page = await resp.text()
    assert resp.status == 200 and resp.headers["Referrer-Policy"] == "no-referrer"
    assert "X-Trace" in page and "t-1" in page and "c-1" in page
    assert "partner-key" not in page and "sid=abc" not in page
    assert "Authorization" not in page.replace("(Authorization, Cookie", "")
    assert "[hidden]" in page  # the secret param, and the capture token in a param
    assert "A parameter this endpoint requires" in page  # a flag, explained
    assert_nothing_secret(page, shared, config)

    # Another endpoint's hit under this link, and a hit that does not exist: not found.
    gone = await (await client.get(f"{base}/hits/{theirs}", headers=HTML)).text()
    assert theirs not in gone and "private-1" not in gone
    for path in (f"{base}/hits/{theirs}", f"{base}/hits/{mine[:-4]}ffff", f"{base}/hits/nope"):
        resp = await client.get(path, headers=HTML)
        assert resp.status == 404, path
        assert 'id="shared-gone"' in await resp.text()


def assert_nothing_secret(page: str, endpoint: dict[str, Any], config: Config) -> None:
    assert endpoint["token"] not in page
    assert SECRET not in page
    assert "/p/" not in page and config.base_url not in page  # no capture URL
    hrefs = re.findall(r'(?:href|action)="([^"]*)"', page)
    for href in hrefs:  # no way into the management pages
        assert href.startswith(("/s/", "/static/")), href
    assert "<form" not in page  # nothing to change, delete or replay


async def test_unknown_expired_and_revoked_links_look_the_same(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint("shared")
    hit = await fire(capture, endpoint, "?click_id=c-9")
    expired, revoked = (
        await make_link(client, endpoint["id"]),
        await make_link(client, endpoint["id"]),
    )
    await db.execute(
        "UPDATE share_links SET expires_at = now() - interval '1 second' WHERE id = $1",
        expired["id"],
    )
    await client.delete(
        f"/api/endpoints/{endpoint['id']}/share-links/{revoked['id']}", headers=AUTH
    )
    unknown = "/s/" + "A" * 43
    pages = set()
    for base in (path_of(expired), path_of(revoked), unknown, "/s/short"):
        for path in (base, f"{base}/hits/{hit}"):
            resp = await client.get(path, headers=HTML)
            assert resp.status == 404, path
            assert resp.headers["Referrer-Policy"] == "no-referrer"
            page = await resp.text()
            assert "does not exist, has expired or was revoked" in page
            assert "c-9" not in page and 'href="/endpoints' not in page
            pages.add(page)
    assert len(pages) == 1
    listed = (
        await (
            await client.get(f"/api/endpoints/{endpoint['id']}/share-links", headers=AUTH)
        ).json()
    )["items"]
    assert [(i["id"], i["expired"]) for i in listed] == [(expired["id"], True)]


async def test_the_share_prefix_opens_nothing_else(client: TestClient, make_endpoint: Any) -> None:
    endpoint = await make_endpoint("shared")
    link = await make_link(client, endpoint["id"])
    for path in ("/s/../endpoints", "/s/%2e%2e/endpoints", f"{path_of(link)}/../../endpoints",
                 f"{path_of(link)}/settings", f"/s/../api/endpoints/{endpoint['id']}"):  # fmt: skip
        resp = await client.get(path, headers=HTML, allow_redirects=False)
        text = await resp.text()
        assert resp.status in (303, 401, 404), (path, resp.status)
        assert endpoint["token"] not in text, path


async def test_deleting_the_endpoint_ends_its_links(client: TestClient, make_endpoint: Any) -> None:
    endpoint = await make_endpoint("shared")
    link = await make_link(client, endpoint["id"])
    assert (await client.delete(f"/api/endpoints/{endpoint['id']}", headers=AUTH)).status == 200
    assert (await client.get(path_of(link))).status == 404


async def test_the_settings_card_makes_shows_once_and_revokes(
    client: TestClient, make_endpoint: Any
) -> None:
    endpoint = await make_endpoint("shared")
    settings = f"/endpoints/{endpoint['id']}/settings"
    csrf = await sign_in(client, settings)
    page = await (await client.get(settings)).text()
    assert 'id="share-links"' in page and 'id="share-none"' in page

    resp = await client.post(
        f"/endpoints/{endpoint['id']}/share-links", data={"csrf": csrf, "days": "7"}
    )
    page = await resp.text()
    assert resp.status == 200
    url = re.search(r'<code id="share-url"[^>]*>([^<]+)</code>', page)
    assert url and "/s/" in url.group(1)
    token = url.group(1).rsplit("/", 1)[1]
    links = (
        await (
            await client.get(f"/api/endpoints/{endpoint['id']}/share-links", headers=AUTH)
        ).json()
    )["items"]
    assert len(links) == 1
    expires = datetime.fromisoformat(links[0]["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=6, hours=23) < expires <= timedelta(days=7)
    again = await (await client.get(settings)).text()
    assert token not in again and 'id="share-list"' in again  # shown once

    for days in ("0", "366", "soon"):
        resp = await client.post(
            f"/endpoints/{endpoint['id']}/share-links", data={"csrf": csrf, "days": days}
        )
        assert resp.status == 400 and 'id="share-error"' in await resp.text()
    resp = await client.post(f"/endpoints/{endpoint['id']}/share-links", data={"days": "7"})
    assert resp.status == 403  # no CSRF token

    revoke = f"/endpoints/{endpoint['id']}/share-links/{links[0]['id']}/revoke"
    assert (await client.post(revoke, data={})).status == 403
    assert (await client.get(f"/s/{token}")).status == 200
    resp = await client.post(revoke, data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("share_revoked=1#share-links")
    assert (await client.get(f"/s/{token}")).status == 404
    assert 'id="share-revoked"' in await (await client.get(f"{settings}?share_revoked=1")).text()
