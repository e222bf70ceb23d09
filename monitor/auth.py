"""The admin token: where it comes from, and the middleware that demands it.

Everything except capture (``/p/``), health and metrics needs the token, as
``Authorization: Bearer <token>``. Comparison is constant-time.

Web pages also accept a session cookie, made at sign-in: ``v1.<issued>.<nonce>.<mac>``,
HMAC-signed with a key derived from the admin token, so no session table is needed
and changing the admin token signs every browser out. The JSON API under ``/api/``
stays bearer-only. A page request without either is redirected to ``/login``.
Every state-changing form carries a CSRF token derived from the session's nonce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import structlog
from aiohttp import web

from monitor import ids
from monitor.errors import Handler, Unauthorized
from monitor.typedefs import ADMIN_TOKEN, SESSION

log = structlog.get_logger(__name__)

TOKEN_FILE = "admin_token"
PUBLIC_PREFIXES = ("/p/", "/static/")
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/login"})
SESSION_COOKIE = "pbm_session"
SESSION_MAX_AGE_S = 7 * 24 * 3600
SESSION_KEY_LABEL = b"postback-monitor session v1"


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


def announce_admin_token(token: str, data_dir: Path, base_url: str) -> None:
    """Print a newly made token once, on the terminal that started the service; never logged."""
    print(
        f"Postback Monitor admin token (kept in {data_dir}/{TOKEN_FILE}):\n"
        f"  {token}\nWeb address: {base_url}/",
        flush=True,
    )


def token_matches(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), expected.encode())


def bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: when it signed in, and the nonce its CSRF token comes from."""

    issued_at: int
    nonce: str

    def csrf_token(self, admin_token: str) -> str:
        return _mac(admin_token, f"csrf.{self.nonce}")


def _mac(admin_token: str, message: str) -> str:
    key = hmac.new(admin_token.encode(), SESSION_KEY_LABEL, hashlib.sha256).digest()
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def new_session_cookie(admin_token: str, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    payload = f"v1.{issued}.{secrets.token_hex(16)}"
    return f"{payload}.{_mac(admin_token, payload)}"


def read_session_cookie(value: str, admin_token: str, now: float | None = None) -> Session | None:
    """The session a cookie value stands for, or None if forged, malformed or expired."""
    version, _, rest = value.partition(".")
    issued, _, rest = rest.partition(".")
    nonce, _, mac = rest.partition(".")
    if version != "v1" or not issued.isdigit() or not nonce or not mac:
        return None
    if not hmac.compare_digest(mac.encode(), _mac(admin_token, f"v1.{issued}.{nonce}").encode()):
        return None
    age = (time.time() if now is None else now) - int(issued)
    if not -60 <= age <= SESSION_MAX_AGE_S:
        return None
    return Session(int(issued), nonce)


def csrf_ok(request: web.Request, presented: str | None) -> bool:
    """True for a form carrying this session's CSRF token (or a bearer request: no cookie)."""
    session = request.get(SESSION)
    if session is None:
        return True
    expected = session.csrf_token(request.app[ADMIN_TOKEN])
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def safe_next(raw: str | None) -> str:
    """A local path to go back to after sign-in; anything else becomes ``/``."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    return raw


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_public(request.path):
        return await handler(request)
    admin_token = request.app[ADMIN_TOKEN]
    presented = bearer(request)
    if presented is not None and token_matches(presented, admin_token):
        request[SESSION] = None
        return await handler(request)
    if not request.path.startswith("/api/"):
        cookie = request.cookies.get(SESSION_COOKIE)
        session = None if cookie is None else read_session_cookie(cookie, admin_token)
        if session is not None:
            request[SESSION] = session
            return await handler(request)
        raise web.HTTPSeeOther("/login?next=" + quote(request.path_qs, safe="/"))
    raise Unauthorized(
        "unauthorized", "a valid admin token is required (Authorization: Bearer ...)"
    )
