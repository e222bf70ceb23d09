"""Rules: pure functions from a hit's params and an endpoint's settings to flags.

``compile_settings`` validates a settings document once; ``judge`` runs on every hit
and must stay fast and total (no I/O, never raises). Duplicates are settled by the
database: ``judge`` only says which key (click id, event) a hit dedupes on, and the
writer calls ``duplicate_flag`` when the key was seen before. docs/rules.md is the
user-facing description of every rule here.
"""

from __future__ import annotations

import difflib
import hmac
import ipaddress
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.currencies import is_currency
from monitor.macros import find_macro
from monitor.presets import PRESETS, get_preset

Flag = dict[str, Any]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Auto-detection order: the first name present with a non-empty value wins.
CLICK_ID_NAMES = (
    "click_id", "clickid", "click-id", "cid", "subid", "sub_id", "cnv_id", "aff_sub",
    "aff_click_id", "transaction_id", "tid", "irclickid", "visitor_id", "externalid",
    "external_id", "gclid", "wbraid", "gbraid", "fbclid", "ttclid", "msclkid", "yclid",
)  # fmt: skip
EVENT_NAMES = (
    "event", "event_name", "event_type", "et", "goal", "goal_id", "cnv_status", "status",
    "type", "conversion_type", "action", "activity_kind",
)  # fmt: skip
# Checked all (each present one) when amount_param / currency_param are not set.
AMOUNT_NAMES = (
    "payout", "amount", "revenue", "sum", "price", "sale_amount", "event_revenue",
    "order_sum", "order_amount", "commission",
)  # fmt: skip
CURRENCY_NAMES = (
    "currency", "cur", "cnv_currency", "event_revenue_currency", "currency_code",
    "order_currency", "payout_currency",
)  # fmt: skip
_ALIAS_GROUPS = (CLICK_ID_NAMES, EVENT_NAMES, AMOUNT_NAMES, CURRENCY_NAMES)

SETTINGS_KEYS = (
    "preset", "required_params", "click_id_param", "event_param", "amount_param",
    "currency_param", "dedupe", "allowed_ips", "secret",
)  # fmt: skip
DEDUPE_SCOPES = ("click_id_event", "click_id", "off")
MAX_DEDUPE_WINDOW_S = 3650 * 86400.0
MAX_NAME_CHARS = 256
MAX_REQUIRED_PARAMS = 100
MAX_ALLOWED_IPS = 1000
MAX_SECRET_CHARS = 1024
# Flags are stored on every hit: bound their size whatever the sender puts on the wire.
MAX_FLAG_VALUE_CHARS = 200
MAX_MACRO_FLAGS = 20

_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_WINDOW = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd])")
_WINDOW_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class SettingsError(ValueError):
    """An endpoint settings document is invalid; the message names the setting."""


@dataclass(frozen=True, slots=True)
class Rules:
    """An endpoint's settings document, validated and compiled for fast judging."""

    # Normalized settings as stored and returned by the API (holds the secret: no repr).
    document: Mapping[str, Any] = field(default_factory=dict, repr=False)
    required_params: tuple[str, ...] = ()
    click_id_names: tuple[str, ...] = CLICK_ID_NAMES
    event_names: tuple[str, ...] = EVENT_NAMES
    amount_names: tuple[str, ...] = AMOUNT_NAMES
    currency_names: tuple[str, ...] = CURRENCY_NAMES
    dedupe_scope: str = "click_id_event"
    dedupe_window_s: float | None = None
    allowed_networks: tuple[IPNetwork, ...] | None = None
    secret: bytes | None = field(default=None, repr=False)
    secret_param: str | None = None
    secret_header: str | None = None  # as configured; compared case-insensitively


@dataclass(frozen=True, slots=True)
class Verdict:
    flags: list[Flag]
    click_id: str | None = None
    event: str | None = None
    click_id_param: str | None = None
    # (click id, event or "") when this hit takes part in duplicate detection.
    dedupe_key: tuple[str, str] | None = None
    dedupe_window_s: float | None = None


# ---------------------------------------------------------------- compile_settings


