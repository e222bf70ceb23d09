"""Log lines reach stderr whole, so processes sharing it never interleave them."""

from __future__ import annotations

import json
import sys

import pytest
import structlog

from monitor import logs


class Writes:
    """A stand-in stderr that keeps each write() call apart."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_each_json_line_is_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = Writes()
    monkeypatch.setattr(sys, "stderr", stderr)
    try:
        logs.configure("json", "info")
        structlog.get_logger("t").info("one.event", hits=3)
        structlog.get_logger("t").info("two.event")
    finally:
        structlog.reset_defaults()
    assert len(stderr.calls) == 2, stderr.calls
    first = stderr.calls[0]
    assert first.endswith("\n") and first.count("\n") == 1
    assert json.loads(first)["event"] == "one.event"
