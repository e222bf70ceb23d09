"""The postback tester: the URL's own defects, then hop-by-hop redirects through the guard."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.forwarding.outbound import Guard, OutboundClient
from monitor.forwarding.tester import Probe, lint, run
from tests.conftest import AUTH, CaptureClient
from tests.helpers.signin import sign_in
from tests.helpers.tracker import Tracker


def redirect(status: int, to: str) -> Any:
    def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": to})

    return handler


@pytest.fixture
async def tracker() -> AsyncIterator[Tracker]:
    t = await Tracker().start()
    port = t.port
    t.routes.update(
        {
            "/a": redirect(302, "/b?step=2"),
            "/b": redirect(301, f"http://localhost:{port}/c"),
            "/c": redirect(307, "d"),
            "/to-metadata": redirect(302, "http://169.254.169.254/latest/meta-data/"),
            "/to-private": redirect(302, "http://10.0.0.1/internal"),
            "/to-loopback-ip": redirect(302, f"http://127.0.0.1:{port}/d"),
            "/post-303": redirect(303, "/d"),
            "/loop": redirect(302, "/loop"),
        }
    )
    try:
        yield t
    finally:
        await t.close()


@pytest.fixture
def config(config: Config) -> Config:
    # The tracker is reached by name only; the bare loopback address stays refused.
    return config.replace(forward_allow=("localhost",), outbound_timeout_s=5.0)


def codes(flags: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(f["flag"], f["param"]) for f in flags]


def test_lint_flags_the_urls_own_defects() -> None:
    assert codes(lint(Probe("https://t.example/pb?click_id=abc&payout=1.5"))) == []
    assert codes(lint(Probe("https://t.example/pb?click_id={clickid}&payout=1,5"))) == [
        ("unreplaced_macro", "click_id"),
        ("invalid_amount", "payout"),
    ]
    assert codes(lint(Probe("https://t.example/pb?payout=1"))) == [("missing_click_id", None)]
    assert codes(lint(Probe("https://t.example/conv/%7Bsub1%7D/x?cid=1"))) == [
        ("unreplaced_macro", None)
    ]
    # With a preset, its names and fillers count.
    voluum = {"preset": "voluum"}
    assert codes(lint(Probe("https://t.example/?cid=REPLACE", settings=voluum))) == [
        ("unreplaced_macro", "cid")
    ]
    assert codes(lint(Probe("https://t.example/?click_id=1", settings=voluum))) == [
        ("missing_param", "cid")
    ]
    # A body is judged too.
    body = Probe("https://t.example/pb", "POST", b"click_id=%%SUBID%%")
    assert codes(lint(body)) == [("unreplaced_macro", "click_id")]


async def test_follows_a_three_hop_redirect_chain(client: TestClient, tracker: Tracker) -> None:
    url = f"http://localhost:{tracker.port}/a?click_id=abc"
    resp = await client.post("/api/tester", json={"url": url}, headers=AUTH)
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert report["flags"] == [] and report["error"] is None
    hops = report["hops"]
    assert [h["status"] for h in hops] == [302, 301, 307, 200]
    base = f"http://localhost:{tracker.port}"
    assert [h["url"] for h in hops] == [url, f"{base}/b?step=2", f"{base}/c", f"{base}/d"]
    assert hops[0]["location"] == f"{base}/b?step=2"
    assert all(h["elapsed_ms"] >= 0 and h["headers"] for h in hops)
    assert ["Location", "/b?step=2"] in hops[0]["headers"]
    assert report["final"] == {
        "status": 200,
        "body_truncated": False,
        "body_text": "tracker says 200",
    }
    assert [r.path for r in tracker.requests] == ["/d"]


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ("/to-metadata", "169.254.169.254 is a link-local"),
        ("/to-private", "10.0.0.1 is a private"),
        ("/to-loopback-ip", "127.0.0.1 is a loopback"),
    ],
)
async def test_a_redirect_inside_is_refused(
    client: TestClient, tracker: Tracker, path: str, refused: str
) -> None:
    url = f"http://localhost:{tracker.port}{path}?click_id=1"
    report = await (await client.post("/api/tester", json={"url": url}, headers=AUTH)).json()
    assert [h.get("status") for h in report["hops"]] == [302, None]
    assert report["hops"][1]["error"].startswith(f"refused: {refused}")
    assert report["final"] is None and report["error"].startswith("refused:")
    assert tracker.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x?click_id=1",
        "http://10.0.0.1/x?click_id=1",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/",
    ],
)
async def test_refused_at_the_first_hop(client: TestClient, url: str) -> None:
    report = await (await client.post("/api/tester", json={"url": url}, headers=AUTH)).json()
    assert report["hops"][0]["error"].startswith("refused:")


async def test_a_hostname_resolving_inside_is_refused(tracker: Tracker) -> None:
    async def dns(host: str, port: int) -> list[str]:
        return {"evil.test": ["169.254.169.254"], "ten.test": ["10.0.0.1"]}[host]

    async with OutboundClient(Guard((), dns), total_timeout_s=2) as client:
        for host in ("evil.test", "ten.test"):
            report = await run(client, Probe(f"http://{host}/pb?click_id=1"))
            assert report["hops"][0]["error"].startswith(f"refused: {host} (")
    # The system's own resolver: localhost is loopback.
    async with OutboundClient(Guard(()), total_timeout_s=2) as client:
        report = await run(client, Probe(f"http://localhost:{tracker.port}/pb?click_id=1"))
    assert report["hops"][0]["error"].startswith("refused: localhost (")
    assert "loopback" in report["hops"][0]["error"]
    assert tracker.requests == []


async def test_post_303_becomes_get_and_loops_stop(client: TestClient, tracker: Tracker) -> None:
    url = f"http://localhost:{tracker.port}/post-303"
    report = await (
        await client.post(
            "/api/tester", json={"url": url, "method": "POST", "body": "click_id=9"}, headers=AUTH
        )
    ).json()
    assert [(h["method"], h["status"]) for h in report["hops"]] == [("POST", 303), ("GET", 200)]
    assert tracker.requests[0].body == b""
    report = await (
        await client.post(
            "/api/tester", json={"url": f"http://localhost:{tracker.port}/loop"}, headers=AUTH
        )
    ).json()
    assert len(report["hops"]) == 11 and report["error"] == "more than 10 redirects"


async def test_dry_run_and_bad_input(client: TestClient) -> None:
    resp = await client.post(
        "/api/tester",
        json={"url": "https://t.example/pb?cid={clickid}", "dry_run": True},
        headers=AUTH,
    )
    report = await resp.json()
    assert report["fired"] is False and report["hops"] == []
    assert codes(report["flags"]) == [("unreplaced_macro", "cid")]
    for doc in (
        {"url": "ftp://x/"},
        {"url": "https://x/", "method": "BREW"},
        {"url": "https://x/", "extra": 1},
        {"url": "https://x/", "settings": {"preset": "nope"}},
    ):
        resp = await client.post("/api/tester", json=doc, headers=AUTH)
        assert resp.status == 400, doc


async def test_cli_test_command(tracker: Tracker, tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTBACK_MONITOR_")}
    env["POSTBACK_MONITOR_DATA_DIR"] = str(tmp_path)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", "test", *args],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip

    url = f"http://localhost:{tracker.port}/a?click_id=abc"
    done = await asyncio.to_thread(cli, url, "--forward-allow", "localhost")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No problems found" in done.stdout
    assert "hop 4:" in done.stdout and "final status 200" in done.stdout
    done = await asyncio.to_thread(cli, url)  # not allowed: refused, exit 1
    assert done.returncode == 1 and "refused: localhost" in done.stdout
    done = await asyncio.to_thread(cli, "https://t.example/?cid=REPLACE", "--dry-run",
                                   "--preset", "voluum")  # fmt: skip
    assert done.returncode == 1 and "unreplaced_macro" in done.stdout


async def test_web_tester_and_replay_pages(
    client: TestClient, capture: CaptureClient, tracker: Tracker, make_endpoint: Any
) -> None:
    assert (await client.get("/tester", allow_redirects=False)).status in (302, 303)
    csrf = await sign_in(client, "/tester")
    url = f"http://localhost:{tracker.port}/a?click_id=<b>abc</b>"
    resp = await client.post("/tester", data={"csrf": csrf, "url": url, "method": "GET"})
    page = await resp.text()
    assert resp.status == 200
    assert page.count("<tr") >= 5 and "tracker says 200" in page
    assert "<b>abc</b>" not in page and "&lt;b&gt;abc&lt;/b&gt;" in page  # escaped
    resp = await client.post("/tester", data={"url": url})  # no CSRF token
    assert resp.status == 403

    endpoint = await make_endpoint(
        settings={"forward_url": f"http://localhost:{tracker.port}/pb?c={{click_id}}"}
    )
    hit = (await capture.get(f"/p/{endpoint['token']}?click_id=w1")).headers[
        "X-Postback-Monitor-Hit-Id"
    ]
    assert f"/hits/{hit}/forwards" in await (await client.get(f"/hits/{hit}")).text()
    resp = await client.post(f"/hits/{hit}/replay", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    resp = await client.post(
        f"/hits/{hit}/replay",
        data={"csrf": csrf, "url": f"http://localhost:{tracker.port}/other?c={{click_id}}"},
    )
    page = await resp.text()
    assert "Replayed" in page and "replay #2" in page and "/other?c=w1" in page
    assert sum(r.path == "/other" for r in tracker.requests) == 1
    resp = await client.post(f"/hits/{hit}/replay", data={"csrf": csrf, "url": "ftp://x/"})
    assert resp.status == 400 and "url: an http or https URL" in await resp.text()
