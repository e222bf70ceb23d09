"""What a notification looks like on each kind of channel: pure, no I/O.

HTTP kinds become a ``Rendered`` request (method, URL, headers, body); e-mail
becomes an ``EmailMessage``. The webhook is signed as the Standard Webhooks spec
says (https://www.standardwebhooks.com): ``webhook-id`` stays the same on every
attempt of one notification, so receivers can drop duplicates, while the timestamp
and signature are made afresh per attempt.

Text that came from users (an endpoint's name) is escaped where the far end reads
markup (Slack's ``& < >``) and kept from pinging anyone on Discord
(``allowed_mentions``); e-mail headers get no line breaks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from monitor.model.notification import Notification
from monitor.rules.channels import TELEGRAM_API, secret_bytes

ALERT_TYPE = "postback_monitor.alert"
TEST_TYPE = "postback_monitor.test"
SUBJECT_PREFIX = "[Postback Monitor]"
DISCORD_MAX_CHARS = 2000
TELEGRAM_MAX_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Rendered:
    """One HTTP request to a channel's far end."""

    url: str
    headers: list[tuple[str, str]]
    body: bytes
    method: str = "POST"


def text(n: Notification) -> str:
    """The message in plain words: headline, sentence, link."""
    return f"{n.headline}\n{n.sentence}\n{n.link}"


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


JSON_HEADERS = [("Content-Type", "application/json")]


def webhook_payload(n: Notification) -> dict[str, Any]:
    return {
        "type": TEST_TYPE if n.is_test else ALERT_TYPE,
        "timestamp": n.occurred_at.isoformat(),
        "data": {
            "endpoint_id": n.endpoint_id,
            "endpoint_name": n.endpoint_name,
            "condition": n.condition,
            "state": n.state,
            "message": n.sentence,
            "link": n.link,
            "occurred_at": n.occurred_at.isoformat(),
        },
    }


def sign(secret: str, message_id: str, timestamp_s: int, body: bytes) -> str:
    """``v1,`` and base64 of HMAC-SHA256 over ``id.timestamp.body`` (Standard Webhooks)."""
    signed = f"{message_id}.{timestamp_s}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook(config: dict[str, Any], n: Notification, message_id: str, now_s: int) -> Rendered:
    body = _json(webhook_payload(n))
    headers = [
        *JSON_HEADERS,
        ("webhook-id", message_id),
        ("webhook-timestamp", str(now_s)),
        ("webhook-signature", sign(config["secret"], message_id, now_s, body)),
    ]
    return Rendered(config["url"], headers, body)


def slack_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(config: dict[str, Any], n: Notification, message_id: str, now_s: int) -> Rendered:
    headline = slack_escape(n.headline)
    line = f"*{headline}*\n{slack_escape(n.sentence)}\n<{n.link}|Open in Postback Monitor>"
    return Rendered(config["webhook_url"], JSON_HEADERS, _json({"text": line}))


def discord(config: dict[str, Any], n: Notification, message_id: str, now_s: int) -> Rendered:
    # Names are the users'; "@everyone" in one must not ping a whole server.
    doc = {"content": text(n)[:DISCORD_MAX_CHARS], "allowed_mentions": {"parse": []}}
    return Rendered(config["webhook_url"], JSON_HEADERS, _json(doc))


def telegram_url(config: dict[str, Any]) -> str:
    return f"{config.get('api_base', TELEGRAM_API)}/bot{config['bot_token']}/sendMessage"


def telegram(config: dict[str, Any], n: Notification, message_id: str, now_s: int) -> Rendered:
    # Plain text (no parse_mode): nothing in a name can break the message's markup.
    doc = {
        "chat_id": config["chat_id"],
        "text": text(n)[:TELEGRAM_MAX_CHARS],
        "disable_web_page_preview": True,
    }
    return Rendered(telegram_url(config), JSON_HEADERS, _json(doc))


HTTP_KINDS = {"webhook": webhook, "slack": slack, "discord": discord, "telegram": telegram}


def one_line(value: str) -> str:
    return " ".join(value.split())


def email(config: dict[str, Any], n: Notification, message_id: str) -> EmailMessage:
    """A plain-text message with the headline as its subject."""
    msg = EmailMessage()
    msg["Subject"] = one_line(f"{SUBJECT_PREFIX} {n.headline}")[:250]
    msg["From"] = config["from"]
    msg["To"] = ", ".join(config["to"])
    msg["Date"] = format_datetime(n.occurred_at)
    msg["Message-ID"] = make_msgid(idstring=message_id, domain="postback-monitor")
    msg.set_content(
        f"{n.headline}\n\n{n.sentence}\n\nEndpoint: {n.endpoint_name}\n"
        f"Condition: {n.condition}\nState: {n.state}\n"
        f"When: {n.occurred_at.isoformat()}\n\n{n.link}\n"
    )
    return msg
