"""Checks shared by the settings sections (``senders``, ``amount_outlier``, ...): one
wording for one mistake, whichever section makes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.model.errors import SettingsError


def whole_number(
    section: str, raw: Mapping[str, Any], key: str, default: int, low: int, high: int
) -> int:
    """``raw[key]`` (``default`` when left out) as a whole number from ``low`` to ``high``;
    a SettingsError naming ``section.key`` otherwise (true and false are no numbers)."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"{section}.{key}: must be a whole number from {low} to {high}")
    return value
