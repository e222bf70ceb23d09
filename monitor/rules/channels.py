"""Notification channels' settings: what each kind needs, checked before it is stored.

Pure: the API, the pages and the store call it with the caller's document and get
the config to keep, or ``InvalidInput`` naming the key that is wrong (unknown keys
are named too, as endpoint settings do). Secrets (a webhook's signing secret, a
Telegram bot token, an SMTP password, and the Slack and Discord webhook URLs, which
are their own credentials) are only ever shown masked (``masked``).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from typing import Any

from yarl import URL

from monitor.model.errors import InvalidInput
from monitor.model.notification import CHANNEL_KINDS

KINDS = CHANNEL_KINDS
MAX_NAME_CHARS = 200
MAX_URL_CHARS = 2048
MAX_RECIPIENTS = 20
TELEGRAM_API = "https://api.telegram.org"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MASK = "set"
# Which keys each kind takes; the first set is required.
REQUIRED: dict[str, frozenset[str]] = {
    "webhook": frozenset({"url"}),
    "slack": frozenset({"webhook_url"}),
    "discord": frozenset({"webhook_url"}),
    "telegram": frozenset({"bot_token", "chat_id"}),
    "email": frozenset({"to", "from", "host", "port"}),
}
OPTIONAL: dict[str, frozenset[str]] = {
    "webhook": frozenset({"secret"}),
    "slack": frozenset(),
    "discord": frozenset(),
    "telegram": frozenset({"api_base"}),
    "email": frozenset({"username", "password", "starttls", "tls"}),
}
# Values shown as "set" (or as the URL's origin) and never logged.
SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "webhook": ("secret",),
    "slack": ("webhook_url",),
    "discord": ("webhook_url",),
    "telegram": ("bot_token",),
    "email": ("password",),
}
BOT_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}")
CHAT_ID = re.compile(r"-?[0-9]{1,20}|@[A-Za-z0-9_]{4,64}")
ADDRESS = re.compile(r"[^@\s<>,;\"]{1,64}@[A-Za-z0-9.-]{1,253}")
HOST = re.compile(r"[A-Za-z0-9.:\[\]-]{1,253}")


@dataclass(frozen=True, slots=True)
class ChannelFields:
    """A checked channel: its name, kind and config; ``new_secret`` is a signing secret
    made now (shown once, in the answer that made it)."""

    name: str
    kind: str
    config: dict[str, Any]
    new_secret: str | None = None


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for (the base64 after the prefix)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def check_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_CHARS:
        raise InvalidInput("invalid_field", f"name: 1 to {MAX_NAME_CHARS} characters")
    return value.strip()


def check_kind(value: Any) -> str:
    if value not in KINDS:
        raise InvalidInput("invalid_field", f"kind: one of {', '.join(KINDS)}")
    return str(value)


def validate_new(doc: Any) -> ChannelFields:
    """A channel to create from ``{"name", "kind", "config"}``."""
    if not isinstance(doc, dict):
        raise InvalidInput("invalid_body", "request body: a JSON object")
    unknown = set(doc) - {"name", "kind", "config"}
    if unknown:
        raise InvalidInput("invalid_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    kind = check_kind(doc.get("kind"))
    config, new_secret = check_config(kind, doc.get("config"))
    return ChannelFields(check_name(doc.get("name")), kind, config, new_secret)


def validate_patch(current: ChannelFields, doc: Any) -> ChannelFields:
    """A stored channel changed by ``{"name"?, "config"?}``: the config's keys given
    replace theirs, a null removes an optional one, and a masked value (``"set"``)
    keeps what is stored. The kind cannot change."""
    if not isinstance(doc, dict):
        raise InvalidInput("invalid_body", "request body: a JSON object")
    unknown = set(doc) - {"name", "kind", "config"}
    if unknown:
        raise InvalidInput("invalid_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    if "kind" in doc and doc["kind"] != current.kind:
        raise InvalidInput("invalid_field", "kind: cannot change; make a new channel")
    name = check_name(doc["name"]) if "name" in doc else current.name
    config = dict(current.config)
    if "config" in doc:
        patch = doc["config"]
        if not isinstance(patch, dict):
            raise InvalidInput("invalid_field", "config: a JSON object")
        for key, value in patch.items():
            if value is None:
                config.pop(key, None)
            elif not (value == MASK and key in SECRET_KEYS[current.kind] and key in config):
                config[key] = value
    checked, new_secret = check_config(current.kind, config)
    return ChannelFields(name, current.kind, checked, new_secret)


def check_config(kind: str, config: Any) -> tuple[dict[str, Any], str | None]:
    """The config to store for ``kind`` and a signing secret made for it, if any."""
    if not isinstance(config, dict):
        raise InvalidInput("invalid_field", "config: a JSON object")
    unknown = set(config) - REQUIRED[kind] - OPTIONAL[kind]
    if unknown:
        raise InvalidInput(
            "invalid_field",
            f"config: unknown key(s) for a {kind} channel: {', '.join(sorted(unknown))[:300]}",
        )
    missing = REQUIRED[kind] - set(config)
    if missing:
        raise InvalidInput(
            "invalid_field", f"config: a {kind} channel needs {', '.join(sorted(missing))}"
        )
    return CHECKS[kind](config)


def _url(config: dict[str, Any], key: str) -> str:
    value = config[key]
    problem = f"config.{key}: an http or https URL of at most {MAX_URL_CHARS} characters"
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_URL_CHARS:
        raise InvalidInput("invalid_field", problem)
    try:
        url = URL(value.strip())
    except (ValueError, TypeError, UnicodeError):
        raise InvalidInput("invalid_field", problem) from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise InvalidInput("invalid_field", problem)
    return value.strip()


def _webhook(config: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    url = _url(config, "url")
    secret = config.get("secret")
    if secret is None:
        made = new_webhook_secret()
        return {"url": url, "secret": made}, made
    problem = "config.secret: whsec_ followed by base64 of 24 to 64 random bytes"
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidInput("invalid_field", problem)
    try:
        key = secret_bytes(secret)
    except (binascii.Error, ValueError):
        raise InvalidInput("invalid_field", problem) from None
    if not 24 <= len(key) <= 64:
        raise InvalidInput("invalid_field", problem)
    return {"url": url, "secret": secret}, None


def _chat_webhook(config: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    return {"webhook_url": _url(config, "webhook_url")}, None


def _telegram(config: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    token = config["bot_token"]
    if not isinstance(token, str) or not BOT_TOKEN.fullmatch(token):
        raise InvalidInput("invalid_field", "config.bot_token: the token @BotFather gave")
    chat = config["chat_id"]
    if isinstance(chat, int) and not isinstance(chat, bool):
        chat = str(chat)
    if not isinstance(chat, str) or not CHAT_ID.fullmatch(chat):
        raise InvalidInput("invalid_field", "config.chat_id: a chat's number or @channelname")
    out: dict[str, Any] = {"bot_token": token, "chat_id": chat}
    if "api_base" in config:
        out["api_base"] = _url(config, "api_base").rstrip("/")
    return out, None


def _address(value: Any, key: str) -> str:
    if not isinstance(value, str) or not ADDRESS.fullmatch(value.strip()):
        raise InvalidInput("invalid_field", f"{key}: an e-mail address such as ops@example.com")
    return value.strip()


def _email(config: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    to = config["to"]
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not 1 <= len(to) <= MAX_RECIPIENTS:
        raise InvalidInput("invalid_field", f"config.to: 1 to {MAX_RECIPIENTS} addresses")
    out: dict[str, Any] = {
        "to": [_address(a, f"config.to[{i}]") for i, a in enumerate(to)],
        "from": _address(config["from"], "config.from"),
    }
    host = config["host"]
    if not isinstance(host, str) or not HOST.fullmatch(host.strip()):
        raise InvalidInput("invalid_field", "config.host: the SMTP server's host name")
    out["host"] = host.strip()
    port = config["port"]
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InvalidInput("invalid_field", "config.port: a whole number from 1 to 65535")
    out["port"] = port
    for key in ("username", "password"):
        if key in config:
            value = config[key]
            if not isinstance(value, str) or not value or len(value) > 500:
                raise InvalidInput("invalid_field", f"config.{key}: 1 to 500 characters")
            out[key] = value
    if ("username" in out) != ("password" in out):
        raise InvalidInput("invalid_field", "config: give username and password together")
    for key in ("starttls", "tls"):
        if key in config:
            if not isinstance(config[key], bool):
                raise InvalidInput("invalid_field", f"config.{key}: true or false")
            out[key] = config[key]
    if out.get("starttls") and out.get("tls"):
        raise InvalidInput(
            "invalid_field", "config: tls (implicit, port 465) or starttls, not both"
        )
    return out, None


CHECKS = {
    "webhook": _webhook,
    "slack": _chat_webhook,
    "discord": _chat_webhook,
    "telegram": _telegram,
    "email": _email,
}


def masked(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config fit to show: secrets as ``"set"``, chat webhook URLs as their origin."""
    shown = dict(config)
    for key in SECRET_KEYS[kind]:
        if key not in shown:
            continue
        if key == "webhook_url":
            url = URL(shown[key])
            shown[key] = f"{url.scheme}://{url.raw_host}/…"
        else:
            shown[key] = MASK
    return shown


def secret_values(kind: str, config: dict[str, Any]) -> list[str]:
    """The config's secret strings, for scrubbing them out of error texts."""
    return [str(config[k]) for k in SECRET_KEYS[kind] if config.get(k)]
