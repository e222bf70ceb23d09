"""The admin token: where it comes from, and the middleware that demands it.

Everything except health, metrics, sign-in, static files and share links' read-only
views (``/s/``, checked by ``views.shared``) needs the token, as
``Authorization: Bearer <token>``. Comparison is constant-time.

Web pages also accept a session cookie, made at sign-in: a random id standing for a
row in ``web_sessions`` (``monitor.web.sessions``), looked up on every page request, so
signing out, expiry and changing the admin token end a session at once in every
process. The JSON API under ``/api/`` stays bearer-only. A page request without
either is redirected to ``/login``. Every state-changing form carries a CSRF token
bound to the session.

Scoped API tokens (``api_tokens``, sql/007_tokens.sql) are accepted as bearer tokens
and at sign-in; their requests go through the rule table (``access.check``): a scope
too low is 403, an endpoint outside the token's list 404. A session remembers the
token it was made with and has that token's rights, no more.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg
import structlog
from aiohttp import web
from yarl import URL

from monitor.model import ids
from monitor.model.paths import CAPTURE_PREFIX, HEALTHZ, READYZ, SHARE_PREFIX
from monitor.web import access, api_tokens, sessions
from monitor.web.appkeys import ADMIN_TOKEN, POOL
from monitor.web.errors import Handler, Unauthorized
from monitor.web.inputs import is_text
from monitor.web.scopes import ACCESS, ADMIN, Access

log = structlog.get_logger(__name__)

TOKEN_FILE = "admin_token"
# Capture has its own listener; a postback sent here by mistake gets 404, not 401.
# A share link's view is its own credential: its handlers check the token in the path.
PUBLIC_PREFIXES = (CAPTURE_PREFIX, SHARE_PREFIX, "/static/")
# Browsers ask for /favicon.ico on their own, signed in or not.
PUBLIC_PATHS = frozenset({HEALTHZ, READYZ, "/metrics", "/login", "/favicon.ico"})
SESSION_COOKIE = "pbm_session"
# A session ends this long after sign-in, or at sign-out, whichever comes first.
SESSION_MAX_AGE_S = 7 * 24 * 3600
# What a session cookie can look like (sessions.SESSION_ID_BYTES, URL-safe base64).
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")
SESSION_KEY_LABEL = b"postback-monitor session v1"
MAX_NEXT_CHARS = 2048
# The API's description, which a signed-in browser reads too (the interactive docs,
# ``api.docs``, and the document they load): GET only, and nothing else under /api/.
SESSION_READABLE_API = frozenset({"/api/openapi.json", "/api/docs"})
SESSION_READABLE_API_PREFIX = "/api/docs/assets/"


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


def announce_admin_token(token: str, data_dir: Path, management_url: str, capture_url: str) -> None:
    """Print a newly made token once, on the terminal that started the service; never logged."""
    print(
        f"Postback Monitor admin token (kept in {data_dir}/{TOKEN_FILE}):\n"
        f"  {token}\nWeb address: {management_url}/\n"
        f"Capture URLs: {capture_url}{CAPTURE_PREFIX}<token> (each endpoint shows its own)",
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


def session_may_read(request: web.Request) -> bool:
    """Pages, and the API's description: what a signed-in browser may load."""
    if not request.path.startswith("/api/"):
        return True
    return request.method in ("GET", "HEAD") and (
        request.path in SESSION_READABLE_API or request.path.startswith(SESSION_READABLE_API_PREFIX)
    )


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: its stored session, which its CSRF token is bound to."""

    id_hash: bytes
    access: Access = ADMIN

    def csrf_token(self, admin_token: str) -> str:
        return _mac(admin_token, b"csrf." + self.id_hash)


# The signed-in session of a request (None when it came with a bearer token); kept
# beside Session rather than in appkeys, which imports no web component.
SESSION: web.RequestKey[Session | None] = web.RequestKey("session")


def _mac(admin_token: str, message: bytes) -> str:
    key = hmac.new(admin_token.encode(), SESSION_KEY_LABEL, hashlib.sha256).digest()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_tag(admin_token: str) -> bytes:
    """Which admin token a stored session was made under (keyed: the token is not kept)."""
    return _mac(admin_token, b"session tag").encode()


async def start_session(
    pool: asyncpg.Pool, admin_token: str, api_token_id: int | None = None
) -> str:
    """A new session (of the scoped token ``api_token_id``, or of the admin token);
    returns the cookie value that stands for it."""
    return await sessions.create(pool, token_tag(admin_token), SESSION_MAX_AGE_S, api_token_id)


async def current_session(pool: asyncpg.Pool, cookie: str, admin_token: str) -> Session | None:
    """The live session a cookie stands for; None if unknown, ended, expired or made
    under another admin token."""
    if not SESSION_ID.fullmatch(cookie):
        return None
    stored = await sessions.touch(pool, cookie, token_tag(admin_token))
    if stored is None:
        return None
    if stored.api_token_id is None:
        return Session(stored.id_hash)
    token = await api_tokens.live(pool, stored.api_token_id)
    return None if token is None else Session(stored.id_hash, token.access())


async def end_session(pool: asyncpg.Pool, cookie: str | None) -> None:
    if cookie is not None and SESSION_ID.fullmatch(cookie):
        await sessions.end(pool, cookie)


def csrf_ok(request: web.Request, presented: str | None) -> bool:
    """True for a form carrying this session's CSRF token (or a bearer request: no cookie)."""
    session = request.get(SESSION)
    if session is None:
        return True
    expected = session.csrf_token(request.app[ADMIN_TOKEN])
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def safe_next(raw: str | None) -> str:
    """A path on this site to go back to after sign-in; anything else becomes ``/``.

    Judged as it is sent and as browsers read it: yarl and browsers drop tabs and
    newlines (slash, tab, slash is ``//``: another host) and browsers read a backslash
    as ``/``, so any control character or backslash refuses the value, and what goes
    into ``Location`` must still start with exactly one ``/``."""
    if not raw or len(raw) > MAX_NEXT_CHARS or not is_text(raw):
        return "/"
    if "\\" in raw or any(map(_is_control, raw)):
        return "/"
    sent = str(URL(raw))
    if not sent.startswith("/") or sent.startswith("//"):
        return "/"
    return sent


def _is_control(ch: str) -> bool:
    return ch < " " or "\x7f" <= ch <= "\x9f"


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_public(request.path):
        return await handler(request)
    admin_token = request.app[ADMIN_TOKEN]
    presented = bearer(request)
    if presented is not None and token_matches(presented, admin_token):
        request[SESSION] = None
        request[ACCESS] = ADMIN
        return await handler(request)
    if presented is not None and api_tokens.looks_like_token(presented):
        token = await api_tokens.authenticate(request.app[POOL], presented)
        if token is not None:
            request[SESSION] = None
            request[ACCESS] = token.access()
            await access.check(request, request[ACCESS])
            return await handler(request)
    if session_may_read(request):
        cookie = request.cookies.get(SESSION_COOKIE, "")
        session = await current_session(request.app[POOL], cookie, admin_token)
        if session is not None:
            request[SESSION] = session
            request[ACCESS] = session.access
            if session.access.token_id is not None:
                await access.check(request, session.access)
            return await handler(request)
        if not request.path.startswith("/api/") or request.path == "/api/docs":
            raise web.HTTPSeeOther("/login?next=" + quote(request.path_qs, safe="/"))
    raise Unauthorized(
        "unauthorized", "a valid admin token is required (Authorization: Bearer ...)"
    )