def compile_settings(document: Mapping[str, Any]) -> Rules:
    """Validate a settings document and compile it; SettingsError names the bad setting."""
    if not isinstance(document, Mapping):
        raise SettingsError("settings: must be a JSON object")
    unknown = [key for key in document if key not in SETTINGS_KEYS]
    if unknown:
        raise SettingsError(_unknown_key("", unknown[0], SETTINGS_KEYS))
    normalized: dict[str, Any] = {}

    preset = None
    if document.get("preset") is not None:
        raw = document["preset"]
        if not isinstance(raw, str):
            raise SettingsError("preset: must be a preset key string")
        preset = get_preset(raw)
        if preset is None:
            hint = _suggest(raw.strip().lower(), PRESETS)
            raise SettingsError(
                f"preset: unknown preset {raw!r}{hint}; known: {', '.join(PRESETS)}"
            )
        normalized["preset"] = preset.key

    names: dict[str, str | None] = {}
    for key in ("click_id_param", "event_param", "amount_param", "currency_param"):
        value = document.get(key)
        if value is not None:
            names[key] = normalized[key] = _param_name(key, value)
        else:
            names[key] = getattr(preset, key) if preset is not None else None

    required: tuple[str, ...] = preset.required_params if preset is not None else ()
    if document.get("required_params") is not None:
        required = _required_params(document["required_params"])
        normalized["required_params"] = list(required)

    scope, window_s = "click_id_event", None
    if document.get("dedupe") is not None:
        scope, window_s, normalized["dedupe"] = _dedupe(document["dedupe"])

    networks = None
    if document.get("allowed_ips") is not None:
        networks, normalized["allowed_ips"] = _allowed_ips(document["allowed_ips"])

    secret = secret_param = secret_header = None
    if document.get("secret") is not None:
        secret, secret_param, secret_header, normalized["secret"] = _secret(document["secret"])

    def names_for(key: str, common: tuple[str, ...]) -> tuple[str, ...]:
        name = names[key]
        return (name,) if name is not None else common

    return Rules(
        document=normalized,
        required_params=required,
        click_id_names=names_for("click_id_param", CLICK_ID_NAMES),
        event_names=names_for("event_param", EVENT_NAMES),
        amount_names=names_for("amount_param", AMOUNT_NAMES),
        currency_names=names_for("currency_param", CURRENCY_NAMES),
        dedupe_scope=scope,
        dedupe_window_s=window_s,
        allowed_networks=networks,
        secret=secret,
        secret_param=secret_param,
        secret_header=secret_header,
    )


def _unknown_key(prefix: str, key: object, known: Sequence[str]) -> str:
    hint = _suggest(str(key), known)
    return f"{prefix}{key}: unknown setting{hint} (known: {', '.join(known)})"


