"""The hit page's large-body handling, its neighbours, the raw-body download, and
deleting hits (one, or all of an endpoint) from the page and the API: what goes with
them, and what duplicate detection does afterwards."""

from __future__ import annotations

import html
import io
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from monitor.web.views import present
from tests.conftest import AUTH, CaptureClient, capture_path
from tests.helpers.signin import csrf_of, sign_in

MIB = 1024 * 1024


async def fire(capture: CaptureClient, endpoint: dict[str, Any], query: str = "", **kw: Any) -> str:
    method = kw.pop("method", "GET")
    resp = await capture.request(method, capture_path(endpoint) + query, **kw)
    assert resp.status == 200, await resp.text()
    return resp.headers["X-Postback-Monitor-Hit-Id"]


async def flags_of(client: TestClient, hit_id: str) -> list[str]:
    resp = await client.get(f"/api/hits/{hit_id}", headers=AUTH)
    assert resp.status == 200
    return [f["flag"] for f in (await resp.json())["flags"]]


def test_human_size() -> None:
    assert present.human_size(0) == "0 bytes"
    assert present.human_size(1) == "1 byte"
    assert present.human_size(1023) == "1023 bytes"
    assert present.human_size(8 * 1024) == "8.0 KiB"
    assert present.human_size(MIB) == "1.0 MiB"
    assert present.human_size(2 * MIB + MIB // 2) == "2.5 MiB"


async def test_a_2_mb_body_is_a_small_page_and_a_whole_download(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("large")
    sent = bytes(range(32, 127)) * (2 * MIB // 95 + 1)
    sent = sent[: 2 * MIB]
    hit_id = await fire(
        capture,
        endpoint,
        method="POST",
        data=io.BytesIO(sent),
        headers={"Content-Type": "text/plain"},
    )

    resp = await client.get(f"/hits/{hit_id}")
    raw_page = await resp.read()
    assert resp.status == 200
    assert len(raw_page) < 100_000, len(raw_page)
    text = html.unescape(raw_page.decode())
    assert "Showing the first 8.0 KiB of 1.0 MiB" in text
    assert "the sender sent 2.0 MiB, only the first 1.0 MiB were kept" in text
    assert "a replay sends a truncated body" in text
    body_file = f"hit-{hit_id}.body"
    assert f"--data-binary @{body_file} " in text
    assert sent[:20_000].decode() not in text  # not inlined in the body or the curl line
    assert f'href="/hits/{hit_id}/body"' in text

    download = await client.get(f"/hits/{hit_id}/body")
    assert download.status == 200
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"] == f'attachment; filename="{body_file}"'
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert await download.read() == sent[:MIB]  # exactly the stored bytes


async def test_small_bodies_stay_inline_and_binary_downloads_byte_for_byte(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("small")
    binary = b"\x00\xff" + bytes(range(256)) * 4
    hit_id = await fire(
        capture, endpoint, method="PUT", data=binary,
        headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip
    text = html.unescape(await (await client.get(f"/hits/{hit_id}")).text())
    assert "1.0 KiB" in text
    assert "Showing the first" not in text
    assert "truncated body" not in text
    assert "base64 -d | curl" in text  # inline: small enough to paste
    assert await (await client.get(f"/hits/{hit_id}/body")).read() == binary
    # The download is a page like the others: no session, no body.
    client.session.cookie_jar.clear()
    resp = await client.get(f"/hits/{hit_id}/body", allow_redirects=False)
    assert resp.status == 303


async def test_newer_and_older_links_follow_the_list_order(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("walk")
    other = await make_endpoint("other")
    first = await fire(capture, endpoint, "?click_id=a")
    await fire(capture, other, "?click_id=x")  # another endpoint's hit is never a neighbour
    second = await fire(capture, endpoint, "?click_id=b")
    third = await fire(capture, endpoint, "?click_id=c")

    middle = await (await client.get(f"/hits/{second}")).text()
    assert f'href="/hits/{third}" id="hit-newer"' in middle
    assert f'href="/hits/{first}" id="hit-older"' in middle
    newest = await (await client.get(f"/hits/{third}")).text()
    assert 'id="hit-newer"' not in newest
    assert f'href="/hits/{second}" id="hit-older"' in newest
    oldest = await (await client.get(f"/hits/{first}")).text()
    assert 'id="hit-older"' not in oldest


async def test_deleting_a_hit_from_its_page(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    csrf = await sign_in(client)
    endpoint = await make_endpoint("delete-page")
    older = await fire(capture, endpoint, "?click_id=o")
    doomed = await fire(capture, endpoint, "?click_id=d")

    # No CSRF token: refused; no confirmation: the page again, with the reason.
    resp = await client.post(f"/hits/{doomed}/delete", data={"confirm": "yes"})
    assert resp.status == 403
    resp = await client.post(f"/hits/{doomed}/delete", data={"csrf": csrf})
    assert resp.status == 400
    assert "Tick the box" in await resp.text()

    page = await (await client.get(f"/hits/{doomed}")).text()
    resp = await client.post(
        f"/hits/{doomed}/delete", data={"csrf": csrf_of(page), "confirm": "yes"},
        allow_redirects=False,
    )  # fmt: skip
    assert resp.status == 303
    assert resp.headers["Location"] == f"/hits/{older}?deleted=1"
    assert (await client.get(f"/hits/{doomed}")).status == 404
    assert "Hit deleted" in await (await client.get(resp.headers["Location"])).text()
    # The last one left goes back to the endpoint's list.
    resp = await client.post(
        f"/hits/{older}/delete", data={"csrf": csrf, "confirm": "yes"}, allow_redirects=False
    )
    assert resp.headers["Location"] == f"/endpoints/{endpoint['id']}"


async def test_deleted_hits_leave_the_duplicate_ledger_consistent(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint("dedupe")
    original = await fire(capture, endpoint, "?click_id=k1&event=sale")
    repeat = await fire(capture, endpoint, "?click_id=k1&event=sale")
    assert "duplicate_click_id" in await flags_of(client, repeat)

    # Deleting a duplicate changes nothing: the original is still the first.
    assert (await client.delete(f"/api/hits/{repeat}", headers=AUTH)).status == 204
    again = await fire(capture, endpoint, "?click_id=k1&event=sale")
    assert "duplicate_click_id" in await flags_of(client, again)

    # Deleting the original forgets its key: the next one counts as new and is the
    # first from then on; the ledger never names a deleted hit.
    assert (await client.delete(f"/api/hits/{original}", headers=AUTH)).status == 204
    keys = await db.fetch(
        "SELECT first_hit_id FROM click_keys WHERE endpoint_id = $1", endpoint["id"]
    )
    assert keys == []
    fresh = await fire(capture, endpoint, "?click_id=k1&event=sale")
    assert "duplicate_click_id" not in await flags_of(client, fresh)
    later = await fire(capture, endpoint, "?click_id=k1&event=sale")
    assert "duplicate_click_id" in await flags_of(client, later)
    # Hits flagged earlier keep their flag: it was true when they arrived.
    assert "duplicate_click_id" in await flags_of(client, again)

    resp = await client.delete(f"/api/hits/{original}", headers=AUTH)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "hit_not_found"
    assert (await client.delete("/api/hits/not-a-uuid", headers=AUTH)).status == 404
    assert (await client.delete(f"/api/hits/{fresh}")).status == 401


async def test_deleting_a_hit_deletes_its_forwarding_rows(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    # A target the outbound guard refuses: the attempt is logged and the row fails.
    endpoint = await make_endpoint("fwd", settings={"forward_url": "http://10.0.0.1/pb"})
    hit_id = await fire(capture, endpoint, "?click_id=f1")
    count = "SELECT (SELECT count(*) FROM forward_outbox WHERE hit_id = $1::uuid) + " \
        "(SELECT count(*) FROM forward_attempts WHERE hit_id = $1::uuid)"  # fmt: skip
    assert await db.fetchval(count, hit_id) >= 1
    assert (await client.delete(f"/api/hits/{hit_id}", headers=AUTH)).status == 204
    assert await db.fetchval(count, hit_id) == 0


async def test_clearing_an_endpoint_from_the_api_and_the_settings_page(
    client: TestClient, capture: CaptureClient, make_endpoint: Any, db: asyncpg.Connection
) -> None:
    endpoint = await make_endpoint("clear")
    keep = await make_endpoint("keep")
    for n in range(3):
        await fire(capture, endpoint, f"?click_id=c{n}")
    kept = await fire(capture, keep, "?click_id=c0")

    resp = await client.delete(f"/api/endpoints/{endpoint['id']}/hits", headers=AUTH)
    assert resp.status == 200
    assert await resp.json() == {"endpoint_id": endpoint["id"], "hits_deleted": 3}
    listing = await client.get(f"/api/endpoints/{endpoint['id']}/hits", headers=AUTH)
    assert (await listing.json())["items"] == []
    assert (
        await db.fetchval("SELECT count(*) FROM click_keys WHERE endpoint_id = $1", endpoint["id"])
        == 0
    )
    # The endpoint stays and captures; a click id seen before the clear counts as new.
    again = await fire(capture, endpoint, "?click_id=c0")
    assert await flags_of(client, again) == []
    assert (await client.get(f"/api/hits/{kept}", headers=AUTH)).status == 200
    assert (await client.delete("/api/endpoints/999999/hits", headers=AUTH)).status == 404

    csrf = await sign_in(client, f"/endpoints/{endpoint['id']}/settings")
    settings = f"/endpoints/{endpoint['id']}/settings"
    resp = await client.post(f"/endpoints/{endpoint['id']}/clear", data={"csrf": csrf})
    assert resp.status == 400
    assert "Tick the box" in await resp.text()
    resp = await client.post(f"/endpoints/{endpoint['id']}/clear", data={"confirm": "yes"})
    assert resp.status == 403
    resp = await client.post(
        f"/endpoints/{endpoint['id']}/clear", data={"csrf": csrf, "confirm": "yes"},
        allow_redirects=False,
    )  # fmt: skip
    assert resp.headers["Location"] == f"{settings}?cleared=1"
    assert "Deleted 1 hit." in await (await client.get(resp.headers["Location"])).text()
