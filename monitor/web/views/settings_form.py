"""The settings page's form fields ↔ the endpoint's settings document.

The form shows the common keys as fields; the page's JSON editor holds the whole
document. Saving the form starts from the *stored* document, so keys the form does
not show (``rate_limit_per_s``, ``retention_days``, anything set through JSON) are
kept. Each group of fields (a key, or ``dedupe`` and ``secret`` with their parts) is
applied only when its posted values differ from what the stored document shows as:
an untouched field never rewrites its key (``required_params: []`` or a window of
``86400`` stay as they are), a field that was emptied removes its key (an emptied
forward URL all the forward keys), and a field the request does not carry at all is
left alone. The result is validated by the same
code as the API's, so the messages (which name the key) are the same. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from monitor.rules.forwards import FORWARD_KEYS

# The form's fields, grouped by the settings key each group writes.
SIMPLE_TEXT = (
    "click_id_param", "event_param", "amount_param", "currency_param", "forward_url",
    "conversion_time_param",
)  # fmt: skip
GROUPS: dict[str, tuple[str, ...]] = {
    "preset": ("preset",),
    "required_params": ("required_params",),
    **{key: (key,) for key in SIMPLE_TEXT},
    "dedupe": ("dedupe_scope", "dedupe_window"),
    "allowed_ips": ("allowed_ips",),
    "secret": ("secret_value", "secret_in", "secret_name"),
    "expected_interval": ("expected_interval",),
    "forward_mode": ("forward_mode",),
    "forward_flagged": ("forward_flagged",),
    "forward_max_attempts": ("forward_max_attempts",),
    "alerts": (
        "alert_channel_ids", "alert_silence_after", "alert_flagged_share",
        "alert_duplicate_share", "alert_window", "alert_min_hits",
        "alert_forwards_given_up", "alert_missing_above", "alert_reminder",
    ),
}  # fmt: skip
# Each alerts field and the key of the ``alerts`` object it writes.
ALERT_FIELDS = dict(
    zip(
        GROUPS["alerts"],
        ("channel_ids", "silence_after_s", "flagged_share_above", "duplicate_share_above",
         "window_s", "min_hits", "forwards_given_up", "missing_postbacks_above", "reminder_s"),
        strict=True,
    )
)  # fmt: skip
FIELDS = tuple(name for names in GROUPS.values() for name in names)
# Which form field a validation message is about, from the key it starts with.
FIELD_OF_KEY = {
    "dedupe.scope": "dedupe_scope",
    "dedupe.window": "dedupe_window",
    "dedupe": "dedupe_scope",
    "secret.value": "secret_value",
    "secret.param": "secret_name",
    "secret.header": "secret_name",
    "secret": "secret_value",
    **{f"alerts.{key}": field for field, key in ALERT_FIELDS.items()},
    "alerts": "alert_silence_after",
}
NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
NAME_SEPARATORS = re.compile(r"[\s,]+")


def names(raw: str) -> list[str]:
    """Param names or IP networks typed one per line, or separated by commas or spaces."""
    return [n for n in NAME_SEPARATORS.split(raw) if n]


def duration(raw: str) -> int | float | str:
    """A duration as typed: a bare number is seconds (as in JSON), else the string."""
    text = raw.strip()
    if NUMBER.fullmatch(text):
        return float(text) if "." in text else int(text)
    return text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _percent(value: Any) -> str:
    """A stored share (0.05) as the form's percent ("5")."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value * 100:.6g}"
    return _text(value)


def _share(raw: str) -> float | str:
    """A percent as typed ("5", "12.5") as the share the setting holds; other text is
    passed on for the validator to refuse by name."""
    text = raw.strip().removesuffix("%").strip()
    return float(text) / 100 if NUMBER.fullmatch(text) else raw.strip()


def alert_values(alerts: Any) -> dict[str, str]:
    """What each alerts field shows for a stored ``alerts`` object."""
    a = alerts if isinstance(alerts, Mapping) else {}
    ids = a.get("channel_ids")
    values = {field: _text(a.get(key)) for field, key in ALERT_FIELDS.items()}
    values.update(
        alert_channel_ids=",".join(str(i) for i in ids) if isinstance(ids, list) else "",
        alert_flagged_share=_percent(a.get("flagged_share_above")),
        alert_duplicate_share=_percent(a.get("duplicate_share_above")),
        alert_forwards_given_up="true" if a.get("forwards_given_up") is True else "",
    )
    return values


