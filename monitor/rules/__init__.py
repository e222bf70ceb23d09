"""Rules: pure functions from a hit's params and an endpoint's settings to flags.

The judging is split by when it runs: ``compiler`` validates a settings document
once (``compile_settings`` → ``Rules``), ``judge`` runs on every hit. This module
is the rules' public face, so a caller needs one import whichever half it uses.

Flag, Verdict, make_flag and SettingsError belong to the shared model
(``verdict``, ``domain_errors``); they are re-exported here only for the modules
that still import them from rules, until those import the model themselves.
"""

from __future__ import annotations

from monitor.model.errors import SettingsError
from monitor.model.verdict import Flag, Verdict, make_flag
from monitor.rules.compiler import (
    AMOUNT_NAMES,
    CLICK_ID_NAMES,
    CURRENCY_NAMES,
    EVENT_NAMES,
    SETTINGS_KEYS,
    Rules,
    compile_settings,
)
from monitor.rules.judge import duplicate_flag, judge

__all__ = [
    "AMOUNT_NAMES",
    "CLICK_ID_NAMES",
    "CURRENCY_NAMES",
    "EVENT_NAMES",
    "SETTINGS_KEYS",
    "Flag",
    "Rules",
    "SettingsError",
    "Verdict",
    "compile_settings",
    "duplicate_flag",
    "judge",
    "make_flag",
]
