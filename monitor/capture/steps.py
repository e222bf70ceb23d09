"""Where a hit enters: ``ANY /p/{token}`` and ``ANY /p/{token}/{tail}``.

The endpoint comes from the in-memory cache, the rules judge the parsed hit, the
writer commits it, and only then does the sender get the endpoint's response.

The steps here know nothing of HTTP: ``admit`` (token and rate limit, before the
body is read) and ``judged_hit`` (parse and judge) work on raw bytes, and
``stored_reply`` is the answer once the writer has the hit. The capture listener's
protocol (``monitor.capture.front``) reads the requests and calls them; it is the only one.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from monitor.config import Config
from monitor.model import ids
from monitor.model.hit import Hit
from monitor.model.paths import CAPTURE_PREFIX
from monitor.ratelimit import RateLimiter
from monitor.rules import judge, make_flag
from monitor.rules.params import body_view, clean, query_view, text, truncated_flags
from monitor.storage.endpoint_cache import EndpointCache
from monitor.storage.endpoints import Endpoint
from monitor.storage.writer import HitWriter

RETRY_AFTER_S = "2"
HIT_ID_HEADER = "X-Postback-Monitor-Hit-Id"
TEXT_PLAIN = "text/plain; charset=utf-8"
_PREFIX = CAPTURE_PREFIX.encode("ascii")

RawHeaders = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Reply:
    """What capture answers; ``hit_id`` is set only when the hit was stored."""

    status: int
    body: bytes
    content_type: str = TEXT_PLAIN
    hit_id: str | None = None
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """One request as capture needs it: raw bytes, whichever server read them."""

    method: str
    raw_target: bytes
    raw_headers: RawHeaders
    body: bytes
    body_size: int
    peer: str | None


UNKNOWN_TOKEN = Reply(404, b"unknown capture token\n")
NOT_STORED = Reply(503, b"postback not stored, retry later\n", retry_after=RETRY_AFTER_S)


@dataclass(frozen=True, slots=True)
class Capture:
    """The components capture works with, handed over by the composition root."""

    config: Config
    cache: EndpointCache
    limiter: RateLimiter
    writer: HitWriter

    def admit_cached(self, token: str) -> Endpoint | Reply | None:
        """``admit`` without I/O: None when the token is not in the cache."""
        endpoint = self.cache.get(token)
        return None if endpoint is None else self._within_rate(endpoint)

    async def admit(self, token: str) -> Endpoint | Reply:
        """The endpoint to store a hit for, or the refusal to send before reading the body."""
        admitted = self.admit_cached(token)
        if admitted is not None:
            return admitted
        endpoint = await self.cache.lookup(token)
        return UNKNOWN_TOKEN if endpoint is None else self._within_rate(endpoint)

    def _within_rate(self, endpoint: Endpoint) -> Endpoint | Reply:
        rate = endpoint.compiled.rate_limit_per_s
        if rate is not None:
            wait_s = self.limiter.allow(endpoint.id, rate)
            if wait_s > 0:
                return Reply(
                    429,
                    b"rate limit exceeded for this endpoint, retry later\n",
                    retry_after=RateLimiter.retry_after(wait_s),
                )
        return endpoint

    def judged_hit(self, endpoint: Endpoint, received: Received) -> Hit:
        """The hit for one request, parsed and judged, ready for the writer."""
        now_ns = time.time_ns()
        body, body_size, raw_headers = received.body, received.body_size, received.raw_headers
        path, _, raw_query = received.raw_target.partition(b"?")
        headers = [(text(k), text(v)) for k, v in raw_headers]
        content_type = user_agent = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == "content-type" and content_type is None:
                content_type = value
            elif lowered == "user-agent" and user_agent is None:
                user_agent = value
        content_type = content_type or ""
        query, body_part = query_view(raw_query), body_view(content_type, body)
        params, body_params = query.params, body_part.params
        remote_ip = client_ip(received.peer, raw_headers, self.config)
        verdict = judge(endpoint.rules, params + body_params, remote_ip=remote_ip, headers=headers)
        flags = [*verdict.flags, *truncated_flags(query, body_part)]
        if body_size > len(body):
            flags.append(
                make_flag(
                    "body_truncated",
                    None,
                    None,
                    f"the body was {body_size} bytes; the first {len(body)} were kept",
                    size=body_size,
                )
            )
        millis = now_ns // 1_000_000
        return Hit(
            id=ids.uuid7(millis),
            endpoint_id=endpoint.id,
            received_at=datetime.fromtimestamp(millis / 1000, tz=UTC),
            method=clean(received.method),
            path=text(path),
            raw_query=raw_query,
            params=params,
            body_params=body_params,
            headers=headers,
            content_type=content_type,
            body=body,
            body_size=body_size,
            remote_ip=remote_ip,
            user_agent=user_agent,
            verdict=verdict,
            flags=flags,
        )


def stored_reply(endpoint: Endpoint, hit: Hit) -> Reply:
    """The endpoint's configured response for a stored hit."""
    return Reply(
        endpoint.response_status,
        endpoint.response_body.encode("utf-8"),
        endpoint.response_content_type,
        # The hit id lets a sender (or a test) find exactly this hit later.
        hit_id=str(hit.id),
    )


