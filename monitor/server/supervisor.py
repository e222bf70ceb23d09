"""``serve --workers N``: N worker processes on both listeners, kept running by a parent.

The parent binds both listeners and resolves what must be shared once (the
embedded database, the admin token, the metrics directory), then starts each
worker as ``serve --listen-fd capture:FD --listen-fd management:FD`` with the
settings in its environment. Workers accept on the listening sockets they
inherit: no SO_REUSEPORT, so no other program can join a port and take part of
its traffic. Each worker has its own writer
(Postgres settles duplicates between them). A worker that dies is started
again, and so is the embedded database (the parent owns it, workers reconnect).
SIGTERM/SIGINT are passed on and the parent waits for the workers to drain
before it stops the embedded database; a parent that dies without passing it on
(SIGKILL) still gets its workers a SIGTERM from the kernel (``stop_with_parent``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import structlog

from monitor import listen, metrics, runtime
from monitor.config import Config, to_environ
from monitor.storage.db import EMBEDDED_DIR
from monitor.storage.embedded import EmbeddedPostgres, KeepRunning
from monitor.web.auth import announce_admin_token, load_or_create_admin_token

log = structlog.get_logger(__name__)

POLL_S = 0.2
STOP_TIMEOUT_S = 60.0
CRASH_LOOP_S = 5.0  # a worker dying sooner than this after its start waits before restarting
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def worker_command(listeners: listen.Listeners) -> list[str]:
    return [
        *(sys.executable, "-m", "monitor", "serve", *listeners.as_args()),
        f"--parent-pid={os.getpid()}",
    ]


def stop_with_parent(parent_pid: int) -> bool:
    """In a worker: be sent SIGTERM (and so drain and stop) when the parent dies.

    A parent killed outright (SIGKILL, the OOM killer) cannot pass SIGTERM on, and
    orphaned workers would keep both ports: the node could not start again on them
    until someone found and killed the workers by hand. False: the parent is already
    gone (it died before this ran), so the worker should not start at all.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        log.warning("worker.orphaned", parent_pid=parent_pid)
        return False
    return True


def supervise(config: Config) -> int:
    """Raises ``listen.ListenError`` when an address cannot be bound."""
    listeners = listen.bind(config)  # before the database: a busy port starts nothing
    embedded: EmbeddedPostgres | None = None
    keeper: KeepRunning | None = None
    if config.database_url is None:
        embedded = EmbeddedPostgres(config.data_dir / EMBEDDED_DIR)
        config = config.replace(database_url=embedded.start())
        if embedded.started_here:
            keeper = KeepRunning(embedded)  # the workers just reconnect
            keeper.start()
    if config.admin_token is None:
        token, created = load_or_create_admin_token(config.data_dir)
        if created:
            announce_admin_token(token, config.data_dir, config.management_url, config.base_url)
        config = config.replace(admin_token=token)
    own_metrics_dir = metrics.multiprocess_dir() is None
    metrics_dir = metrics.multiprocess_dir() or tempfile.mkdtemp(prefix="postback-monitor-metrics-")
    # Before any worker starts: each makes its own Metrics (serve), file-backed in
    # this directory from its start. The parent records nothing and makes none.
    metrics.prepare_multiprocess(metrics_dir)
    env = {**os.environ, **to_environ(config), metrics.MULTIPROC_ENV: metrics_dir}

    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    workers: dict[int, subprocess.Popen[bytes]] = {}
    started_at: dict[int, float] = {}
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def start(slot: int) -> None:
        workers[slot] = subprocess.Popen(
            worker_command(listeners), env=env, pass_fds=listeners.fds()
        )
        started_at[slot] = time.monotonic()
        log.info("worker.started", slot=slot, pid=workers[slot].pid)

    announcement = contextlib.ExitStack()
    try:
        for slot in range(config.workers):
            start(slot)
        log.info(
            "serve.started",
            capture_url=config.base_url,
            management_url=config.management_url,
            workers=config.workers,
        )
        assert config.database_url is not None
        # DATA_DIR/server.json and the per-user pointer: the CLI's database and URLs
        announcement.enter_context(runtime.announce(config, config.database_url))
        while not stopping:
            time.sleep(POLL_S)
            for slot, proc in list(workers.items()):
                code = proc.poll()
                if code is None or stopping:
                    continue
                log.error("worker.died", slot=slot, pid=proc.pid, code=code)
                metrics.mark_process_dead(proc.pid, metrics_dir)
                if time.monotonic() - started_at[slot] < CRASH_LOOP_S:
                    time.sleep(1.0)
                if not stopping:
                    start(slot)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in workers.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker.killed", pid=proc.pid)
                proc.kill()
                proc.wait()
        failed = [p.pid for p in workers.values() if p.returncode not in (0, -signal.SIGTERM)]
        log.info("serve.stopped", workers=config.workers, failed=failed)
        return 0 if not failed else 1
    finally:
        announcement.close()
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
        if keeper is not None:
            keeper.stop()
        if embedded is not None:
            embedded.stop()
        if own_metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
