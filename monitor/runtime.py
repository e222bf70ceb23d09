"""Where a running ``serve`` can be found, so that the CLI uses its database and URLs.

``serve`` (one process, or the parent of ``--workers``) writes ``DATA_DIR/server.json``
when it has started (its pid, capture and management URLs and the database URL it
uses; mode 0600, since the URL may hold a password; removed at a clean stop) and a
per-user pointer to it (``servers/PID.json`` under the user state directory; kept
after it stops, until the next server starts, so the CLI can name the data dir of
the last server that ran). The CLI (``resolve``) takes an explicit
``--database-url``/``--data-dir`` first, then the most recently started live server,
then the default data directory; it never creates a fresh database while a server
runs elsewhere for this user, nor while the last server's data dir has one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import platformdirs
import psutil

from monitor.config import Config

RUNTIME_FILE = "server.json"
PGDATA_MARK = Path("pgdata") / "PG_VERSION"  # storage.db.EMBEDDED_DIR's cluster, once made


class NoDatabase(Exception):
    """The CLI will not guess: the message (one line) says what to pass instead."""


def registry_dir() -> Path:
    """The per-user pointers to running servers, one file each."""
    return Path(platformdirs.user_state_dir("postback-monitor")) / "servers"


@dataclass(frozen=True)
class Server:
    pid: int
    started: float  # the process's create time: a reused pid is not this server
    data_dir: Path
    capture_url: str
    management_url: str
    database_url: str

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return (
                abs(proc.create_time() - self.started) < 1.0
                and proc.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "started": self.started,
            "data_dir": str(self.data_dir),
            "capture_url": self.capture_url,
            "management_url": self.management_url,
            "database_url": self.database_url,
        }


def _write_private(path: Path, doc: dict[str, Any]) -> None:
    """Atomically, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


@contextlib.contextmanager
def announce(config: Config, database_url: str) -> Iterator[Server]:
    """Tell the CLI about this running server until the block ends."""
    me = psutil.Process()
    data_dir = config.data_dir.expanduser().resolve()
    server = Server(
        me.pid, me.create_time(), data_dir, config.base_url, config.management_url, database_url
    )
    runtime = data_dir / RUNTIME_FILE
    _write_private(runtime, server.to_json())
    with contextlib.suppress(OSError):  # no state directory: found with --data-dir only
        for doc in _pointers():  # servers that have stopped: this one is the last now
            if not _pid_alive(doc):
                doc["path"].unlink(missing_ok=True)
        _write_private(
            registry_dir() / f"{me.pid}.json",
            {"pid": me.pid, "started": server.started, "data_dir": str(data_dir)},
        )
    try:
        yield server
    finally:
        # The pointer stays: the CLI names the data dir of the last server that ran.
        mine = _read(runtime)
        if mine is not None and mine.get("pid") == me.pid:
            runtime.unlink(missing_ok=True)


def _pid_alive(doc: dict[str, Any]) -> bool:
    try:
        proc = psutil.Process(int(doc["pid"]))
        return abs(proc.create_time() - float(doc.get("started") or 0)) < 1.0
    except (psutil.Error, ValueError, TypeError):
        return False


def server_in(data_dir: Path) -> Server | None:
    """The live server whose runtime file is in ``data_dir``."""
    doc = _read(data_dir.expanduser() / RUNTIME_FILE)
    if doc is None:
        return None
    try:
        server = Server(
            int(doc["pid"]),
            float(doc["started"]),
            Path(doc["data_dir"]),
            str(doc["capture_url"]),
            str(doc["management_url"]),
            str(doc["database_url"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return server if server.alive() else None


def _pointers() -> list[dict[str, Any]]:
    """The per-user pointers, newest first."""
    found = []
    with contextlib.suppress(OSError):
        for path in registry_dir().glob("*.json"):
            doc = _read(path)
            if doc and isinstance(doc.get("data_dir"), str) and isinstance(doc.get("pid"), int):
                found.append({**doc, "path": path})
    return sorted(found, key=lambda d: float(d.get("started") or 0), reverse=True)


def live_servers() -> list[Server]:
    """The servers of this user that run now, the most recently started first."""
    servers = []
    for doc in _pointers():
        server = server_in(Path(doc["data_dir"]))
        if server is not None and server.pid == doc["pid"]:
            servers.append(server)
    return servers


def has_database(data_dir: Path) -> bool:
    try:
        return (data_dir.expanduser() / PGDATA_MARK).exists()
    except OSError:  # cannot look: never take it for an empty one
        return True


@dataclass(frozen=True)
class Target:
    """What a CLI command uses: a database URL (None: the embedded one in ``data_dir``),
    the capture base for the URLs it prints, and one line saying so."""

    database_url: str | None
    data_dir: Path
    base_url: str
    note: str


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def resolve(config: Config, explicit: frozenset[str], *, may_create: bool = False) -> Target:
    """Explicit --database-url/--data-dir, else the newest live server, else the default
    data dir. ``may_create`` (migrate) lets a command make a fresh database in an
    explicitly named data dir although a server runs elsewhere."""

    def base(server: Server | None) -> str:
        if config.public_url or server is None:
            return config.base_url
        return server.capture_url.rstrip("/")

    def using(server: Server) -> str:
        return f"using the server at {server.management_url} (data dir {server.data_dir})"

    data_dir = config.data_dir.expanduser()
    servers = live_servers()
    if "database_url" in explicit and config.database_url is not None:
        url = config.database_url
        server = server_in(data_dir) if "data_dir" in explicit else None
        if server is None:
            server = next((s for s in servers if s.database_url == url), None)
        note = f"using the database at {redact(url)}"
        if server is not None:
            note += f" (the server at {server.management_url})"
        return Target(url, data_dir, base(server), note)
    if "data_dir" in explicit:
        server = server_in(data_dir)
        if server is not None:
            return Target(server.database_url, data_dir, base(server), using(server))
        if not has_database(data_dir) and servers and not may_create:
            other = servers[0]
            raise NoDatabase(
                f"no database in {data_dir}, and the server at {other.management_url} "
                f"(pid {other.pid}) uses data dir {other.data_dir}: pass "
                f"--data-dir {other.data_dir} (or leave it out) to use it, or run "
                f"`postback-monitor migrate --data-dir {data_dir}` to create one here"
            )
        return Target(None, data_dir, base(None), f"using the database in data dir {data_dir}")
    if servers:
        server = servers[0]
        return Target(server.database_url, server.data_dir, base(server), using(server))
    if not has_database(data_dir) and not may_create:
        for doc in _pointers():  # none is alive: the last server stopped (or died)
            last = Path(doc["data_dir"])
            if last.resolve() != data_dir.resolve() and has_database(last):
                raise NoDatabase(
                    f"no server is running and {data_dir} has no database; the last server "
                    f"(pid {doc['pid']}, not running) used data dir {last}: pass "
                    f"--data-dir {last}, or start `postback-monitor serve` first"
                )
            with contextlib.suppress(OSError):
                doc["path"].unlink()  # its data dir is gone: a stale pointer
    note = f"using the database in data dir {data_dir} (no server running)"
    return Target(None, data_dir, base(None), note)
