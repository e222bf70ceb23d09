"""The SSRF guard: refused addresses, after DNS and on every hop; caps and timeouts."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.forwarding.outbound import (
    Guard,
    OutboundClient,
    OutboundError,
    OutboundRefused,
    why_refused,
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
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("192.168.1.10", "private"),
        ("172.16.0.5", "private"),
        ("169.254.169.254", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "reserved"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        # IPv6 addresses that carry an IPv4 address are judged by it (issue #12, item 14).
        ("::ffff:169.254.169.254", "link-local"),  # IPv4-mapped
        ("::127.0.0.1", "loopback"),  # IPv4-compatible
        ("::a00:1", "private"),
        ("::8.8.8.8", "reserved"),  # deprecated: refused whatever it carries
        ("64:ff9b::7f00:1", "loopback"),  # NAT64, 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64, the metadata address
        ("64:ff9b:1::a00:1", "reserved"),  # NAT64 for local use
        ("64:ff9b:1::808:808", "reserved"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 around 10.0.0.1
        ("2002:a9fe:a9fe::", "link-local"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "private"),  # Teredo, client 192.0.2.45
        ("2001:0:808:808::f5f5:f5fe", "private"),  # Teredo, client 10.10.10.1 (XOR'd)
        ("2001:0:808:808::f7ff:fffe", "private"),  # Teredo, public inside: still not global
        ("fec0::1", "site-local"),
        ("fc00::1", "private"),  # unique-local
        ("ff0e::1", "multicast"),
        ("2001:db8::1", "reserved"),  # documentation
        ("3fff::1", "reserved"),  # documentation, RFC 9637
        ("100::1", "private"),  # discard-only
    ],
)
def test_refused_kinds(address: str, kind: str) -> None:
    reason = why_refused(ipaddress.ip_address(address))
    assert reason is not None and reason.startswith(kind)


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "2606:4700::1111",
        "8.8.8.8",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",  # NAT64 to a public address reaches that address
        "2002:808:808::1",  # 6to4 around a public address
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert why_refused(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("allow", "address", "allowed"),
    [
        ("2002::/16", "2002:7f00:1::", True),  # the IPv6 network itself
        ("2002:7f00:1::", "2002:7f00:1::", True),
        ("fec0::/10", "fec0::1", True),
        ("127.0.0.0/8", "64:ff9b::7f00:1", True),  # NAT64 stands for 127.0.0.1
        ("127.0.0.0/8", "::ffff:127.0.0.1", True),
        ("127.0.0.0/8", "2002:7f00:1::", False),  # a tunnel is not its inner address
        ("10.0.0.0/8", "2002:7f00:1::", False),
    ],
)
def test_forward_allow_allows_explicitly(allow: str, address: str, allowed: bool) -> None:
    guard = Guard([allow])
    ip = ipaddress.ip_address(address)
    if allowed:
        guard.check_ip(ip, address)
    else:
        with pytest.raises(OutboundRefused):
            guard.check_ip(ip, address)


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
