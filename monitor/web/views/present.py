"""How hits look on the web pages: times, amounts, bodies, flags in words, curl lines.

Pure functions over the API-shaped hit dicts from ``hits.py``; no I/O. Nothing here
escapes HTML: templates do that (Jinja autoescape), so every value stays raw text.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shlex
from datetime import UTC, datetime
from typing import Any

from monitor.model import verdict
from monitor.model.paths import CAPTURE_PREFIX
from monitor.rules import Rules
from monitor.rules.presets import Preset

HEX_PREVIEW_BYTES = 4096
# A list row shows this much of what arrived; the hit page has the rest.
ARRIVED_PREVIEW_CHARS = 160
# The hit page shows this much of a body, and "copy as curl" inlines a body up to
# this size: a 1 MiB body in a <pre> and again in the curl line made a 2 MB page.
BODY_PREVIEW_BYTES = 8 * 1024
# Not replayed by "copy as curl": curl sets them itself, or they describe the old
# connection rather than the request.
CURL_SKIP_HEADERS = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te",
     "upgrade", "expect", "proxy-connection"}
)  # fmt: skip

# RFC 9110 token: what a header name may be.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

FLAG_HELP = {
    "unreplaced_macro": "The sender left a placeholder where a real value belongs: the "
    "macro name is wrong for that platform, or the platform had no value for it.",
    "missing_param": "A parameter this endpoint requires is absent or empty: check the "
    "parameter name and that the sender fills it.",
    "invalid_amount": "The amount is not a plain number like 12 or 1.50 (no thousands "
    "separators, commas or currency signs), so trackers may read it as 0.",
    "negative_amount": "The amount is negative on a hit whose status is no reversal: a "
    "refund sent with the wrong status, or a sign mix-up; trackers may subtract it.",
    "amount_outlier": "The amount is far from what this endpoint usually receives for the "
    "event in that currency (median and spread of its recent amounts): a cents/units "
    "mix-up, a wrong macro, or a payout change to confirm.",
    "new_sender": "The hit came from a network (IPv4 /24, IPv6 /48) this endpoint never saw "
    "while learning its senders: a new server of the network, or someone else using the URL. "
    "Accept the network on the endpoint's page if it is expected.",
    "param_shape_changed": "The set of parameter names differs from every set this endpoint "
    "has seen (a field renamed or dropped, payout sent as amount): the tracker's mapping may "
    "no longer read it.",
    "invalid_currency": "The currency is not a three-letter ISO 4217 code such as USD or EUR.",
    "ip_not_allowed": "The request came from an address outside this endpoint's allowed "
    "IPs: a different server, a proxy, or someone guessing the URL.",
    "secret_mismatch": "The shared secret is missing or wrong, so this postback cannot be "
    "trusted to come from your partner.",
    "duplicate_click_id": "This conversion was already received: the sender retried, or "
    "fires the same postback twice. It may be counted twice.",
    "orphan_reversal": "A refund, chargeback or rejection arrived for a click with no "
    "conversion before it on this endpoint: the conversion's own postback may have been lost, "
    "or the click id is not the one the conversion was sent with.",
    "conversion_after_reversal": "A sale or approval arrived for a click that was already "
    "reversed or rejected: the conversion may be paid again after the money went back.",
    "status_regression": "The click's status moved backwards (approved to pending, sale to "
    "lead): postbacks arrived out of order, or the sender reports an older state.",
    "body_truncated": "The body was larger than the configured limit; only its start was kept.",
    "params_truncated": "The query string or body held more than the parsed view keeps (too "
    "many params, values too long, JSON nested too deep); the raw bytes are stored whole.",
    "test_traffic": "A test or ping postback (a platform's test marker, or one of this "
    "endpoint's test click ids or IP ranges): kept and shown, but left out of duplicate "
    "detection, stats, alert metrics and reconciliation.",
}
# The names come from the model (what the API accepts too); every one has help here.
FLAG_NAMES = verdict.FLAG_NAMES
assert set(FLAG_HELP) == set(FLAG_NAMES), "FLAG_HELP must describe every flag in FLAG_NAMES"


def parse_time(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def utc(value: str | datetime | None) -> str:
    if value is None:
        return ""
    return parse_time(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: str | datetime | None, now: datetime | None = None) -> str:
    """'12 s ago', '3 min ago', '5 h ago', '2 d ago'; 'never' for None."""
    if value is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - parse_time(value)).total_seconds()
    seconds = max(seconds, 0)
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def all_params(hit: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in hit["params"]] + [(k, v) for k, v in hit["body_params"]]


def amount(hit: dict[str, Any], rules: Rules) -> str:
    """'12.50 USD': the first non-empty amount param, with the currency if there is one."""
    params = all_params(hit)
    value = next((v for k, v in params if k in rules.amount_names and v.strip()), "")
    currency = next((v for k, v in params if k in rules.currency_names and v.strip()), "")
    return f"{value} {currency}".strip() if value else ""


def flagged_params(hit: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_param: dict[str, list[dict[str, Any]]] = {}
    for flag in hit["flags"]:
        if flag.get("param"):
            by_param.setdefault(flag["param"], []).append(flag)
    return by_param


def arrived(hit: dict[str, Any]) -> str:
    """What arrived, on one line for a list row: the path after the capture token, the
    query and any body params, decoded (a macro reads as ``{clickid}``, not ``%7B``), so
    a flagged row shows its cause without opening it. Cut at ARRIVED_PREVIEW_CHARS."""
    path = hit["path"]
    if path.startswith(CAPTURE_PREFIX):
        _token, slash, tail = path[len(CAPTURE_PREFIX) :].partition("/")
        path = slash + tail
    query = "&".join(f"{k}={v}" for k, v in hit["params"]) or hit["query_string"]
    text = path + (f"?{query}" if query else "")
    if hit["body_params"]:
        body = "&".join(f"{k}={v}" for k, v in hit["body_params"])
        text = f"{text} body: {body}" if text else f"body: {body}"
    elif hit["body_size"]:
        text = f"{text} body: {hit['body_size']} bytes".lstrip()
    if len(text) > ARRIVED_PREVIEW_CHARS:
        text = text[: ARRIVED_PREVIEW_CHARS - 1] + "…"
    return text or "(nothing: no path, query or body)"


def full_url(base_url: str, hit: dict[str, Any]) -> str:
    query = hit["query_string"]
    return f"{base_url}{hit['path']}" + (f"?{query}" if query else "")


def body_bytes(hit: dict[str, Any]) -> bytes:
    if "body_base64" in hit:
        return base64.b64decode(hit["body_base64"])
    return str(hit.get("body_text", "")).encode("utf-8")


def human_size(size: int) -> str:
    """'512 bytes', '8.0 KiB', '1.0 MiB': sizes as people read them (binary units)."""
    if size < 1024:
        return "1 byte" if size == 1 else f"{size} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def short_id(hit_id: str) -> str:
    """A hit id people can tell apart: the UUIDv7's last 8 digits, which are random
    (its first ones are the time, the same for every hit of the same minute)."""
    return hit_id[-8:]


def body_file_name(hit: dict[str, Any]) -> str:
    """The name the raw body downloads as, and the file "copy as curl" reads it from:
    made of the hit id alone, never of anything the sender chose."""
    return f"hit-{hit['id']}.body"


def body_view(hit: dict[str, Any]) -> dict[str, Any]:
    """How to show the body: kind is empty, json, form, text or binary, plus its sizes.

    Only the first ``BODY_PREVIEW_BYTES`` are shown; the rest is a download. ``stored``
    is what the database kept, ``received`` what the sender sent (``body_size``): the
    capture keeps at most ``--max-body-bytes``."""
    raw = body_bytes(hit)
    received = max(int(hit.get("body_size", 0)), len(raw))
    sizes: dict[str, Any] = {
        "stored": len(raw),
        "received": received,
        "stored_human": human_size(len(raw)),
        "received_human": human_size(received),
        "cut": received > len(raw),
    }
    if not raw:
        return {"kind": "empty", **sizes}
    if "body_text" not in hit:
        preview = raw[:HEX_PREVIEW_BYTES]
        return {
            "kind": "binary",
            "hex": hexdump(preview),
            # Base64 of a large body would be a second, bigger copy: download it instead.
            "base64": base64.b64encode(raw).decode("ascii")
            if len(raw) <= BODY_PREVIEW_BYTES
            else "",
            **_shown(len(preview), sizes),
        }
    whole = len(raw) <= BODY_PREVIEW_BYTES
    # Stored text is valid UTF-8, so only a character cut at the end can fail to decode.
    text = hit["body_text"] if whole else raw[:BODY_PREVIEW_BYTES].decode("utf-8", "ignore")
    shown = _shown(len(text.encode("utf-8")), sizes)
    media = hit["content_type"].split(";", 1)[0].strip().lower()
    if whole and (
        media == "application/json" or media.endswith("+json") or text.lstrip()[:1] in "{["
    ):
        try:
            pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            return {"kind": "json", "text": pretty, **shown}
        except (ValueError, RecursionError):
            pass
    if media == "application/x-www-form-urlencoded" and hit["body_params"]:
        return {"kind": "form", "pairs": hit["body_params"], "text": text, **shown}
    return {"kind": "text", "text": text, **shown}


def _shown(count: int, sizes: dict[str, Any]) -> dict[str, Any]:
    return {
        **sizes,
        "shown": count,
        "shown_human": human_size(count),
        "partial": count < sizes["stored"],
    }


def hexdump(data: bytes) -> str:
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hex_part = " ".join(f"{b:02x}" for b in chunk)
        ascii_part = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hex_part:<47}  {ascii_part}")
    return "\n".join(lines)


def _url_safe(text: str) -> str:
    """Percent-encode what a shell-quoted URL must not carry raw (controls, spaces, non-ASCII)."""
    out = []
    for ch in text:
        if 33 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def curl_command(base_url: str, hit: dict[str, Any]) -> str:
    """A shell command that sends the same request again (method, path, query, headers, body).

    Every piece comes from the sender, so none may be something curl interprets: a
    body goes after ``--data-raw`` (``--data-binary @/etc/passwd`` would send that
    file), or is piped in when no shell argument can carry it; a header that is not
    ``token: value`` on one line is left out (``-H @file`` reads a file too); the URL
    starts with the configured base URL (never ``-``), is percent-encoded, and
    ``--globoff`` keeps ``[]{}`` literal. A body past ``BODY_PREVIEW_BYTES`` is not
    inlined: it is read from the downloaded file, whose name is the hit id's."""
    method = hit["method"]
    body = body_bytes(hit)
    parts = ["curl", "--globoff"]
    if method == "HEAD":
        parts.append("--head")
    elif method != "GET" or body:
        parts += ["-X", method]
    for name, value in hit["headers"]:
        if name.lower() not in CURL_SKIP_HEADERS and _plain_header(name, value):
            # "Name:" alone would tell curl to drop the header; "Name;" sends it empty.
            parts += ["-H", f"{name}: {value}" if value.strip() else f"{name};"]
    prefix = ""
    if len(body) > BODY_PREVIEW_BYTES:
        parts += ["--data-binary", "@" + body_file_name(hit)]
    elif "body_text" in hit and body and "\x00" not in hit["body_text"]:
        parts += ["--data-raw", hit["body_text"]]  # never a file name, unlike --data-binary
    elif body:  # bytes a shell argument cannot carry
        prefix = f"printf %s {shlex.quote(base64.b64encode(body).decode())} | base64 -d | "
        parts += ["--data-binary", "@-"]
    parts.append(_url_safe(full_url(base_url, hit)))
    return prefix + " ".join(shlex.quote(p) for p in parts)


