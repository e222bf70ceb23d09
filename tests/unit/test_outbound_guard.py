"""The SSRF guard's address tables: which addresses are refused and why, which pass,
and what --forward-allow lets through. (Resolving, hops, caps and timeouts against
local servers: tests/integration/test_outbound.py.)"""

from __future__ import annotations

import ipaddress

import pytest

from monitor.forwarding.outbound import Guard, OutboundRefused, why_refused


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


def test_refusal_names_the_server_flag_not_an_endpoint_setting() -> None:
    # forward_allow is the server's --forward-allow, not a key of an endpoint's settings.
    with pytest.raises(OutboundRefused) as refused:
        Guard([]).check_ip(ipaddress.ip_address("10.0.0.1"), "tracker.internal")
    message = str(refused.value)
    assert message.startswith("tracker.internal (10.0.0.1) is a private address")
    assert "--forward-allow" in message
    assert "forward_allow" not in message.replace("FORWARD_ALLOW", "")
