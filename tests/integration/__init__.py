"""Tests against the real PostgreSQL, with the app and its listeners in process."""
