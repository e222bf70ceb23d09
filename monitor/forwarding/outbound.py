"""The one way out: an SSRF-safe HTTP client for forwards, replays and the tester.

Every request names a URL that someone other than the operator chose (an endpoint's
forward target, a URL pasted into the tester), so the client resolves the host
itself and refuses loopback, private, link-local (cloud metadata), multicast,
site-local, reserved and unspecified addresses unless the server flag
``--forward-allow`` (``Config.forward_allow``) lists the address's network or the host
name. An IPv6 address that carries an IPv4 address is judged by it too
(``why_refused``): ``[2002:7f00:1::]``, 6to4 around 127.0.0.1, is as refused as
127.0.0.1. The connection goes to the address that was vetted: the
aiohttp connector uses a resolver that vets what it returns, so DNS that changes
between the check and the connect cannot slip through. Redirects are never followed
here; callers follow them hop by hop, so each hop is vetted again. Bodies are read
up to a cap; connect and total time are bounded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from monitor.config import Config

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> addresses; tests swap in a fake DNS.
Lookup = Callable[[str, int], Awaitable[list[str]]]

SCHEMES = ("http", "https")
USER_AGENT = "postback-monitor"
READ_CHUNK_BYTES = 16 * 1024


class OutboundError(OSError):
    """An outbound request failed before it reached the server (e.g. DNS)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class OutboundRefused(OutboundError):
    """The URL may not be fetched: its scheme, or an address the guard refuses."""


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    url: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    body_truncated: bool
    elapsed_ms: float


# IPv6 ranges that stand for an IPv4 address: a connection reaches that address.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052, the well-known prefix
# IPv6 ranges that carry IPv4 addresses to tunnel through: refused if one is refused.
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated, RFC 4291
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
TEREDO = ipaddress.IPv6Network("2001::/32")  # server and (XOR'd) client IPv4
# Not global, whatever this Python's ipaddress tables say (they differ by version).
NOT_GLOBAL_V6 = (
    ipaddress.IPv6Network("fec0::/10"),  # site-local, deprecated yet still routed inside sites
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # NAT64 for local use, RFC 8215
    ipaddress.IPv6Network("2001:db8::/32"),  # documentation
    ipaddress.IPv6Network("3fff::/20"),  # documentation, RFC 9637
)


