"""A real `postback-monitor serve` process for tests that need one, and one CLI
command run as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers.auth import ADMIN_TOKEN, AUTH
from tests.helpers.rawhttp import free_port


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None,
        extra: list[str] | None = None,
        admin_token: str | None = ADMIN_TOKEN,
        port: int | None = None,
        capture_port: int | None = None,
    ) -> None:
        self.port = port or free_port()  # management: web views, API, metrics
        self.capture_port = capture_port or free_port()
        self.data_dir = data_dir
        self.args = [
            sys.executable,
            "-m",
            "monitor",
            "serve",
            "--port",
            str(self.port),
            "--capture-port",
            str(self.capture_port),
            "--data-dir",
            str(data_dir),
            "--log-format",
            "json",
            *(extra or []),
        ]
        if admin_token:
            self.args += ["--admin-token", admin_token]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POSTBACK_MONITOR_")}
        self.env.pop("DATABASE_URL", None)
        # serve leaves a per-user pointer for the CLI (monitor.runtime): the test's own.
        self.env["XDG_STATE_HOME"] = str(data_dir.parent / "xdg-state")
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.log_path = data_dir.parent / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The management listener's base."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def capture_url(self) -> str:
        """The capture listener's base: postbacks go to ``capture_url + "/p/TOKEN"``."""
        return f"http://127.0.0.1:{self.capture_port}"

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"server not ready in {timeout_s}s:\n{self.log()}")

    def wait_listening_workers(self, count: int, timeout_s: float = 60.0) -> None:
        """Wait until `count` worker processes listen on both ports (serve --workers)."""
        import psutil

        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            listening = 0
            for child in psutil.Process(self.proc.pid).children():
                try:
                    conns = child.net_connections(kind="tcp")
                except psutil.NoSuchProcess:
                    continue
                ports = {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}
                listening += {self.port, self.capture_port} <= ports
            if listening >= count:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{count} workers not listening after {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._log.close()

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.wait()


def cli(
    *args: str, url: str, tmp_path: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """One `postback-monitor` CLI command run as a process against ``url``'s database."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            *args,
            "--database-url",
            url,
            "--data-dir",
            str(tmp_path),
            "--public-url",
            "https://pb.example",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


async def admin_api(base: str, method: str, path: str, **kwargs: Any) -> Any:
    """One API call to a server process with the admin token; its JSON, asserted 2xx."""
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.request(method, base + path, **kwargs) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()
