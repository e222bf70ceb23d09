"""Moved to tests/helpers/server.py; this name stays only until the test files still
importing it (test_forward, test_metrics, test_dashboards) move into their folders."""

from tests.helpers.rawhttp import free_port
from tests.helpers.server import ServerProcess

__all__ = ["ServerProcess", "free_port"]