def _suggest(word: str, known: Sequence[str] | Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _param_name(setting: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"{setting}: must be a non-empty string")
    name = value.strip()
    if len(name) > MAX_NAME_CHARS:
        raise SettingsError(f"{setting}: longer than {MAX_NAME_CHARS} characters")
    return name


def _required_params(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SettingsError("required_params: must be a list of strings")
    if len(value) > MAX_REQUIRED_PARAMS:
        raise SettingsError(f"required_params: at most {MAX_REQUIRED_PARAMS} names")
    names = [_param_name(f"required_params[{i}]", item) for i, item in enumerate(value)]
    return tuple(dict.fromkeys(names))


def _dedupe(value: Any) -> tuple[str, float | None, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise SettingsError('dedupe: must be an object like {"scope": "click_id", "window": "24h"}')
    for key in value:
        if key not in ("scope", "window"):
            raise SettingsError(_unknown_key("dedupe.", key, ("scope", "window")))
    normalized: dict[str, Any] = {}
    scope = "click_id_event"
    if value.get("scope") is not None:
        scope = value["scope"]
        if scope not in DEDUPE_SCOPES:
            raise SettingsError(f"dedupe.scope: must be one of {', '.join(DEDUPE_SCOPES)}")
        normalized["scope"] = scope
    window_s = None
    if value.get("window") is not None:
        window_s, normalized["window"] = _window(value["window"])
    return scope, window_s, normalized


def _window(value: Any) -> tuple[float, float | str]:
    problem = 'dedupe.window: must be seconds (a number) or a string like "90s", "30m", "24h", "7d"'
    canonical: float | str
    if isinstance(value, bool):
        raise SettingsError(problem)
    if isinstance(value, int | float):
        seconds, canonical = float(value), value
    elif isinstance(value, str):
        match = _WINDOW.fullmatch(value.strip().lower())
        if match is None:
            raise SettingsError(problem)
        seconds = float(match[1]) * _WINDOW_UNIT_S[match[2]]
        canonical = f"{match[1]}{match[2]}"
    else:
        raise SettingsError(problem)
    if not math.isfinite(seconds) or seconds <= 0:
        raise SettingsError("dedupe.window: must be more than zero (omit it for forever)")
    if seconds > MAX_DEDUPE_WINDOW_S:
        raise SettingsError("dedupe.window: at most 3650d (omit it for forever)")
    return seconds, canonical


def _allowed_ips(value: Any) -> tuple[tuple[IPNetwork, ...] | None, list[str]]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SettingsError("allowed_ips: must be a list of IP addresses or CIDR networks")
    if len(value) > MAX_ALLOWED_IPS:
        raise SettingsError(f"allowed_ips: at most {MAX_ALLOWED_IPS} entries")
    networks: list[IPNetwork] = []
    for index, item in enumerate(value):
        text = item.strip()
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError:
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise SettingsError(
                    f"allowed_ips[{index}]: {text!r} is not an IP address or CIDR network"
                ) from None
            raise SettingsError(
                f"allowed_ips[{index}]: {text!r} has host bits set; did you mean {loose}?"
            ) from None
    # An empty list means any sender, like no setting at all.
    return (tuple(networks) or None), [item.strip() for item in value]


def _secret(value: Any) -> tuple[bytes, str | None, str | None, dict[str, str]]:
    usage = (
        'secret: must be {"value": "...", "param": "name"} or {"value": "...", "header": "X-Name"}'
    )
    if not isinstance(value, Mapping):
        raise SettingsError(usage)
    for key in value:
        if key not in ("value", "param", "header"):
            raise SettingsError(_unknown_key("secret.", key, ("value", "param", "header")))
    secret = value.get("value")
    if not isinstance(secret, str) or not secret.strip():
        raise SettingsError("secret.value: must be a non-empty string")
    secret = secret.strip()
    if len(secret) > MAX_SECRET_CHARS:
        raise SettingsError(f"secret.value: longer than {MAX_SECRET_CHARS} characters")
    param, header = value.get("param"), value.get("header")
    if (param is None) == (header is None):
        raise SettingsError("secret: needs exactly one of param or header")
    normalized = {"value": secret}
    if param is not None:
        normalized["param"] = _param_name("secret.param", param)
        return _bytes(secret), normalized["param"], None, normalized
    if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header.strip()):
        raise SettingsError("secret.header: must be an HTTP header name like X-Postback-Token")
    normalized["header"] = header.strip()
    return _bytes(secret), None, normalized["header"], normalized


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------- judge


def judge(
    rules: Rules,
    params: Sequence[tuple[str, str]],
    *,
    remote_ip: str | None,
    headers: Sequence[tuple[str, str]],
) -> Verdict:
    """Flags for one hit; params are query params then body params (first name wins)."""
    values: dict[str, str] = {}
    flags: list[Flag] = []
    # One flag per param: the first applicable of unreplaced_macro, missing_param,
    # secret_mismatch, invalid_amount, invalid_currency.
    flagged: set[str] = set()
    macro_flags = 0
    for name, raw in params:
        value = raw.strip()
        values.setdefault(name, value)
        if name in flagged or macro_flags >= MAX_MACRO_FLAGS:
            continue
        token = find_macro(value)
        if token is None or (name == rules.secret_param and _secret_matches(rules, value)):
            continue
        flagged.add(name)
        macro_flags += 1
        flags.append(
            make_flag(
                "unreplaced_macro",
                name,
                value,
                f"Parameter {name} still holds the placeholder {_clip(token)}, "
                "so the sender did not replace it with a real value.",
                macro=_clip(token),
            )
        )

    for name in rules.required_params:
        if name in flagged or values.get(name):
            continue
        flagged.add(name)
        flags.append(_missing(name, values.get(name), values))

    if rules.allowed_networks is not None:
        problem = _ip_problem(rules.allowed_networks, remote_ip)
        if problem is not None:
            flags.append(make_flag("ip_not_allowed", None, remote_ip, problem))

    if rules.secret is not None:
        flag = _secret_flag(rules, values, headers, flagged)
        if flag is not None:
            flags.append(flag)

    for name in rules.amount_names:
        value = values.get(name, "")
        if value and name not in flagged and _AMOUNT.fullmatch(value) is None:
            flagged.add(name)
            flags.append(
                make_flag(
                    "invalid_amount",
                    name,
                    value,
                    f"Amount parameter {name} is {_quote(value)}, which is not a plain "
                    "non-negative decimal like 12 or 1.50.",
                )
            )
    for name in rules.currency_names:
        value = values.get(name, "")
        if value and name not in flagged and not is_currency(value):
            flagged.add(name)
            flags.append(
                make_flag(
                    "invalid_currency",
                    name,
                    value,
                    f"Currency parameter {name} is {_quote(value)}, which is not an "
                    "ISO 4217 code like USD or EUR.",
                )
            )

    click_id_param, click_id = _first_present(rules.click_id_names, values)
    _, event = _first_present(rules.event_names, values)
    dedupe_key = None
    if click_id and rules.dedupe_scope != "off" and find_macro(click_id) is None:
        with_event = rules.dedupe_scope == "click_id_event" and event and find_macro(event) is None
        dedupe_key = (click_id, event if with_event and event else "")
    return Verdict(
        flags=flags,
        click_id=click_id or None,
        event=event or None,
        click_id_param=click_id_param,
        dedupe_key=dedupe_key,
        dedupe_window_s=rules.dedupe_window_s,
    )


def duplicate_flag(verdict: Verdict, first_hit_id: uuid.UUID) -> Flag:
    """The duplicate_click_id flag for a hit whose dedupe key was already seen."""
    event = verdict.dedupe_key[1] if verdict.dedupe_key else ""
    scope = f" with event {_quote(event)}" if event else ""
    return make_flag(
        "duplicate_click_id",
        verdict.click_id_param,
        verdict.click_id,
        f"Click id {_quote(verdict.click_id or '')}{scope} was already captured on this "
        f"endpoint, first by hit {first_hit_id}.",
        first_hit_id=str(first_hit_id),
    )


def _first_present(names: tuple[str, ...], values: Mapping[str, str]) -> tuple[str | None, str]:
    """The first name with a non-empty value; else the first name present (empty)."""
    first_empty = None
    for name in names:
        value = values.get(name)
        if value:
            return name, value
        if value is not None and first_empty is None:
            first_empty = name
    return first_empty, ""


def _missing(name: str, value: str | None, values: Mapping[str, str]) -> Flag:
    state = "is empty" if value is not None else "is missing"
    hint = _did_you_mean(name, values) if value is None else None
    message = f"Required parameter {name} {state}"
    if hint is not None:
        message += f"; did you mean {hint}?"
        return make_flag("missing_param", name, value, message, did_you_mean=hint)
    return make_flag("missing_param", name, value, message + ".")


def _did_you_mean(name: str, values: Mapping[str, str]) -> str | None:
    lowered = name.lower()
    squashed = _squash(name)
    present = [other for other in values if values[other]] or list(values)
    for other in present:
        if other.lower() == lowered:
            return other
    for other in present:
        if _squash(other) == squashed or _squash(other.rsplit(".", 1)[-1]) == squashed:
            return other
    for group in _ALIAS_GROUPS:
        if any(_squash(alias) == squashed for alias in group):
            for alias in group:
                if values.get(alias):
                    return alias
    return None


def _squash(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "").replace(".", "").replace(" ", "")


def _ip_problem(networks: tuple[IPNetwork, ...], remote_ip: str | None) -> str | None:
    if not remote_ip:
        return "The sender's IP address is unknown, so it cannot match allowed_ips."
    try:
        address = ipaddress.ip_address(remote_ip.strip())
    except ValueError:
        return f"The sender's address {_quote(remote_ip)} is not an IP address."
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network in networks:
        if address.version == network.version and address in network:
            return None
    return f"The request came from {address}, which is not in allowed_ips."


def _secret_matches(rules: Rules, value: str) -> bool:
    return rules.secret is not None and hmac.compare_digest(_bytes(value), rules.secret)


def _secret_flag(
    rules: Rules,
    values: Mapping[str, str],
    headers: Sequence[tuple[str, str]],
    flagged: set[str],
) -> Flag | None:
    if rules.secret_param is not None:
        where, param = f"parameter {rules.secret_param}", rules.secret_param
        if param in flagged:
            return None
        received = values.get(param)
    else:
        wanted = (rules.secret_header or "").lower()
        where, param = f"header {rules.secret_header}", None
        received = None
        for header, value in headers:
            if header.lower() == wanted:
                received = value.strip()
                break
    if received and _secret_matches(rules, received):
        return None
    if not received:
        message = (
            f"The shared secret is missing: {where} is {'empty' if received == '' else 'absent'}."
        )
        return make_flag("secret_mismatch", param, None, message, source=where)
    shown = _redact(received)
    message = f"The shared secret in {where} does not match (received {shown})."
    return make_flag("secret_mismatch", param, shown, message, source=where)


def _redact(value: str) -> str:
    """Enough to recognise an old token, never enough to replay one."""
    if len(value) < 8:
        return f"***, {len(value)} characters"
    return f"{value[:2]}***, {len(value)} characters"


def make_flag(name: str, param: str | None, value: str | None, message: str, **extra: Any) -> Flag:
    """A flag as stored on a hit; long values are clipped so flags stay small."""
    return {
        "flag": name,
        "param": param,
        "value": None if value is None else _clip(value),
        "message": message,
        **extra,
    }


def _clip(text: str) -> str:
    if len(text) <= MAX_FLAG_VALUE_CHARS:
        return text
    return text[: MAX_FLAG_VALUE_CHARS - 1] + "…"


def _quote(value: str) -> str:
    return f'"{_clip(value)}"'
