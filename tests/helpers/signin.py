"""Signing a test client in to the web views, as a browser would."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from tests.helpers.auth import ADMIN_TOKEN


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def sign_in(
    client: TestClient, next_path: str = "/endpoints", token: str = ADMIN_TOKEN
) -> str:
    """Sign the client's cookie jar in (with the admin token, or a scoped API token);
    returns the session's CSRF token."""
    page = await (await client.get("/login")).text()
    nonce = re.search(r'name="nonce" value="([^"]+)"', page)
    assert nonce
    resp = await client.post(
        "/login",
        data={"token": token, "nonce": nonce.group(1), "next": next_path},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == next_path
    return csrf_of(await (await client.get(next_path)).text())
