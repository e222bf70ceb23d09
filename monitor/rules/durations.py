"""Durations in settings documents: seconds as a number, or a string such as "90s",
"30m", "24h", "7d".

The dedupe window and the expected interval between hits take the same form, so a
user learns it once; the canonical form (what is stored) keeps the user's unit.
"""

from __future__ import annotations

import math
import re
from typing import Any

from monitor.model.errors import SettingsError

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
FORMS = 'seconds (a number) or a string like "90s", "30m", "24h", "7d"'


def parse_duration(
    name: str, value: Any, *, min_s: float, max_s: float, below: str, above: str
) -> tuple[float, float | str]:
    """(seconds, canonical form); SettingsError naming ``name`` otherwise.

    A duration is never zero, so ``min_s`` = 0 still refuses 0; ``below`` and
    ``above`` say what the user should give instead.
    """
    canonical: float | str
    if isinstance(value, bool):
        raise SettingsError(f"{name}: must be {FORMS}")
    if isinstance(value, int | float):
        seconds, canonical = float(value), value
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value.strip().lower())
        if match is None:
            raise SettingsError(f"{name}: must be {FORMS}")
        seconds = float(match[1]) * _UNIT_S[match[2]]
        canonical = f"{match[1]}{match[2]}"
    else:
        raise SettingsError(f"{name}: must be {FORMS}")
    if (not math.isfinite(seconds) and seconds > 0) or seconds > max_s:
        raise SettingsError(f"{name}: {above}")
    if not math.isfinite(seconds) or seconds <= 0 or seconds < min_s:
        raise SettingsError(f"{name}: {below}")
    return seconds, canonical
