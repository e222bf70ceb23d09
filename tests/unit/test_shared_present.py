"""What a share link shows of a hit: ``shared_present.shared_hit`` takes out the
capture token, the shared secret (param, header, and anywhere else) and credential
headers, and leaves the rest as it was."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from monitor.storage.endpoints import Endpoint
from monitor.web.views import present
from monitor.web.views.shared_present import HIDDEN, shared_hit

TOKEN = "tok_CURRENT_1234567890"
OLD_TOKEN = "tok_OLD_before_rotation"
SECRET = "p@ss word"


def endpoint(secret: dict[str, str] | None) -> Endpoint:
    now = datetime.now(UTC)
    return Endpoint.from_row(
        {
            "id": 1, "token": TOKEN, "name": "e", "description": "", "response_status": 200,
            "response_body": "OK", "response_content_type": "text/plain",
            "settings": {"secret": secret} if secret else {}, "created_at": now, "updated_at": now,
        }
    )  # fmt: skip


def hit(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "01a21e1a-3c60-7162-9b4e-7e23e8b23fc2",
        "endpoint_id": 1,
        "received_at": "2026-11-27T17:00:00+00:00",
        "method": "POST",
        "path": f"/p/{OLD_TOKEN}/extra",
        "query_string": "sig=p%40ss+word&cid=1",
        "params": [["sig", SECRET], ["cid", "1"]],
        "body_params": [],
        "headers": [
            ["Authorization", "Bearer abc"], ["cookie", "a=b"], ["X-Sig", SECRET],
            ["X-Forwarded-Uri", f"/p/{TOKEN}/x"], ["User-Agent", "ua"],
        ],
        "content_type": "text/plain",
        "body_size": 0,
        "remote_ip": "192.0.2.1",
        "user_agent": "ua",
        "click_id": "1",
        "event": None,
        "flags": [],
    }  # fmt: skip
    return {**doc, **changes}


def test_the_secret_param_tokens_and_credential_headers_are_hidden() -> None:
    body = f"token={TOKEN}&note={SECRET}"
    shown = shared_hit(
        endpoint({"value": SECRET, "param": "sig"}),
        hit(body_text=body, body_size=len(body.encode())),
    )
    assert shown["path"] == "/extra"
    assert shown["params"] == [["sig", HIDDEN], ["cid", "1"]]
    assert shown["query_string"] == f"sig={HIDDEN}&cid=1"
    names = [n for n, _ in shown["headers"]]
    assert names == ["X-Sig", "X-Forwarded-Uri", "User-Agent"]
    assert ["X-Forwarded-Uri", f"/p/{HIDDEN}/x"] in shown["headers"]
    assert ["X-Sig", HIDDEN] in shown["headers"]
    assert shown["body_text"] == f"token={HIDDEN}&note={HIDDEN}"
    assert not present.body_view(shown)["cut"]  # a whole body stays whole
    text = repr(shown)
    assert TOKEN not in text and OLD_TOKEN not in text and SECRET not in text


def test_a_secret_header_is_dropped_and_a_binary_body_cleaned() -> None:
    raw = b"\x00\x01" + TOKEN.encode() + b"\xff"
    shown = shared_hit(
        endpoint({"value": "hdr-secret-1", "header": "x-sig"}),
        hit(body_base64=base64.b64encode(raw).decode(), body_size=len(raw), params=[]),
    )
    assert "X-Sig" not in [n for n, _ in shown["headers"]]
    assert base64.b64decode(shown["body_base64"]) == b"\x00\x01" + HIDDEN.encode() + b"\xff"
    assert shown["body_size"] == len(HIDDEN) + 3


def test_without_a_secret_only_tokens_and_credentials_go() -> None:
    shown = shared_hit(endpoint(None), hit(body_text="", params=[["sig", SECRET]]))
    assert shown["params"] == [["sig", SECRET]]
    assert shown["remote_ip"] == "192.0.2.1" and shown["click_id"] == "1"
    assert "Authorization" not in [n for n, _ in shown["headers"]]
