"""Sign-in and sign-out that mean it (issue #12, items 12 and 13).

Sessions live in the database: sign-out, expiry and a new admin token end them at
once, in every process (here: two apps on one database, as two workers would be).
After sign-in, only a path on this site is followed, as the browser would read it.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from monitor.config import Config
from monitor.server.app import create_app
from monitor.web.auth import token_tag
from tests.conftest import ADMIN_TOKEN
from tests.helpers.signin import sign_in

COOKIE = "pbm_session"


def nonce_of(login_page: str) -> str:
    return login_page.split('name="nonce" value="', 1)[1].split('"', 1)[0]


def other_worker(config: Config, name: str, **changes: Any) -> Any:
    """Another process's app on the same database (its own data directory)."""
    return create_app(config.replace(data_dir=config.data_dir.parent / name, **changes))


def session_cookie(client: TestClient) -> str:
    [value] = [c.value for c in client.session.cookie_jar if c.key == COOKIE]
    return value


async def is_signed_in(client: TestClient, cookie: str) -> bool:
    """Whether a page loads with this session cookie (and no other) in the client's jar."""
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({COOKIE: cookie})
    resp = await client.get("/endpoints", allow_redirects=False)
    assert resp.status in (200, 303)
    return resp.status == 200


async def test_sign_out_ends_the_session_in_every_process(
    client: TestClient, aiohttp_client: Any, config: Config, db: asyncpg.Connection
) -> None:
    worker = await aiohttp_client(other_worker(config, "worker2"))
    csrf = await sign_in(client)
    cookie = session_cookie(client)
    # A CSRF token is good for its own session only.
    await sign_in(worker)
    resp = await worker.post("/endpoints", data={"name": "x", "csrf": csrf}, allow_redirects=False)
    assert resp.status == 403
    assert await is_signed_in(worker, cookie)

    resp = await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303

    # The old cookie, replayed: no page, and no endpoint made with it.
    for app_client in (client, worker):
        assert not await is_signed_in(app_client, cookie)
        resp = await app_client.post(
            "/endpoints", data={"name": "after sign-out", "csrf": csrf}, allow_redirects=False
        )
        assert resp.status == 303
        assert resp.headers["Location"].startswith("/login")
    assert await db.fetchval("SELECT count(*) FROM endpoints") == 0


async def test_a_new_admin_token_ends_every_session(
    client: TestClient, aiohttp_client: Any, config: Config, db: asyncpg.Connection
) -> None:
    await sign_in(client)
    cookie = session_cookie(client)
    new_token = "rotated-" + "t" * 20
    rotated = await aiohttp_client(other_worker(config, "rotated", admin_token=new_token))
    assert not await is_signed_in(rotated, cookie)
    assert not await is_signed_in(client, "x" * 43)  # a made-up id is no session either
    # Signing in with the new token prunes every session of the old one.
    page = await (await rotated.get("/login")).text()
    resp = await rotated.post(
        "/login", data={"token": new_token, "nonce": nonce_of(page)}, allow_redirects=False
    )
    assert resp.status == 303
    others = "SELECT count(*) FROM web_sessions WHERE token_tag <> $1"
    assert await db.fetchval(others, token_tag(new_token)) == 0
    assert not await is_signed_in(client, cookie)


async def test_an_expired_session_is_refused_and_pruned(
    client: TestClient, db: asyncpg.Connection
) -> None:
    await sign_in(client)
    cookie = session_cookie(client)
    assert await is_signed_in(client, cookie)
    await db.execute("UPDATE web_sessions SET expires_at = now() - interval '1 second'")
    assert not await is_signed_in(client, cookie)
    await sign_in(client)
    assert await db.fetchval("SELECT count(*) FROM web_sessions WHERE expires_at <= now()") == 0


# Each is another host, or a scheme, once yarl and a browser have read it (tabs and
# newlines dropped, a backslash read as a slash).
OFF_SITE = [
    "/\t/evil.example/x",
    "/\n/evil.example/x",
    "/\r\n/evil.example/x",
    "\t//evil.example/x",
    "/\\evil.example/x",
    "/\t\\evil.example/x",
    "//evil.example/x",
    "https://evil.example/x",
    "javascript:alert(1)",
    "/" + "a" * 5000,
]


async def test_sign_in_goes_back_only_to_a_path_on_this_site(client: TestClient) -> None:
    for next_path in [*OFF_SITE, "/endpoints?flag=any"]:
        page = await (await client.get("/login")).text()
        resp = await client.post(
            "/login",
            data={"token": ADMIN_TOKEN, "nonce": nonce_of(page), "next": next_path},
            allow_redirects=False,
        )
        assert resp.status == 303
        expected = next_path if next_path == "/endpoints?flag=any" else "/"
        assert resp.headers["Location"] == expected, repr(next_path)
