"""Tests that start real processes: `serve`, Prometheus, Chromium, curl, pip."""
