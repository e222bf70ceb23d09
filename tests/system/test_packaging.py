"""The wheel carries the migrations: install it in a fresh venv and migrate."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers.pg import ScratchDatabase

ROOT = Path(__file__).parents[2]


def run(*cmd: str | Path, cwd: Path = ROOT, timeout: float = 600) -> str:
    out = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, f"{cmd}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_wheel_installs_and_migrates(tmp_path: Path, test_db: ScratchDatabase) -> None:
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT)
    (wheel,) = wheels.glob("postback_monitor-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "monitor/sql/001_init.sql" in names
    # The web views' templates and static files live inside the package.
    assert "monitor/web/views/templates/endpoint.html" in names
    assert "monitor/web/views/static/app.js" in names
    assert "monitor/web/views/static/style.css" in names
    # The API docs' initializer (Swagger UI itself comes from swagger-ui-py).
    assert "monitor/web/api/docs.js" in names
    # The presets are data beside their loader.
    assert "monitor/rules/presets.toml" in names
    # The settings reference the settings page links to.
    assert "monitor/docs/rules.md" in names

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "-q", wheel)
    url = test_db.fresh_database_url()
    out = run(
        venv / "bin" / "postback-monitor",
        "migrate",
        "--database-url",
        url,
        "--data-dir",
        tmp_path / "d",
        cwd=tmp_path,
    )
    assert out.startswith("applied migrations: [1")
    # The installed package serves the reference from its own copy, not a checkout's.
    check = "from monitor.web.views import reference as r; print(r.rules_path()); r.rules_html()"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    found = subprocess.run(
        [venv / "bin" / "python", "-c", check], capture_output=True, text=True, cwd=tmp_path,
        env=env, check=True,
    ).stdout  # fmt: skip
    assert found.strip().endswith("site-packages/monitor/docs/rules.md"), found
