"""The SSRF guard on the way out: after DNS and on every hop; caps and timeouts.
(Its address tables, pure: tests/unit/test_outbound_guard.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.forwarding.outbound import (
    Guard,
    OutboundClient,
    OutboundError,
    OutboundRefused,
)


@pytest.fixture
async def tracker() -> AsyncIterator[TestServer]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="tracked")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 100_000)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def bounce(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    app.router.add_get("/bounce", bounce)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def fake_dns(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def lookup(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    return lookup


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://10.0.0.1/postback",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://[::ffff:10.0.0.1]/",
        "http://[2002:7f00:1::]/",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://site-local.test/",  # fake DNS below: a site-local address
        "http://localhost/",  # resolved by the system: 127.0.0.1 / ::1
        "http://metadata.test/",  # fake DNS below: resolves to the metadata address
        "http://inside.test/",  # one public address and one private: refused
        "ftp://example.com/",
        "file:///etc/passwd",
    ],
)
async def test_guard_refuses(url: str) -> None:
    dns = fake_dns(
        {
            "metadata.test": ["169.254.169.254"],
            "inside.test": ["93.184.215.14", "10.0.0.1"],
            "site-local.test": ["fec0::1"],
        }
    )

    async def lookup(host: str, port: int) -> list[str]:
        if host == "localhost":
            from monitor.forwarding.outbound import system_lookup

            return await system_lookup(host, port)
        return await dns(host, port)

    async with OutboundClient(Guard((), lookup), total_timeout_s=2) as client:
        with pytest.raises(OutboundRefused):
            await client.request("GET", url)


async def test_allow_list_by_cidr_and_by_name(tracker: TestServer) -> None:
    port = tracker.port
    async with OutboundClient(Guard(["127.0.0.0/8"])) as client:
        resp = await client.request("GET", f"http://127.0.0.1:{port}/ok")
        assert (resp.status, resp.body) == (200, b"tracked")
    dns = fake_dns({"tracker.test": ["127.0.0.1"]})
    async with OutboundClient(Guard(["tracker.test"], dns)) as client:
        resp = await client.request("GET", f"http://tracker.test:{port}/ok")
        assert resp.status == 200
        # The name is allowed, not the address behind it.
        with pytest.raises(OutboundRefused):
            await client.request("GET", f"http://127.0.0.1:{port}/ok")
    # A name resolving to an allowed network is reached through the vetted address.
    async with OutboundClient(Guard(["127.0.0.1/32"], dns)) as client:
        resp = await client.request("GET", f"http://tracker.test:{port}/ok")
        assert resp.status == 200


async def test_unresolvable_host_is_an_error_not_a_refusal() -> None:
    async with OutboundClient(Guard((), fake_dns({}))) as client:
        with pytest.raises(OutboundError) as info:
            await client.request("GET", "http://nowhere.test/")
    assert not isinstance(info.value, OutboundRefused)


async def test_body_cap_and_total_timeout(tracker: TestServer) -> None:
    async with OutboundClient(
        Guard(["127.0.0.1"]), total_timeout_s=0.5, max_response_bytes=1000
    ) as client:
        resp = await client.request("GET", f"http://127.0.0.1:{tracker.port}/big")
        assert len(resp.body) == 1000 and resp.body_truncated
        with pytest.raises(asyncio.TimeoutError):
            await client.request("GET", f"http://127.0.0.1:{tracker.port}/slow")


async def test_redirects_are_not_followed_by_the_client(tracker: TestServer) -> None:
    async with OutboundClient(Guard(["127.0.0.1"])) as client:
        resp = await client.request("GET", f"http://127.0.0.1:{tracker.port}/bounce")
    assert resp.status == 302
    assert dict(resp.headers)["Location"] == "http://169.254.169.254/latest/meta-data/"
