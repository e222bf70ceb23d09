"""The admin token: where it comes from, and the middleware that demands it.

Everything except capture (``/p/``), health and metrics needs the token, as
``Authorization: Bearer <token>``. Comparison is constant-time.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

import structlog
from aiohttp import web

from monitor import ids
from monitor.errors import Handler, Unauthorized
from monitor.typedefs import ADMIN_TOKEN

log = structlog.get_logger(__name__)

TOKEN_FILE = "admin_token"
PUBLIC_PREFIXES = ("/p/",)
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def load_or_create_admin_token(data_dir: Path) -> tuple[str, bool]:
    """The token kept in DATA_DIR/admin_token, made on first use; (token, created)."""
    path = data_dir / TOKEN_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    token = ids.admin_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token, True


def token_matches(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), expected.encode())


def bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_public(request.path):
        presented = bearer(request)
        if presented is None or not token_matches(presented, request.app[ADMIN_TOKEN]):
            raise Unauthorized(
                "unauthorized", "a valid admin token is required (Authorization: Bearer ...)"
            )
    return await handler(request)
