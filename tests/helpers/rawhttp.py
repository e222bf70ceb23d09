"""Exact bytes over a socket: the aiohttp client normalises URLs and framing, senders
don't. The one raw HTTP client of the tests (and the one ``free_port``)."""

from __future__ import annotations

import asyncio
import socket

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Conn:
    """One raw client connection: write bytes, read whole responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (lower-cased names), body."""
        block = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = block[:-4].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head else int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 10)
        return int(status_line.split()[1]), headers, body

    async def read_all(self, timeout_s: float = 10.0) -> bytes:
        """Everything until the server closes (a reset ends it too): the raw bytes."""
        chunks = []

        async def read() -> None:
            while chunk := await self.reader.read(65536):
                chunks.append(chunk)

        try:
            await asyncio.wait_for(read(), timeout_s)
        except ConnectionResetError:
            pass
        return b"".join(chunks)

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 10) == b""

    def close(self) -> None:
        self.writer.close()


async def connect(host: str, port: int, receive_buffer: int | None = None) -> Conn:
    """A raw connection; ``receive_buffer`` sets SO_RCVBUF before connecting (the TCP window)."""
    if receive_buffer is None:
        return Conn(*await asyncio.open_connection(host, port))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return Conn(*await asyncio.open_connection(sock=sock))


async def exchange(host: str, port: int, request: bytes, timeout_s: float = 10.0) -> bytes:
    """Write ``request``, read until the server closes; the whole raw answer (maybe empty)."""
    conn = await connect(host, port)
    try:
        try:
            await conn.send(request)
        except ConnectionError:
            pass  # answered and closed while the request was still going out
        return await conn.read_all(timeout_s)
    finally:
        conn.close()


async def send(host: str, port: int, request: bytes, timeout_s: float = 10.0) -> tuple[int, bytes]:
    """Write a raw HTTP/1.1 request (Connection: close); returns (status, whole response)."""
    response = await exchange(host, port, request, timeout_s)
    status_line = response.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), response


def header(response: bytes, name: str) -> str | None:
    """A header's value in a raw response, by case-insensitive name."""
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def get(target: str, extra: str = "", *, host: str = "x", close: bool = False) -> bytes:
    """A GET request's bytes; ``extra`` is more header lines, each ending in CRLF."""
    connection = "Connection: close\r\n" if close else ""
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{connection}{extra}\r\n".encode("latin-1")
