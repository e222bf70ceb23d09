"""Forwarding, the pure part: the endpoint's forward settings, and the request a hit
becomes (template or passthrough). No I/O; the worker is in ``forwarder``.

Template mode: ``forward_url`` is a URL whose ``{name}`` placeholders are replaced by
the captured param ``name`` (query first, then body; the first occurrence wins, as for
the rules), percent-encoded. A name the hit does not have becomes empty and is flagged
on the attempt. Passthrough mode: the hit's method, path tail, query, body and a few
headers are sent to ``forward_url`` as a base.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_from_bytes, urlsplit

from monitor.rules import Flag, SettingsError

FORWARD_KEYS = ("forward_url", "forward_mode", "forward_flagged", "forward_max_attempts")
FORWARD_MODES = ("template", "passthrough")
DEFAULT_MAX_ATTEMPTS = 10
MAX_MAX_ATTEMPTS = 100
MAX_URL_CHARS = 4096
MAX_PLACEHOLDERS = 100
HIT_ID_HEADER = "X-Postback-Monitor-Hit-Id"
# Request headers a passthrough forward carries over from the captured hit.
PASSTHROUGH_HEADERS = ("content-type", "user-agent", "accept", "accept-language")
# Characters kept as they are when a raw query is put back on the wire.
_QUERY_SAFE = "!$&'()*+,;=:@/?-._~%"

PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_][A-Za-z0-9_.:~-]*)\}")
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class ForwardSettings:
    """Where an endpoint's hits are relayed, and how."""

    url: str
    mode: str = "template"
    forward_flagged: bool = True
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


@dataclass(slots=True)
class ForwardRequest:
    """One outbound request built from a hit, with what went wrong building it."""

    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    flags: list[Flag] = field(default_factory=list)


def compile_forward(document: Mapping[str, Any]) -> tuple[ForwardSettings | None, dict[str, Any]]:
    """The forward settings of a settings document and their normalized form."""
    present = [k for k in FORWARD_KEYS if document.get(k) is not None]
    if not present:
        return None, {}
    url = document.get("forward_url")
    if url is None:
        raise SettingsError(f"{present[0]}: set forward_url as well, or leave it out")
    mode = document.get("forward_mode", "template")
    if mode not in FORWARD_MODES:
        raise SettingsError(f"forward_mode: one of {', '.join(FORWARD_MODES)}")
    url = check_url(url, mode)
    flagged = document.get("forward_flagged", True)
    if not isinstance(flagged, bool):
        raise SettingsError("forward_flagged: true or false")
    attempts = document.get("forward_max_attempts", DEFAULT_MAX_ATTEMPTS)
    if (
        isinstance(attempts, bool)
        or not isinstance(attempts, int)
        or not 1 <= attempts <= MAX_MAX_ATTEMPTS
    ):
        raise SettingsError(f"forward_max_attempts: a whole number from 1 to {MAX_MAX_ATTEMPTS}")
    settings = ForwardSettings(url, mode, flagged, attempts)
    return settings, {
        "forward_url": url,
        "forward_mode": mode,
        "forward_flagged": flagged,
        "forward_max_attempts": attempts,
    }


def check_url(url: Any, mode: str, name: str = "forward_url") -> str:
    """An http(s) URL (a template in template mode); SettingsError names what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise SettingsError(f"{name}: an http or https URL")
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise SettingsError(f"{name}: at most {MAX_URL_CHARS} characters")
    if _PRINTABLE_ASCII.fullmatch(url) is None:
        raise SettingsError(
            f"{name}: spaces, control and non-ASCII characters must be percent-encoded"
        )
    placeholders = PLACEHOLDER.findall(url)
    if mode == "passthrough" and placeholders:
        raise SettingsError(
            f"{name}: placeholders such as {{{placeholders[0]}}} need template mode"
        )
    if len(placeholders) > MAX_PLACEHOLDERS:
        raise SettingsError(f"{name}: at most {MAX_PLACEHOLDERS} placeholders")
    bare = PLACEHOLDER.sub("x", url)
    if "{" in bare or "}" in bare:
        raise SettingsError(f"{name}: a {{ or }} that is not part of a {{name}} placeholder")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name}: an http or https URL with a host")
    if "{" in parts.netloc:
        # Senders choose param values: they must never choose where a forward goes.
        raise SettingsError(f"{name}: placeholders may not be used in the host")
    return str(url)


def first_values(params: Sequence[Sequence[str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in params:
        values.setdefault(name, value)
    return values


def render_template(template: str, params: Sequence[Sequence[str]]) -> tuple[str, list[Flag]]:
    """The template with each ``{name}`` replaced by the param's value, percent-encoded."""
    values = first_values(params)
    flags: list[Flag] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            if all(f["param"] != name for f in flags):
                flags.append(
                    {
                        "flag": "unknown_template_param",
                        "param": name,
                        "value": None,
                        "message": f"The hit has no parameter {name}, so {{{name}}} "
                        "was sent empty.",
                    }
                )
            return ""
        return quote(values[name], safe="")

    return PLACEHOLDER.sub(replace, template), flags


def build_request(settings: ForwardSettings, hit: Mapping[str, Any]) -> ForwardRequest:
    """The request that relays a stored hit (a hits row) to ``settings.url``."""
    return build_request_to(settings.url, settings.mode, hit)


def build_request_to(url: str, mode: str, hit: Mapping[str, Any]) -> ForwardRequest:
    hit_id_header = (HIT_ID_HEADER, str(hit["id"]))
    if mode == "template":
        params = [*hit["params"], *hit["body_params"]]
        target, flags = render_template(url, params)
        return ForwardRequest("GET", target, [hit_id_header], None, flags)
    return passthrough(url, hit, hit_id_header)


def passthrough(base: str, hit: Mapping[str, Any], extra: tuple[str, str]) -> ForwardRequest:
    parts = urlsplit(base)
    # /p/{token}/tail: the tail goes after the base path; the token never leaves.
    segments = str(hit["path"]).split("/", 3)
    tail = "/" + segments[3] if len(segments) == 4 and segments[3] else ""
    path = parts.path.rstrip("/") + tail if tail else parts.path
    raw_query = quote_from_bytes(bytes(hit["raw_query"]), safe=_QUERY_SAFE)
    query = "&".join(q for q in (parts.query, raw_query) if q)
    target = f"{parts.scheme}://{parts.netloc}{path or '/'}" + (f"?{query}" if query else "")
    headers = [
        (name, value) for name, value in hit["headers"] if name.lower() in PASSTHROUGH_HEADERS
    ]
    if hit.get("remote_ip") is not None:
        headers.append(("X-Forwarded-For", str(hit["remote_ip"])))
    headers.append(extra)
    body = bytes(hit["body"])
    flags: list[Flag] = []
    if hit["body_size"] > len(body):
        flags.append(
            {
                "flag": "body_truncated",
                "param": None,
                "value": None,
                "message": f"Only the stored first {len(body)} of {hit['body_size']} body "
                "bytes were forwarded.",
            }
        )
    return ForwardRequest(str(hit["method"]), target, headers, body or None, flags)


def backoff_s(
    attempt: int, base_s: float, max_s: float, rand: Callable[[], float] = random.random
) -> float:
    """Delay after failed attempt ``attempt`` (1-based): doubling, capped, half jittered."""
    delay = min(max_s, base_s * float(2 ** min(attempt - 1, 40)))
    return delay / 2 + rand() * delay / 2
