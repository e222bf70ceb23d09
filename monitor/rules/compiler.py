"""The settings compiler: an endpoint's rules settings, validated once, compiled for judging.

``compile_settings`` runs when a settings document is written or loaded, never per
hit; it refuses a bad document with a SettingsError naming the setting (and the
closest known name for a typo), and turns a good one into ``Rules``, whose fields
are exactly what ``judge`` needs on the hot path. docs/rules.md describes every
setting.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.model.errors import SettingsError
from monitor.rules.durations import parse_duration
from monitor.rules.networks import IPNetwork, parse_networks
from monitor.rules.outliers import AmountOutlierRule, compile_amount_outlier
from monitor.rules.presets import PRESETS, get_preset
from monitor.rules.senders import SendersRule, compile_senders
from monitor.rules.statuses import COMMON, STATUS_NAMES, compile_statuses
from monitor.rules.test_traffic import TestTraffic, compile_test_traffic, preset_markers

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
# For "did you mean": a missing name's common aliases, one group per role.
ALIAS_GROUPS = (CLICK_ID_NAMES, EVENT_NAMES, AMOUNT_NAMES, CURRENCY_NAMES)

SETTINGS_KEYS = (
    "preset", "required_params", "click_id_param", "event_param", "amount_param",
    "currency_param", "dedupe", "allowed_ips", "secret", "test_traffic", "statuses",
    "amount_outlier", "senders",
)  # fmt: skip
DEDUPE_SCOPES = ("click_id_event", "click_id", "off")
MAX_DEDUPE_WINDOW_S = 3650 * 86400.0
MAX_NAME_CHARS = 256
MAX_REQUIRED_PARAMS = 100
MAX_ALLOWED_IPS = 1000
MAX_SECRET_CHARS = 1024

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


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
    test_traffic: TestTraffic = field(default_factory=TestTraffic)
    # Where a hit's status is read, and what its values mean: the common table with
    # the preset's and then the endpoint's ``statuses.map`` laid over it.
    status_names: tuple[str, ...] = STATUS_NAMES
    status_table: Mapping[str, str] = field(default_factory=lambda: COMMON, repr=False)
    # The amount_outlier check (on by default; None: off), run by the writer.
    amount_outlier: AmountOutlierRule | None = field(default_factory=AmountOutlierRule)
    # The senders checks (new_sender, param_shape_changed; None: both off), run by the writer.
    senders: SendersRule | None = field(default_factory=SendersRule)


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

    extra = preset_markers(preset.name, preset.test_markers) if preset is not None else []
    test_traffic, test_document = compile_test_traffic(document.get("test_traffic"), extra)
    if test_document is not None:
        normalized["test_traffic"] = test_document
    status_names = preset.status_params if preset is not None and preset.status_params else None
    status_table = {**COMMON, **preset.statuses} if preset is not None else COMMON
    if document.get("statuses") is not None:
        param, overrides, normalized["statuses"] = compile_statuses(document["statuses"])
        status_names = (param,) if param is not None else status_names
        status_table = {**status_table, **overrides}

    amount_outlier, outlier_document = compile_amount_outlier(document.get("amount_outlier"))
    if outlier_document is not None:
        normalized["amount_outlier"] = outlier_document
    senders, senders_document = compile_senders(document.get("senders"))
    if senders_document is not None:
        normalized["senders"] = senders_document

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
        test_traffic=test_traffic,
        status_names=status_names or STATUS_NAMES,
        status_table=status_table,
        amount_outlier=amount_outlier,
        senders=senders,
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
    return parse_duration(
        "dedupe.window",
        value,
        min_s=0,
        max_s=MAX_DEDUPE_WINDOW_S,
        below="must be more than zero (omit it for forever)",
        above="at most 3650d (omit it for forever)",
    )


def _allowed_ips(value: Any) -> tuple[tuple[IPNetwork, ...] | None, list[str]]:
    networks = parse_networks("allowed_ips", value, MAX_ALLOWED_IPS)
    # An empty list means any sender, like no setting at all.
    return (networks or None), [item.strip() for item in value]


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
        return secret_bytes(secret), normalized["param"], None, normalized
    if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header.strip()):
        raise SettingsError("secret.header: must be an HTTP header name like X-Postback-Token")
    normalized["header"] = header.strip()
    return secret_bytes(secret), None, normalized["header"], normalized


def secret_bytes(text: str) -> bytes:
    """A secret as compared: any text, lone surrogates included, has bytes."""
    return text.encode("utf-8", "surrogatepass")
