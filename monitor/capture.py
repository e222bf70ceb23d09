"""Where a hit enters: ``ANY /p/{token}`` and ``ANY /p/{token}/{tail}``.

The endpoint comes from the in-memory cache, the rules judge the parsed hit, the
writer commits it, and only then does the sender get the endpoint's response.
"""

from __future__ import annotations

import ipaddress
import time
from datetime import UTC, datetime

from aiohttp import web

from monitor import ids
from monitor.config import Config
from monitor.hit import Hit
from monitor.params import clean, parse_body, parse_query, text
from monitor.ratelimit import RateLimiter
from monitor.rules import judge, make_flag
from monitor.typedefs import CONFIG, ENDPOINT_CACHE, RATE_LIMITER, WRITER
from monitor.writer import WriteFailed, WriterClosed, WriterOverloaded

RETRY_AFTER_S = "2"
HIT_ID_HEADER = "X-Postback-Monitor-Hit-Id"
READ_CHUNK_BYTES = 64 * 1024


class BodyTooLarge(Exception):
    pass


async def read_body(
    request: web.Request, keep_bytes: int, hard_max_bytes: int
) -> tuple[bytes, int]:
    """The first ``keep_bytes`` of the body and its real size, read as a stream."""
    if not request.body_exists:  # most postbacks are GETs: no stream to drain
        return b"", 0
    if request.content_length is not None and request.content_length > hard_max_bytes:
        raise BodyTooLarge
    kept = bytearray()
    size = 0
    while True:
        chunk = await request.content.read(READ_CHUNK_BYTES)
        if not chunk:
            break
        size += len(chunk)
        if size > hard_max_bytes:
            raise BodyTooLarge
        if len(kept) < keep_bytes:
            kept += chunk[: keep_bytes - len(kept)]
    return bytes(kept), size


def client_ip(request: web.Request, config: Config) -> str | None:
    """The peer address, or the forwarded client when the peer is a trusted proxy."""
    peer = request.remote
    if not config.trusted_proxies:
        # The socket's own peer address: already an IP, nothing to check.
        return peer or None
    if peer is None:
        return None
    networks = _trusted_networks(config.trusted_proxies)
    if not _in_networks(peer, networks):
        return _valid_ip(peer)
    chain: list[str] = []
    for value in request.headers.getall("Forwarded", ()):
        for element in value.split(","):
            for pair in element.split(";"):
                name, _, addr = pair.strip().partition("=")
                if name.lower() == "for":
                    chain.append(_strip_port(addr.strip().strip('"')))
    if not chain:
        for value in request.headers.getall("X-Forwarded-For", ()):
            chain.extend(part.strip() for part in value.split(","))
    # Walk from the nearest hop: the first address that is not a trusted proxy is the client.
    for addr in reversed(chain):
        ip = _valid_ip(addr)
        if ip is None:
            break
        if not _in_networks(ip, networks):
            return ip
    return _valid_ip(peer)


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


async def capture(request: web.Request) -> web.StreamResponse:
    app = request.app
    config = app[CONFIG]
    endpoint = await app[ENDPOINT_CACHE].lookup(request.match_info["token"])
    if endpoint is None:
        raise web.HTTPNotFound(text="unknown capture token\n")
    rate = endpoint.compiled.rate_limit_per_s
    if rate is not None:
        wait_s = app[RATE_LIMITER].allow(endpoint.id, rate)
        if wait_s > 0:
            return web.Response(
                status=429,
                text="rate limit exceeded for this endpoint, retry later\n",
                headers={"Retry-After": RateLimiter.retry_after(wait_s)},
            )
    try:
        body, body_size = await read_body(
            request, config.max_body_bytes, config.hard_max_body_bytes
        )
    except BodyTooLarge:
        raise web.HTTPRequestEntityTooLarge(
            max_size=config.hard_max_body_bytes,
            actual_size=request.content_length or config.hard_max_body_bytes + 1,
        ) from None

    now_ns = time.time_ns()
    raw_path = request.raw_path.encode("utf-8", "surrogateescape")
    path, _, raw_query = raw_path.partition(b"?")
    headers = [(text(k), text(v)) for k, v in request.raw_headers]
    content_type = clean(request.headers.get("Content-Type", ""))
    params = parse_query(raw_query)
    body_params = parse_body(content_type, body)
    remote_ip = client_ip(request, config)
    verdict = judge(endpoint.rules, params + body_params, remote_ip=remote_ip, headers=headers)
    flags = list(verdict.flags)
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
    user_agent = request.headers.get("User-Agent")
    hit = Hit(
        id=ids.uuid7(now_ns // 1_000_000),
        endpoint_id=endpoint.id,
        received_at=datetime.fromtimestamp(now_ns // 1_000_000 / 1000, tz=UTC),
        method=clean(request.method),
        path=text(path),
        raw_query=raw_query,
        params=params,
        body_params=body_params,
        headers=headers,
        content_type=content_type,
        body=body,
        body_size=body_size,
        remote_ip=remote_ip,
        user_agent=None if user_agent is None else clean(user_agent),
        verdict=verdict,
        flags=flags,
    )
    try:
        await app[WRITER].submit(hit)
    except (WriterOverloaded, WriterClosed, WriteFailed):
        return web.Response(
            status=503,
            text="postback not stored, retry later\n",
            headers={"Retry-After": RETRY_AFTER_S},
        )
    return web.Response(
        status=endpoint.response_status,
        body=endpoint.response_body.encode("utf-8"),
        # The hit id lets a sender (or a test) find exactly this hit later.
        headers={"Content-Type": endpoint.response_content_type, HIT_ID_HEADER: str(hit.id)},
    )
