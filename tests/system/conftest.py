"""Every test in this folder starts real processes: all of them are ``slow``, so
``pytest -m "not slow"`` is the fast loop of unit and integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)
