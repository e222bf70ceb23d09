"""Copy as curl: a captured request, replayed by the real curl in a real shell,
sends exactly the captured bytes and never anything curl would read from a file."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor.web.views import present

SECRET = "contents of a local file that must never leave this machine"


def captured(body: bytes, headers: list[list[str]], *, text: bool = True) -> dict[str, Any]:
    """A hit as the API and the hit page see it (``hit.row_to_json``)."""
    hit: dict[str, Any] = {
        "method": "POST",
        "path": "/p/tok",
        "query_string": "click_id=@x&next=-K",
        "headers": headers,
        "params": [],
        "body_params": [],
        "content_type": "text/plain",
    }
    if text:
        hit["body_text"] = body.decode()
    else:
        hit["body_base64"] = base64.b64encode(body).decode()
    return hit


async def replay(cmd: str, cwd: Path) -> None:
    proc = await asyncio.create_subprocess_shell(
        cmd + " --silent --show-error --fail", cwd=cwd, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, (cmd, err)


async def test_copied_curl_sends_the_captured_bytes_and_no_file(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.path_qs, dict(request.headers), await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    headers = [
        ["X-Note", f"@{secret}"],  # a value may start with @: it is no -H argument alone
        [f"@{secret}", "x"],  # a name that is no HTTP token: -H @file would read the file
        ["X-Split", "a\r\nX-Injected: 1"],
        ["X-Empty", ""],
    ]
    bodies = [
        (f"@{secret}".encode(), True),
        (b"@secret.txt", True),  # relative to where the user runs it
        (b"-d @secret.txt\r\nline two\n", True),
        (b"text with a \x00 NUL", True),
        (b"\x00\xff@secret.txt", False),
    ]
    for body, text in bodies:
        seen.clear()
        await replay(present.curl_command(base, captured(body, headers, text=text)), tmp_path)
        [(path_qs, got_headers, got_body)] = seen
        assert got_body == body
        assert path_qs == "/p/tok?click_id=@x&next=-K"
        assert got_headers["X-Note"] == f"@{secret}"
        assert got_headers["X-Empty"] == ""
        assert "X-Injected" not in got_headers
        assert SECRET not in repr(seen)