def _plain_header(name: str, value: str) -> bool:
    """A header curl sends as given: an HTTP token name, a value without control bytes."""
    return bool(HEADER_NAME.fullmatch(name)) and not any(
        (ord(ch) < 0x20 and ch != "\t") or ch == "\x7f" for ch in value
    )


def test_click_id() -> str:
    """A click id for one test hit: fresh each time, so test hits are never duplicates
    of each other (``test-`` and 8 hex digits; the page script makes the same shape)."""
    return f"test-{secrets.token_hex(4)}"


def sample_query(preset: Preset | None, click_id: str) -> str:
    """A test postback's query for a preset: made-up but valid values, no macros."""
    names = [
        (preset.click_id_param if preset else "click_id", click_id),
        (preset.event_param if preset else "event", "sale"),
        (preset.amount_param if preset else "payout", "1.50"),
        (preset.currency_param if preset else "currency", "USD"),
    ]
    if preset is not None:
        names += [(p, "test") for p in preset.required_params if p not in dict(names)]
    return "&".join(f"{k}={v}" for k, v in names if k)


def setup_lines(capture_url: str, preset: Preset | None) -> dict[str, str]:
    """What a user pastes first: the capture URL and a curl line sending a test hit
    (with a fresh click id; ``click_id`` says which, so the page can renew it)."""
    click_id = test_click_id()
    return {
        "capture_url": capture_url,
        "curl": "curl " + shlex.quote(f"{capture_url}?{sample_query(preset, click_id)}"),
        "click_id": click_id,
    }
