"""dashboards/build.py is reproducible: two runs in fresh interpreters (with different
hash seeds) write identical files, and those are the committed ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.grafana_rules import ALERTING, ALERTS, DASHBOARDS, RULE_GROUP_JSON

GENERATED = [
    DASHBOARDS / "postback-monitor.json",
    ALERTS,
    RULE_GROUP_JSON,
    ALERTING / "postback-monitor-rules.yaml",
    ALERTING / "notifications.yaml",
]


def build(out: Path, seed: str) -> dict[str, bytes]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, str(DASHBOARDS / "build.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_two_builds_are_identical_and_equal_the_committed_files(tmp_path: Path) -> None:
    first = build(tmp_path / "a", "1")
    second = build(tmp_path / "b", "2")
    assert first == second
    assert sorted(first) == sorted(str(p.relative_to(DASHBOARDS)) for p in GENERATED)
    for path in GENERATED:
        assert first[str(path.relative_to(DASHBOARDS))] == path.read_bytes(), (
            f"{path} is stale: run python dashboards/build.py"
        )


def test_check_passes_on_the_committed_files() -> None:
    done = subprocess.run(
        [sys.executable, str(DASHBOARDS / "build.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
