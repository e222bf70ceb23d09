"""What a share link's visitor may see of a hit: the hit with every secret taken out.

A shared view is opened by people without an account, so anything that would let
them send postbacks as the partner, or read someone's credentials, is removed before
a template sees the hit: the capture token (the path's first segment, and the
endpoint's current token wherever it appears), the endpoint's shared secret (its
param's value, its header, and the value anywhere else), and headers that carry
credentials. Pure functions over the API-shaped hit dicts; no I/O.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from monitor.model.paths import CAPTURE_PREFIX
from monitor.storage.endpoints import Endpoint

HIDDEN = "[hidden]"
# Headers that carry someone's credentials, whatever the endpoint's settings.
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
     "x-auth-token", "x-csrf-token"}
)  # fmt: skip


def capture_token_of(hit: dict[str, Any]) -> str:
    """The capture token the hit was sent to (the endpoint may have rotated since)."""
    path = str(hit["path"])
    if not path.startswith(CAPTURE_PREFIX):
        return ""
    return path[len(CAPTURE_PREFIX) :].partition("/")[0]


def secrets_of(endpoint: Endpoint, hit: dict[str, Any]) -> list[str]:
    """Every string to hide in what the hit shows, longest first (so a secret that
    contains another is hidden whole), each also as a URL would carry it."""
    found = {endpoint.token, capture_token_of(hit)}
    if endpoint.rules.secret:
        found.add(endpoint.rules.secret.decode("utf-8", "replace"))
    found |= {quote(s, safe="") for s in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def hide(text: str, hidden: list[str]) -> str:
    for secret in hidden:
        text = text.replace(secret, HIDDEN)
    return text


def _walk(value: Any, hidden: list[str]) -> Any:
    if isinstance(value, str):
        return hide(value, hidden)
    if isinstance(value, list):
        return [_walk(v, hidden) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v, hidden) for k, v in value.items()}
    return value


def shared_hit(endpoint: Endpoint, hit: dict[str, Any]) -> dict[str, Any]:
    """The hit as a share link shows it: ``path`` is what came after the capture
    token, credential headers and the secret header are gone, the secret param's
    value and every secret string read ``[hidden]``."""
    hidden = secrets_of(endpoint, hit)
    rules = endpoint.rules
    dropped = CREDENTIAL_HEADERS | ({rules.secret_header.lower()} if rules.secret_header else set())
    shown = dict(hit)
    path = str(hit["path"])
    if path.startswith(CAPTURE_PREFIX):
        shown["path"] = "/" + path[len(CAPTURE_PREFIX) :].partition("/")[2]
    shown["headers"] = [[n, v] for n, v in hit["headers"] if str(n).lower() not in dropped]
    for key in ("params", "body_params"):
        shown[key] = [
            [n, HIDDEN if rules.secret_param and n == rules.secret_param else v]
            for n, v in hit[key]
        ]
    # Rebuilt from the parsed params: the raw query may carry the secret in a form
    # (``+`` for a space, lower-case escapes) that no string match would find.
    shown["query_string"] = "&".join(f"{n}={v}" for n, v in shown["params"])
    body = {k: shown.pop(k) for k in ("body_text", "body_base64") if k in shown}
    shown = _walk(shown, hidden)
    if "body_text" in body:
        shown["body_text"] = hide(body["body_text"], hidden)
        _keep_size(shown, len(body["body_text"].encode()), len(shown["body_text"].encode()))
    elif "body_base64" in body:
        raw = base64.b64decode(body["body_base64"])
        for secret in hidden:
            raw = raw.replace(secret.encode(), HIDDEN.encode())
        _keep_size(shown, len(base64.b64decode(body["body_base64"])), len(raw))
        shown["body_base64"] = base64.b64encode(raw).decode("ascii")
    return shown


def _keep_size(hit: dict[str, Any], stored: int, shown: int) -> None:
    """A whole body whose secrets were hidden is still whole (not "cut")."""
    if int(hit.get("body_size", 0)) == stored:
        hit["body_size"] = shown
