"""Send exact bytes over a socket: the aiohttp client normalises URLs, senders don't."""

from __future__ import annotations

import asyncio


async def send(host: str, port: int, request: bytes, timeout_s: float = 10.0) -> tuple[int, bytes]:
    """Write a raw HTTP/1.1 request (Connection: close); returns (status, whole response)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()
    status_line = response.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), response


def get(target: str, host: str = "localhost") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1")