def why_refused(ip: IPAddress) -> str | None:
    """The kind of address the guard refuses by default, or None for a public one.

    An IPv6 address that stands for an IPv4 one (IPv4-mapped ``::ffff:0:0/96``,
    NAT64 ``64:ff9b::/96``) is judged as that IPv4 address; one that tunnels to
    IPv4 addresses (IPv4-compatible ``::/96``, 6to4 ``2002::/16``, Teredo
    ``2001::/32``) is refused when any of them is, then judged as IPv6.
    """
    stands_for = _stands_for(ip)
    if stands_for is not None:
        ip = stands_for
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local:
            return "site-local"
        for inner in _tunnelled(ip):
            reason = why_refused(inner)
            if reason is not None:
                return f"{reason} (through the IPv4 address {inner} inside it)"
        if any(ip in network for network in NOT_GLOBAL_V6):
            return "reserved"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def _stands_for(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return _low_ipv4(ip) if ip in NAT64 else None


def _tunnelled(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    if ip in IPV4_COMPATIBLE:
        return [_low_ipv4(ip)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return []


def _low_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


async def system_lookup(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Guard:
    """Which hosts and addresses outbound requests may reach."""

    def __init__(self, allow: Sequence[str] = (), lookup: Lookup = system_lookup) -> None:
        self.networks: list[IPNetwork] = []
        self.hosts: set[str] = set()
        for item in allow:
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.add(item.strip().lower().rstrip("."))
        self.lookup = lookup

    def check_ip(self, ip: IPAddress, host: str) -> None:
        reason = why_refused(ip)
        if reason is None or any(ip in n for n in self.networks):
            return
        stands_for = _stands_for(ip)
        if stands_for is not None and any(stands_for in n for n in self.networks):
            return
        shown = host if host == str(ip) else f"{host} ({ip})"
        raise OutboundRefused(
            f"{shown} is a {reason} address; to reach it, start the server with "
            "--forward-allow (or POSTBACK_MONITOR_FORWARD_ALLOW) listing its network or "
            "host name"
        )

    async def resolve(self, host: str, port: int) -> list[str]:
        """The host's addresses, all vetted; raises OutboundRefused if any is refused."""
        host = host.strip("[]")
        literal = _ip_or_none(host)
        if literal is not None:
            self.check_ip(literal, host)
            return [str(literal)]
        try:
            addresses = await self.lookup(host, port)
        except OSError as exc:
            raise OutboundError(f"{host} could not be resolved: {exc}") from None
        if not addresses:
            raise OutboundError(f"{host} has no address")
        if host.lower().rstrip(".") in self.hosts:
            return addresses
        for addr in addresses:
            # Refuse when any address is refused: a name that also points inside is suspect.
            self.check_ip(ipaddress.ip_address(addr.split("%", 1)[0]), host)
        return addresses

    def check_url(self, url: URL) -> None:
        """Scheme, host and IP literals; host names are vetted by the connector's resolver."""
        if url.scheme not in SCHEMES:
            raise OutboundRefused(f"only http and https URLs can be fetched, not {url.scheme!r}")
        if not url.raw_host:
            raise OutboundRefused("the URL has no host")
        literal = _ip_or_none(url.raw_host.strip("[]"))
        if literal is not None:
            # aiohttp connects to IP literals without asking the resolver.
            self.check_ip(literal, url.raw_host)


class _VettingResolver(AbstractResolver):
    """aiohttp's resolver: only vetted addresses reach the connector."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        for addr in await self.guard.resolve(host, port):
            ip = ipaddress.ip_address(addr.split("%", 1)[0])
            results.append(
                {
                    "hostname": host,
                    "host": str(ip),
                    "port": port,
                    "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        return results

    async def close(self) -> None:
        return None


def _ip_or_none(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class OutboundClient:
    """One aiohttp session behind the guard; ``start`` and ``close`` bracket its life."""

    def __init__(
        self,
        guard: Guard,
        *,
        connect_timeout_s: float = 5.0,
        total_timeout_s: float = 15.0,
        max_response_bytes: int = 64 * 1024,
    ) -> None:
        self.guard = guard
        self.timeout = aiohttp.ClientTimeout(total=total_timeout_s, sock_connect=connect_timeout_s)
        self.max_response_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(cls, config: Config) -> OutboundClient:
        """The client the settings ask for: the server's forwarder and the CLI's
        replays and tester go out with the same guard and limits."""
        return cls(
            Guard(config.forward_allow),
            connect_timeout_s=config.outbound_connect_timeout_s,
            total_timeout_s=config.outbound_timeout_s,
            max_response_bytes=config.outbound_max_response_bytes,
        )

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(resolver=_VettingResolver(self.guard), limit=200)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, trust_env=False, auto_decompress=True
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> OutboundClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        max_body_bytes: int | None = None,
    ) -> OutboundResponse:
        """One request, no redirects followed.

        Raises OutboundRefused, OutboundError, aiohttp.ClientError or TimeoutError.
        """
        assert self._session is not None, "OutboundClient.start() first"
        target = url if isinstance(url, URL) else URL(url, encoded=True)
        self.guard.check_url(target)
        cap = self.max_response_bytes if max_body_bytes is None else max_body_bytes
        send_headers = list(headers)
        if not any(name.lower() == "user-agent" for name, _ in send_headers):
            send_headers.append(("User-Agent", USER_AGENT))
        started = time.perf_counter()
        try:
            async with self._session.request(
                method,
                target,
                headers=send_headers,
                data=body,
                allow_redirects=False,
            ) as resp:
                data = bytearray()
                truncated = False
                while True:
                    chunk = await resp.content.read(READ_CHUNK_BYTES)
                    if not chunk:
                        break
                    room = cap - len(data)
                    if len(chunk) > room:
                        data += chunk[:room]
                        truncated = True
                        break
                    data += chunk
                elapsed_ms = (time.perf_counter() - started) * 1000
                return OutboundResponse(
                    url=str(target),
                    status=resp.status,
                    headers=[(k, v) for k, v in resp.headers.items()],
                    body=bytes(data),
                    body_truncated=truncated,
                    elapsed_ms=round(elapsed_ms, 3),
                )
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, OutboundError):
                raise exc.os_error from None
            raise
