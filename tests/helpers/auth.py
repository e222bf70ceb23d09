"""The admin token every test server is started with, and its bearer header."""

from __future__ import annotations

import secrets

ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
