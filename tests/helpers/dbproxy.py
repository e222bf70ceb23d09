"""A TCP proxy between one server process and the test database that the test can
cut: the database becomes unreachable for that process only, as when one machine
loses its network path while the others keep theirs."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

CHUNK_BYTES = 64 * 1024


class DatabaseProxy:
    """Forwards 127.0.0.1:PORT to ``database_url``'s server (TCP, or the Unix socket the
    embedded PostgreSQL listens on); ``url`` is ``database_url`` through the proxy."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        parts = urlsplit(database_url)
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        # The embedded server's URL names the directory of its Unix socket, not a port.
        self.unix_path: str | None = None
        if socket_dir.startswith("/"):
            (path,) = [p for p in Path(socket_dir).glob(".s.PGSQL.*") if p.suffix != ".lock"]
            self.unix_path = str(path)
        self.open = True
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def start(self) -> DatabaseProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(self.database_url)
        user = parts.username or "postgres"
        self.url = urlunsplit(("postgresql", f"{user}@127.0.0.1:{port}", parts.path, "", ""))
        return self

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix_path is not None:
            return await asyncio.open_unix_connection(self.unix_path)
        parts = urlsplit(self.database_url)
        return await asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 5432)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await self._connect()
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}
            for w in (writer, up_writer):
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(CHUNK_BYTES):
                writer.write(data)
                await writer.drain()
        writer.close()

    def cut(self) -> None:
        """Drop every connection and refuse new ones until ``restore``."""
        self.open = False
        for writer in list(self._writers):
            writer.transport.abort()

    def restore(self) -> None:
        self.open = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
