"""Moved to tests/helpers/tracker.py; this name stays only until test_forward, which
still imports it, moves into its folder."""

from tests.helpers.tracker import Tracker, eventually

__all__ = ["Tracker", "eventually"]
