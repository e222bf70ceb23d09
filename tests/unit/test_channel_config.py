"""Channel configs: what each kind needs, unknown keys named, secrets made and masked
(monitor/rules/channels.py), and the Standard Webhooks signature (notifying/render.py)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from monitor.model.errors import InvalidInput
from monitor.model.notification import Notification
from monitor.notifying import render
from monitor.rules.channels import (
    ChannelFields,
    masked,
    secret_bytes,
    validate_new,
    validate_patch,
)

TOKEN = "123456:AAbbCCddEEffGGhhIIjjKKllMM"
EMAIL: dict[str, Any] = {
    "to": ["ops@example.com"],
    "from": "pbm@example.com",
    "host": "smtp.example.com",
    "port": 587,
    "username": "pbm",
    "password": "hunter2-smtp",
}


def refused(doc: Any) -> str:
    with pytest.raises(InvalidInput) as caught:
        validate_new(doc)
    return caught.value.message


def test_each_kind_takes_its_keys() -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("webhook", {"url": "https://example.com/hook"}),
        ("slack", {"webhook_url": "https://hooks.slack.com/services/T/B/x"}),
        ("discord", {"webhook_url": "https://discord.com/api/webhooks/1/abc"}),
        ("telegram", {"bot_token": TOKEN, "chat_id": -100123}),
        ("email", EMAIL),
    ]
    for kind, config in cases:
        fields = validate_new({"name": f"  {kind} ", "kind": kind, "config": config})
        assert fields.name == kind and fields.kind == kind
    telegram = validate_new({"name": "t", "kind": "telegram", "config": cases[3][1]})
    assert telegram.config["chat_id"] == "-100123"


def test_unknown_and_missing_keys_are_named() -> None:
    message = refused(
        {
            "name": "s",
            "kind": "slack",
            "config": {"webhook_url": "https://x.io/a", "channel": "#ops", "icon": 1},
        }
    )
    assert "unknown key(s) for a slack channel: channel, icon" in message
    assert "needs chat_id" in refused(
        {"name": "t", "kind": "telegram", "config": {"bot_token": TOKEN}}
    )
    assert "kind: one of" in refused({"name": "x", "kind": "pager", "config": {}})
    assert "unknown field(s): extra" in refused(
        {"name": "x", "kind": "slack", "config": {}, "extra": 1}
    )
    assert "config.url" in refused({"name": "w", "kind": "webhook", "config": {"url": "ftp://x"}})
    assert "config.secret" in refused(
        {"name": "w", "kind": "webhook", "config": {"url": "https://x.io", "secret": "nope"}}
    )
    assert "config.password" in refused(
        {"name": "e", "kind": "email", "config": {**EMAIL, "password": ""}}
    )
    no_password = {k: v for k, v in EMAIL.items() if k != "password"}
    assert "together" in refused({"name": "e", "kind": "email", "config": no_password})
    assert "not both" in refused(
        {"name": "e", "kind": "email", "config": {**EMAIL, "tls": True, "starttls": True}}
    )
    assert "config.port" in refused({"name": "e", "kind": "email", "config": {**EMAIL, "port": 0}})


def test_a_webhook_secret_is_made_when_absent_and_masked_when_shown() -> None:
    fields = validate_new({"name": "w", "kind": "webhook", "config": {"url": "https://x.io/h"}})
    assert fields.new_secret is not None and fields.new_secret.startswith("whsec_")
    assert len(secret_bytes(fields.new_secret)) == 32
    assert fields.config["secret"] == fields.new_secret
    assert masked("webhook", fields.config) == {"url": "https://x.io/h", "secret": "set"}
    given = "whsec_" + base64.b64encode(b"k" * 32).decode()
    kept = validate_new(
        {"name": "w", "kind": "webhook", "config": {"url": "https://x.io", "secret": given}}
    )
    assert kept.new_secret is None and kept.config["secret"] == given


def test_masking_hides_tokens_passwords_and_chat_webhook_paths() -> None:
    assert masked("telegram", {"bot_token": TOKEN, "chat_id": "1"})["bot_token"] == "set"
    assert masked("email", EMAIL)["password"] == "set"
    shown = masked("slack", {"webhook_url": "https://hooks.slack.com/services/T/B/secretpart"})
    assert shown == {"webhook_url": "https://hooks.slack.com/…"}


def test_patch_merges_keeps_masked_secrets_and_refuses_a_new_kind() -> None:
    current = ChannelFields(
        "mail", "email", validate_new({"name": "m", "kind": "email", "config": EMAIL}).config
    )
    changed = validate_patch(
        current, {"name": "ops mail", "config": {"port": 465, "password": "set", "tls": True}}
    )
    assert changed.name == "ops mail"
    assert changed.config["port"] == 465 and changed.config["tls"] is True
    assert changed.config["password"] == "hunter2-smtp"
    with pytest.raises(InvalidInput, match="cannot change"):
        validate_patch(current, {"kind": "slack"})
    with pytest.raises(InvalidInput, match="together"):
        validate_patch(current, {"config": {"username": None}})
    with pytest.raises(InvalidInput, match="unknown key"):
        validate_patch(current, {"config": {"bcc": "x@y.z"}})


def test_the_webhook_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    n = Notification(
        7,
        "Binom main",
        "silence",
        "firing",
        "No postbacks for 2 h.",
        "http://pbm.test/endpoints/7",
        datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
    )
    now_s = int(datetime.now(UTC).timestamp())
    req = render.webhook({"url": "https://x.io", "secret": secret}, n, "msg_1", now_s)
    headers = dict(req.headers)
    payload = Webhook(secret).verify(req.body, headers)
    assert payload["type"] == "postback_monitor.alert"
    assert payload["data"]["endpoint_id"] == 7 and payload["data"]["state"] == "firing"
    tampered = req.body.replace(b"firing", b"resolv")
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        Webhook(secret).verify(tampered, headers)


def test_a_notification_needs_a_known_state() -> None:
    with pytest.raises(ValueError, match="state"):
        Notification(1, "x", "silence", "burning", "s", "l", datetime.now(UTC))
