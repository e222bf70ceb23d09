"""The live stream across real `serve` processes: a hit captured by one reaches
viewers on another (LISTEN/NOTIFY), and open streams never hold up a graceful stop.
(The live stream in one app: tests/integration/test_views.py.)"""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

from tests.conftest import AUTH, capture_path
from tests.helpers.server import ServerProcess


def test_live_streams_across_processes_and_shutdown(tmp_path: Path, pg_url: str) -> None:
    """A hit captured by one server process reaches viewers on another (LISTEN/NOTIFY),
    and open streams do not hold up a graceful stop."""
    capturing = ServerProcess(tmp_path / "a", database_url=pg_url).start()
    viewing = ServerProcess(tmp_path / "b", database_url=pg_url).start()
    conns: list[http.client.HTTPConnection] = []

    def connect(server: ServerProcess, port: int | None = None) -> http.client.HTTPConnection:
        conns.append(http.client.HTTPConnection("127.0.0.1", port or server.port, timeout=20))
        return conns[-1]

    try:
        create = connect(capturing)
        create.request("POST", "/api/endpoints", body=b'{"name": "live"}', headers=AUTH)
        endpoint = json.loads(create.getresponse().read())
        streams = []
        for _ in range(3):
            conn = connect(viewing)
            conn.request("GET", f"/endpoints/{endpoint['id']}/live", headers=AUTH)
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.readline().startswith(b"retry:")
            streams.append(resp)
        fire = connect(capturing, capturing.capture_port)
        fire.request("GET", capture_path(endpoint) + "?click_id=x")
        assert fire.getresponse().status == 200
        for resp in streams:
            while (line := resp.readline()) != b"event: hits\n":
                assert line, "stream ended before the hit was announced"

        started = time.monotonic()
        assert viewing.stop() == 0
        # SHUTDOWN_TIMEOUT_S is 30: streams must be ended, not waited out.
        assert time.monotonic() - started < 10
        for resp in streams:
            resp.read()  # the server ended the stream
    finally:
        for conn in conns:
            conn.close()
        viewing.kill()
        capturing.stop()