def _alerts(form: Mapping[str, str]) -> dict[str, Any] | None:
    """The ``alerts`` object from its fields; None when every field is empty."""
    converters: dict[str, Callable[[str], Any]] = {
        "alert_channel_ids": lambda raw: [_whole_or_text(i) for i in names(raw)] or None,
        "alert_silence_after": duration,
        "alert_flagged_share": _share,
        "alert_duplicate_share": _share,
        "alert_window": duration,
        "alert_min_hits": _whole_or_text,
        "alert_forwards_given_up": lambda raw: True if raw == "true" else None,
        "alert_missing_above": _whole_or_text,
        "alert_reminder": duration,
    }
    doc = {}
    for field, key in ALERT_FIELDS.items():
        if form[field].strip():
            value = converters[field](form[field])
            if value is not None:
                doc[key] = value
    return doc or None


def field_values(settings: Mapping[str, Any]) -> dict[str, str]:
    """What each form field shows for a stored settings document."""
    dedupe = settings.get("dedupe") or {}
    secret = settings.get("secret") or {}
    values = {key: _text(settings.get(key)) for key in SIMPLE_TEXT}
    values.update(
        preset=_text(settings.get("preset")),
        required_params=", ".join(settings.get("required_params") or ()),
        dedupe_scope=_text(dedupe.get("scope")) if isinstance(dedupe, Mapping) else "",
        dedupe_window=_text(dedupe.get("window")) if isinstance(dedupe, Mapping) else "",
        allowed_ips="\n".join(settings.get("allowed_ips") or ()),
        secret_value=_text(secret.get("value")) if isinstance(secret, Mapping) else "",
        secret_in="header" if isinstance(secret, Mapping) and "header" in secret else "param",
        secret_name=_text(secret.get("header") or secret.get("param"))
        if isinstance(secret, Mapping)
        else "",
        expected_interval=_text(settings.get("expected_interval")),
        forward_mode=_text(settings.get("forward_mode")),
        forward_flagged="false" if settings.get("forward_flagged") is False else "",
        forward_max_attempts=_text(settings.get("forward_max_attempts")),
        **alert_values(settings.get("alerts")),
    )
    return values


def _dedupe(form: Mapping[str, str]) -> dict[str, Any] | None:
    scope, window = form["dedupe_scope"].strip(), form["dedupe_window"].strip()
    if not scope and not window:
        return None
    return {
        **({"scope": scope} if scope else {}),
        **({"window": duration(window)} if window else {}),
    }


def _secret(form: Mapping[str, str]) -> dict[str, Any] | None:
    value, name = form["secret_value"], form["secret_name"].strip()
    if not value.strip() and not name:
        return None
    where = "header" if form["secret_in"] == "header" else "param"
    return {"value": value, where: name}


def _whole_or_text(raw: str) -> int | str:
    text = raw.strip()
    return int(text) if text.isascii() and text.isdigit() else text


def _plain(
    field: str, convert: Callable[[str], Any] = str.strip
) -> Callable[[Mapping[str, str]], Any]:
    """A one-field key: empty removes it, anything else is converted and validated."""
    return lambda form: convert(form[field]) if form[field].strip() else None


BUILDERS: dict[str, Callable[[Mapping[str, str]], Any]] = {
    **{key: _plain(key) for key in ("preset", *SIMPLE_TEXT, "forward_mode")},
    "required_params": lambda f: names(f["required_params"]) or None,
    "dedupe": _dedupe,
    "allowed_ips": lambda f: names(f["allowed_ips"]) or None,
    "secret": _secret,
    "expected_interval": _plain("expected_interval", duration),
    "forward_flagged": lambda f: False if f["forward_flagged"] == "false" else None,
    "forward_max_attempts": _plain("forward_max_attempts", _whole_or_text),
    "alerts": _alerts,
}


def _same(posted: str, shown: str) -> bool:
    """Browsers post a textarea's line breaks as CRLF, and trim nothing."""
    return posted.replace("\r\n", "\n").strip() == shown.strip()


def apply_form(settings: Mapping[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """The stored ``settings`` with the groups the form changed rewritten from it."""
    shown = field_values(settings)
    result = dict(settings)
    stop_forwarding = False
    for key, fields in GROUPS.items():
        if not all(name in form for name in fields):
            continue  # not posted: left as stored
        if all(_same(form[name], shown[name]) for name in fields):
            continue  # untouched: the stored value stays exactly as it was
        value = BUILDERS[key](form)
        if value is None:
            result.pop(key, None)
            stop_forwarding = stop_forwarding or key == "forward_url"
        else:
            result[key] = value
    if stop_forwarding:
        # "Forward to" emptied means no forwarding: the other forward keys, which the
        # stored document spells out once forwarding is on, would be refused alone.
        for key in FORWARD_KEYS:
            result.pop(key, None)
    return result


def field_of(message: str) -> str | None:
    """The form field a validation message names (it starts with the key), if shown."""
    key = message.split(":", 1)[0].strip()
    if key in FIELD_OF_KEY:
        return FIELD_OF_KEY[key]
    key = key.split("[", 1)[0].split(".", 1)[0]
    return key if key in GROUPS and GROUPS[key] == (key,) else FIELD_OF_KEY.get(key)
