"""The CLI without flags uses the running server: its database, its capture URLs
(issue #14: items 1 and 2), and each subcommand's help lists only its own flags
(item 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.server import ServerProcess


def user_env(tmp_path: Path) -> dict[str, str]:
    """A user of the test's own: HOME and the XDG directories under tmp_path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POSTBACK_MONITOR_", "XDG_")) and k != "DATABASE_URL"
    }
    home = tmp_path / "home"
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
    )
    return env


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def start_server(tmp_path: Path, env: dict[str, str]) -> ServerProcess:
    server = ServerProcess(tmp_path / "pbm-data", database_url=None)
    server.env.update({k: v for k, v in env.items() if k == "HOME" or k.startswith("XDG_")})
    return server.start()


def default_data_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_DATA_HOME"]) / "postback-monitor"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return user_env(tmp_path)


def test_cli_without_flags_uses_the_running_servers_database_and_urls(
    tmp_path: Path, env: dict[str, str]
) -> None:
    server = start_server(tmp_path, env)
    try:
        using = f"using the server at {server.url} (data dir {(tmp_path / 'pbm-data').resolve()})"
        out = run(env, tmp_path, "endpoint", "create", "Binom", "--preset", "binom")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        capture = next(line for line in lines if "capture URL:" in line).split()[-1]
        postback = next(line for line in lines if "postback URL (binom):" in line).split()[-1]
        assert capture.startswith(f"{server.capture_url}/p/"), out.stdout
        assert postback.startswith(capture + "?cnv_id="), out.stdout
        assert out.stderr.splitlines() == [using]
        endpoint_id = lines[0].split()[1].rstrip(":")

        out = run(env, tmp_path, "endpoint", "list")
        assert out.returncode == 0, out.stderr
        assert capture in out.stdout and "Binom" in out.stdout
        assert out.stderr.splitlines() == [using]

        out = run(env, tmp_path, "endpoint", "update", endpoint_id, "--description", "d")
        assert out.returncode == 0, out.stderr
        assert f"capture URL: {capture}" in out.stdout

        with urllib.request.urlopen(capture + "?cnv_id=printed-url", timeout=10) as resp:
            assert resp.status == 200
        out = run(env, tmp_path, "hits", "tail", endpoint_id, "--no-follow", "--json")
        assert out.returncode == 0, out.stderr
        hits = [json.loads(line) for line in out.stdout.splitlines()]
        assert [h["params"] for h in hits] == [[["cnv_id", "printed-url"]]]
        assert out.stderr.splitlines() == [using]  # and no embedded_postgres.started
        assert not default_data_dir(env).exists()  # no fresh database made on the side
    finally:
        server.stop()

    # Stopped: the CLI names the last server's data dir rather than make a fresh database.
    out = run(env, tmp_path, "hits", "tail", endpoint_id, "--no-follow")
    assert out.returncode == 1
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert f"--data-dir {(tmp_path / 'pbm-data').resolve()}" in out.stderr
    assert not default_data_dir(env).exists()


def test_cli_refuses_a_fresh_database_while_a_server_runs_elsewhere(
    tmp_path: Path, env: dict[str, str]
) -> None:
    server = start_server(tmp_path, env)
    try:
        out = run(env, tmp_path, "endpoint", "list", "--data-dir", str(tmp_path / "typo"))
        assert out.returncode == 1
        assert out.stdout == ""
        [line] = out.stderr.splitlines()
        assert line.startswith(f"postback-monitor: no database in {tmp_path / 'typo'}")
        assert f"--data-dir {(tmp_path / 'pbm-data').resolve()}" in line
        assert server.url in line
        assert not (tmp_path / "typo" / "pgdata").exists()
    finally:
        server.stop()


def test_subcommand_help_and_usage_errors_are_its_own(tmp_path: Path, env: dict[str, str]) -> None:
    out = run(env, tmp_path, "hits", "show", "--help")
    assert out.returncode == 0
    assert len(out.stdout.splitlines()) < 30, out.stdout
    for server_flag in ("--port", "--capture-port", "--workers", "--admin-token"):
        assert server_flag not in out.stdout
    assert "--data-dir" in out.stdout and "--database-url" in out.stdout

    out = run(env, tmp_path, "hits", "show")
    assert out.returncode == 2
    assert out.stderr.startswith("usage: postback-monitor hits show ")
    assert len(out.stderr.splitlines()) < 6, out.stderr
    assert "--port" not in out.stderr

    out = run(env, tmp_path, "serve", "--help")
    assert "--capture-port" in out.stdout and "--retention-days" in out.stdout


def test_attaching_to_a_running_embedded_database_logs_nothing(
    tmp_path: Path, env: dict[str, str]
) -> None:
    server = start_server(tmp_path, env)
    try:
        # As with a server that left no server.json: the CLI starts nothing, attaches.
        (tmp_path / "pbm-data" / "server.json").unlink()
        out = run(env, tmp_path, "endpoint", "list", "--data-dir", str(tmp_path / "pbm-data"))
        assert out.returncode == 0, out.stderr
        assert out.stderr.splitlines() == [
            f"using the database in data dir {tmp_path / 'pbm-data'}"
        ]
    finally:
        server.stop()


def test_serve_with_workers_is_found_too(tmp_path: Path, env: dict[str, str]) -> None:
    server = ServerProcess(tmp_path / "pbm-data", database_url=None, extra=["--workers", "2"])
    server.env.update({k: v for k, v in env.items() if k == "HOME" or k.startswith("XDG_")})
    server.start()
    try:
        runtime = tmp_path / "pbm-data" / "server.json"
        assert runtime.stat().st_mode & 0o077 == 0
        assert json.loads(runtime.read_text())["pid"] == server.proc.pid  # type: ignore[union-attr]
        out = run(env, tmp_path, "endpoint", "create", "w")
        assert out.returncode == 0, out.stderr
        assert f"capture URL: {server.capture_url}/p/" in out.stdout
        assert out.stderr.startswith(f"using the server at {server.url} ")
    finally:
        assert server.stop() == 0
    assert not runtime.exists()
