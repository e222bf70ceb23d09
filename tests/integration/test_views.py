"""Web pages through the aiohttp client: sign-in, CSRF, endpoints, hit list and
filters, the hit page (escaping, bodies, curl), settings, and the live stream."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from monitor.web.views import present
from tests.conftest import ADMIN_TOKEN, AUTH, CaptureClient, capture_path
from tests.helpers.signin import csrf_of, sign_in

XSS = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


async def fire(capture: CaptureClient, endpoint: dict[str, Any], query: str = "", **kw: Any) -> str:
    method = kw.pop("method", "GET")
    resp = await capture.request(method, capture_path(endpoint) + query, **kw)
    assert resp.status == 200, await resp.text()
    return resp.headers["X-Postback-Monitor-Hit-Id"]


async def test_unauthenticated_pages_redirect_to_sign_in(client: TestClient) -> None:
    for path in ("/", "/endpoints", "/endpoints/1", "/endpoints/1/settings", "/hits/x"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/login?next=")
    resp = await client.post("/endpoints", data={"name": "x"}, allow_redirects=False)
    assert resp.status == 303
    resp = await client.get("/endpoints?flag=any", allow_redirects=False)
    location = URL(resp.headers["Location"])
    assert location.path == "/login"
    assert location.query["next"] == "/endpoints?flag=any"
    # A forged or expired cookie is no session.
    client.session.cookie_jar.update_cookies({"pbm_session": "v1.1.abc.forged"})
    assert (await client.get("/endpoints", allow_redirects=False)).status == 303
    # The API keeps answering JSON 401, cookie or not.
    resp = await client.get("/api/endpoints")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"
    # Static files and the sign-in page need nothing.
    assert (await client.get("/login")).status == 200
    assert (await client.get("/static/style.css")).status == 200


async def test_sign_in_sets_a_safe_cookie_and_sign_out_ends_it(client: TestClient) -> None:
    page = await (await client.get("/login")).text()
    nonce = re.search(r'name="nonce" value="([^"]+)"', page)
    assert nonce
    wrong = await client.post("/login", data={"token": "nope", "nonce": nonce.group(1)})
    assert wrong.status == 401
    assert "not the admin token" in await wrong.text()
    stale = await client.post("/login", data={"token": ADMIN_TOKEN, "nonce": "other"})
    assert stale.status == 400

    resp = await client.post(
        "/login",
        data={"token": ADMIN_TOKEN, "nonce": nonce.group(1), "next": "//evil.example/x"},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/"  # no open redirect
    cookie = resp.cookies["pbm_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie.value)  # a random id, nothing readable

    page = await client.get("/endpoints")
    assert page.status == 200
    csrf = csrf_of(await page.text())
    assert (await client.post("/logout", data={}, allow_redirects=False)).status == 403
    resp = await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/login"
    assert (await client.get("/endpoints", allow_redirects=False)).status == 303


async def test_pages_send_security_headers(client: TestClient) -> None:
    await sign_in(client)
    resp = await client.get("/endpoints")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"]
    assert "<script>" not in await resp.text()  # no inline script anywhere
    login = await client.get("/login")
    assert "frame-ancestors 'none'" in login.headers["Content-Security-Policy"]


async def test_bearer_token_reads_pages_too(client: TestClient) -> None:
    resp = await client.get("/endpoints", headers=AUTH)
    assert resp.status == 200
    assert "New endpoint" in await resp.text()


async def test_create_endpoint_needs_csrf_and_shows_setup(client: TestClient) -> None:
    csrf = await sign_in(client)
    form = {"name": "Everflow test", "preset": "everflow", "required_params": ""}
    resp = await client.post("/endpoints", data=form, allow_redirects=False)
    assert resp.status == 403
    resp = await client.post("/endpoints", data={**form, "csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    location = resp.headers["Location"]
    assert re.fullmatch(r"/endpoints/\d+\?created=1", location)
    endpoint = (await (await client.get("/api/endpoints", headers=AUTH)).json())["items"][0]
    assert endpoint["settings"]["preset"] == "everflow"

    page = await (await client.get(location)).text()
    capture_url = endpoint["capture_url"]
    assert capture_url in page
    text = html.unescape(page)
    assert f"{capture_url}?click_id={{transaction_id}}&event={{event_name}}" in text
    sent = re.search(
        rf"curl '{re.escape(capture_url)}\?click_id=(test-[0-9a-f]{{8}})&event=sale&payout=1\.50'",
        text,
    )
    assert sent, "no test curl line with a fresh click id"
    again = html.unescape(await (await client.get(location)).text())
    assert sent.group(1) not in again  # each render has its own, so test hits are no duplicates
    assert 'data-copy="capture-url"' in page

    listing = await (await client.get("/endpoints")).text()
    assert "Everflow test" in listing
    assert capture_url in listing


async def test_create_endpoint_form_errors_are_shown(client: TestClient) -> None:
    csrf = await sign_in(client)
    resp = await client.post("/endpoints", data={"csrf": csrf, "name": "x", "preset": "nosuch"})
    assert resp.status == 400
    assert "preset" in await resp.text()
    resp = await client.post(
        "/endpoints", data={"csrf": csrf, "name": "req", "required_params": "cid, payout"}
    )
    assert resp.status == 200
    endpoint = (await (await client.get("/api/endpoints", headers=AUTH)).json())["items"][0]
    assert endpoint["settings"]["required_params"] == ["cid", "payout"]


async def test_endpoint_page_lists_hits_with_flags_and_filters(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("voluum", settings={"preset": "voluum"})
    clean = await fire(capture, endpoint, "?cid=abc-1&payout=2.50&currency=EUR&et=sale")
    macro = await fire(capture, endpoint, "?cid={clickid}&payout=1")
    posted = await fire(capture, endpoint, method="POST", data={"cid": "body-7", "payout": "1,50"})
    base = f"/endpoints/{endpoint['id']}"

    page = await (await client.get(base)).text()
    assert page.index(posted) < page.index(macro) < page.index(clean)  # newest first
    assert "2.50 EUR" in page
    assert "unreplaced_macro" in page
    assert "invalid_amount" in page
    assert 'id="summary"' in page

    async def ids(query: str) -> set[str]:
        text = await (await client.get(base + query)).text()
        return {h for h in (clean, macro, posted) if h in text}

    assert await ids("?flag=any") == {macro, posted}
    assert await ids("?flag=clean") == {clean}
    assert await ids("?flag=unreplaced_macro") == {macro}
    assert await ids("?method=POST") == {posted}
    assert await ids("?q=ABC-1") == {clean}
    assert await ids("?q=body-7&flag=invalid_amount") == {posted}
    assert await ids("?since=2000-01-01T00:00&until=2001-01-01T00:00") == set()
    assert await ids("?range=1h") == {clean, macro, posted}
    resp = await client.get(base + "?flag=bogus")
    assert resp.status == 400
    assert "unknown flag" in await resp.text()


async def test_pagination_keeps_filters(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("many")
    ids = [await fire(capture, endpoint, f"?click_id=c{i}&payout=1,{i}") for i in range(55)]
    await fire(capture, endpoint, "?click_id=clean&payout=1")
    base = f"/endpoints/{endpoint['id']}"
    page = await (await client.get(base + "?flag=invalid_amount")).text()
    older = re.search(r'href="(\?[^"]*cursor=[^"]+)" id="older"', page)
    assert older, "no link to older hits"
    link = html.unescape(older.group(1))
    assert "flag=invalid_amount" in link
    second = await (await client.get(base + link)).text()
    shown = [i for i in ids if i in page] + [i for i in ids if i in second]
    assert sorted(shown) == sorted(ids)
    assert 'id="older"' not in second
    assert "data-live=" not in second  # live updates only on the first page


async def test_new_rows_after_cursor(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("rows")
    first = await fire(capture, endpoint, "?click_id=a")
    page = await (await client.get(f"/endpoints/{endpoint['id']}")).text()
    cursor = re.search(rf'data-hit-id="{first}" data-cursor="([^"]+)"', page)
    assert cursor
    second = await fire(capture, endpoint, "?click_id=b")
    third = await fire(capture, endpoint, "?click_id=c&payout=x")
    rows = await (
        await client.get(f"/endpoints/{endpoint['id']}/rows?after={cursor.group(1)}")
    ).text()
    assert second in rows and third in rows and first not in rows
    rows = await (
        await client.get(f"/endpoints/{endpoint['id']}/rows?flag=clean&after={cursor.group(1)}")
    ).text()
    assert second in rows and third not in rows
    assert 'id="summary"' in rows


async def test_hit_page_escapes_everything_captured(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("xss", settings={"required_params": ["click_id"]})
    hit_id = await fire(
        capture,
        endpoint,
        "?click_id=" + XSS.replace("&", "%26").replace("#", "%23"),
        headers={"X-Evil": XSS},
        method="POST",
        data=XSS.encode(),
    )
    for path in (f"/hits/{hit_id}", f"/endpoints/{endpoint['id']}", "/endpoints"):
        text = await (await client.get(path)).text()
        assert "<script>alert" not in text
        assert "<img src=x" not in text
    text = await (await client.get(f"/hits/{hit_id}")).text()
    # Shown as text in the params table, the headers table, the body and the curl line.
    assert html.unescape(text).count(XSS) >= 4
    listing = await (await client.get(f"/endpoints/{endpoint['id']}")).text()
    assert "&lt;script&gt;" in listing


async def test_hit_page_explains_flags_and_links_duplicates(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("flags", settings={"required_params": ["click_id", "payout"]})
    first = await fire(capture, endpoint, "?click_id=dup-1&payout=1&event=sale")
    second = await fire(capture, endpoint, "?click_id=dup-1&payout=1&event=sale")
    macro = await fire(capture, endpoint, "?click_id={clickid}&payout=")

    text = await (await client.get(f"/hits/{second}")).text()
    assert "duplicate_click_id" in text
    assert f'href="/hits/{first}" id="first-occurrence"' in text
    assert "already received" in text  # the flag's help, in words

    text = html.unescape(await (await client.get(f"/hits/{macro}")).text())
    assert "Parameter click_id still holds the placeholder {clickid}" in text
    assert "Required parameter payout is empty" in text
    params = text[text.index('id="params"') :]
    assert '<tr class="flagged">' in params


async def test_hit_page_bodies(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("bodies")
    json_hit = await fire(
        capture, endpoint, method="POST", json={"event": "sale", "data": {"click_id": "j1"}}
    )
    binary_hit = await fire(
        capture,
        endpoint,
        method="PUT",
        data=b"\x00\xffPK\x03\x04binary",
        headers={"Content-Type": "application/octet-stream"},
    )
    form_hit = await fire(capture, endpoint, method="POST", data={"click_id": "f1", "sum": "3"})

    text = await (await client.get(f"/hits/{json_hit}")).text()
    assert "&#34;data&#34;: {\n    &#34;click_id&#34;: &#34;j1&#34;" in text
    text = await (await client.get(f"/hits/{binary_hit}")).text()
    assert "00 ff 50 4b 03 04 62 69" in text
    assert "AP9QSwMEYmluYXJ5" in text  # base64
    text = await (await client.get(f"/hits/{form_hit}")).text()
    assert "Form data" in text
    assert "curl --globoff -X POST" in html.unescape(text)


def test_curl_command_quotes_everything() -> None:
    hit = {
        "method": "POST",
        "path": "/p/tok",
        "query_string": "a={clickid}&b=it's",
        "headers": [["Host", "x"], ["User-Agent", "ua"], ["Content-Length", "3"]],
        "body_params": [],
        "params": [],
        "content_type": "text/plain",
        "body_text": "x'y",
    }
    cmd = present.curl_command("http://h:1", hit)
    assert cmd == (
        "curl --globoff -X POST -H 'User-Agent: ua' --data-raw 'x'\"'\"'y' "
        "'http://h:1/p/tok?a={clickid}&b=it'\"'\"'s'"
    )
    binary = {**hit, "body_text": None}
    del binary["body_text"]
    binary["body_base64"] = "AP8="
    assert present.curl_command("http://h:1", binary).startswith(
        "printf %s AP8= | base64 -d | curl --globoff -X POST"
    )
    get = {**hit, "method": "GET", "body_text": "", "query_string": "q=é b"}
    assert present.curl_command("http://h", get).endswith("'http://h/p/tok?q=%C3%A9%20b'")


async def test_settings_edit_rotate_and_delete(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    csrf = await sign_in(client)
    endpoint = await make_endpoint("settings")
    base = f"/endpoints/{endpoint['id']}"
    page = await (await client.get(base + "/settings")).text()
    assert "Rotate token" in page and "Delete" in page

    form = {
        "csrf": csrf,
        "name": "renamed",
        "description": "d",
        "settings": '{"preset": "binom"}',
        "response_status": "202",
        "response_body": "thanks",
        "response_content_type": "text/plain",
    }
    resp = await client.post(base + "/settings", data=form, allow_redirects=False)
    assert resp.status == 303
    updated = await (await client.get(f"/api{base}", headers=AUTH)).json()
    assert updated["name"] == "renamed"
    assert updated["settings"]["preset"] == "binom"
    assert updated["response"] == {"status": 202, "body": "thanks", "content_type": "text/plain"}
    bad = await client.post(base + "/settings", data={**form, "settings": '{"clickid_param": 1}'})
    assert bad.status == 400
    assert "clickid_param: unknown setting" in html.unescape(await bad.text())
    assert "clickid_param" in await bad.text()  # the user's input is kept

    resp = await client.post(base + "/rotate", data={"csrf": csrf})
    assert resp.status == 400
    assert (await capture.get(capture_path(endpoint))).status == 202
    resp = await client.post(base + "/rotate", data={"csrf": csrf, "confirm": "yes"})
    assert resp.status == 200
    assert (await capture.get(capture_path(endpoint))).status == 404
    rotated = await (await client.get(f"/api{base}", headers=AUTH)).json()
    assert rotated["capture_url"] in await resp.text()

    resp = await client.post(base + "/delete", data={"csrf": csrf})
    assert resp.status == 400
    resp = await client.post(base + "/delete", data={"csrf": csrf, "confirm": "yes"})
    assert resp.status == 200
    assert (await client.get(f"/api{base}", headers=AUTH)).status == 404


async def test_live_stream_announces_new_hits(
    client: TestClient, capture: CaptureClient, make_endpoint: Any
) -> None:
    await sign_in(client)
    endpoint = await make_endpoint("live")
    other = await make_endpoint("other")
    resp = await client.get(f"/endpoints/{endpoint['id']}/live")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert (await resp.content.readuntil(b"\n\n")).startswith(b"retry:")
    await fire(capture, other, "?click_id=elsewhere")
    await fire(capture, endpoint, "?click_id=here")
    event = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 10)
    assert event == b"event: hits\ndata: new\n\n"
    resp.close()


@pytest.mark.parametrize("path", ["/endpoints/999", "/hits/0191e9a4-0000-7000-8000-000000000000"])
async def test_missing_things_are_404(client: TestClient, path: str) -> None:
    await sign_in(client)
    assert (await client.get(path)).status == 404


async def test_browsers_get_an_html_error_page(client: TestClient) -> None:
    await sign_in(client)
    resp = await client.get("/hits/<script>", headers={"Accept": "text/html"})
    assert resp.status == 404
    assert resp.content_type == "text/html"
    text = await resp.text()
    assert "&lt;script&gt;" in text and "<script>" not in text
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