def token_of(raw_path: bytes) -> str | None:
    """The token in a capture path (``/p/{token}[/{tail}]``), or None for another path."""
    if not raw_path.startswith(_PREFIX):
        return None
    token = raw_path[len(_PREFIX) :].split(b"/", 1)[0].decode("utf-8", "surrogateescape")
    if "%" in token:
        token = unquote(token, errors="surrogateescape")
    return token or None


def client_ip(peer: str | None, raw_headers: RawHeaders, config: Config) -> str | None:
    """The peer address, or the client a trusted proxy names.

    Only ``config.trusted_proxy_header`` is read, and only when the peer is a trusted
    proxy: any other forwarding header (``Forwarded`` beside ``X-Forwarded-For``,
    ``X-Real-IP``, ...) came from the sender and proves nothing. The header's list
    is walked from the right, the hop the proxy added, past trusted proxies only:
    the first address that is not one is the client. Entries further left were
    written by the sender.
    """
    if not config.trusted_proxies:
        # The socket's own peer address: already an IP, nothing to check.
        return peer or None
    if peer is None:
        return None
    networks = _trusted_networks(config.trusted_proxies)
    if not _in_networks(peer, networks):
        return _valid_ip(peer)
    for addr in reversed(_forwarded_chain(raw_headers, config.trusted_proxy_header)):
        ip = _valid_ip(addr)
        if ip is None:
            break  # garbage or an obfuscated hop: nothing beyond it can be believed
        if not _in_networks(ip, networks):
            return ip
    return _valid_ip(peer)


def _forwarded_chain(raw_headers: RawHeaders, header: str) -> list[str]:
    """The addresses in every field of ``header``, in order (the nearest hop last)."""
    name = header.lower().encode("ascii")
    values = [text(v) for k, v in raw_headers if k.lower() == name]
    if name != b"forwarded":
        return [_strip_port(part.strip()) for value in values for part in value.split(",")]
    chain = []  # RFC 7239: for= in each element, maybe quoted
    for value in values:
        for element in value.split(","):
            for pair in element.split(";"):
                key, _, addr = pair.strip().partition("=")
                if key.lower() == "for":
                    chain.append(_strip_port(addr.strip().strip('"')))
    return chain


_networks_cache: dict[tuple[str, ...], list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}


def _trusted_networks(
    cidrs: tuple[str, ...],
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = _networks_cache.get(cidrs)
    if networks is None:
        networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]
        _networks_cache[cidrs] = networks
    return networks


def _in_networks(addr: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def _strip_port(addr: str) -> str:
    if addr.startswith("["):
        return addr[1:].split("]", 1)[0]
    if addr.count(":") == 1:
        return addr.split(":", 1)[0]
    return addr


def _valid_ip(addr: str | None) -> str | None:
    if not addr:
        return None
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return None
