"""Platform presets: param names per platform and a ready postback URL template.

A *sender* preset (networks, MMPs) fires postbacks itself: its template carries that
platform's own macros, so the URL is pasted as is into the platform. A *receiver*
preset (trackers, traffic sources) normally receives postbacks: the capture URL
stands in for the receiver while debugging, so the template keeps the receiver's
param names. Trackers' templates use the REPLACE / OPTIONAL fillers (Voluum's
convention) where the upstream network's own macros go; left in, they are flagged
``unreplaced_macro``. See docs/rules.md for the table.

The presets themselves are data (``presets.toml`` beside this module, shipped in
the wheel), so adding a platform is an edit of that file, not of code.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources

from monitor.model.errors import SettingsError
from monitor.rules.macros import find_macro
from monitor.rules.statuses import check_table


@dataclass(frozen=True, slots=True)
class Preset:
    """One platform's param names and postback template (an entry of presets.toml)."""

    key: str
    name: str
    direction: str  # "sender" or "receiver"
    click_id_param: str
    event_param: str | None
    amount_param: str | None
    currency_param: str | None
    required_params: tuple[str, ...]
    template: str  # postback query string, without "?"
    method: str
    notes: str
    # The platform's own test markers where its docs name them: param → values that
    # mark a test postback (rules.test_traffic); empty for most platforms.
    test_markers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Where the platform puts a conversion's status (the first with a known value
    # wins; empty: the common names), and its values that the common vocabulary does
    # not know or reads otherwise (rules/statuses.py), e.g. Affise "3" → rejected.
    status_params: tuple[str, ...] = ()
    statuses: dict[str, str] = field(default_factory=dict)


DIRECTIONS = ("sender", "receiver")
METHODS = ("GET", "POST")
_KEY = re.compile(r"[a-z][a-z0-9_]*")
_TEXT_FIELDS = ("name", "click_id_param", "template", "notes")
_OPTIONAL_FIELDS = ("event_param", "amount_param", "currency_param")


def load_presets(text: str, source: str = "presets.toml") -> dict[str, Preset]:
    """The presets of a TOML document, in file order; ValueError names a bad entry.

    Checked in full when the module is imported, so a typo in the data file stops
    the service (and the tests) at startup rather than surfacing on a request."""
    presets: dict[str, Preset] = {}
    for key, entry in tomllib.loads(text).items():
        where = f"{source}: [{key}]"
        if not _KEY.fullmatch(key) or not isinstance(entry, dict):
            raise ValueError(f"{where}: a preset is a table named by a lowercase key")
        unknown = set(entry) - (set(Preset.__dataclass_fields__) - {"key"})
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        for name in _TEXT_FIELDS:
            if not isinstance(entry.get(name), str):
                raise ValueError(f"{where}: {name} must be a string")
        for name in _OPTIONAL_FIELDS:
            if not isinstance(entry.get(name, ""), str) or entry.get(name) == "":
                raise ValueError(f"{where}: {name} must be a non-empty string or left out")
        required = entry.get("required_params")
        if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
            raise ValueError(f"{where}: required_params must be a list of strings")
        if entry.get("direction") not in DIRECTIONS:
            raise ValueError(f"{where}: direction must be one of {', '.join(DIRECTIONS)}")
        if entry.get("method") not in METHODS:
            raise ValueError(f"{where}: method must be one of {', '.join(METHODS)}")
        markers = entry.get("test_markers", {})
        if not isinstance(markers, dict) or not all(
            isinstance(values, list) and values and all(isinstance(v, str) and v for v in values)
            for values in markers.values()
        ):
            raise ValueError(f"{where}: test_markers maps param names to lists of values")
        status_params = entry.get("status_params", [])
        if not isinstance(status_params, list) or not all(
            isinstance(n, str) and n for n in status_params
        ):
            raise ValueError(f"{where}: status_params must be a list of param names")
        try:
            statuses = check_table("statuses", entry.get("statuses", {}))
        except SettingsError as exc:
            raise ValueError(f"{where}: {exc}") from None
        presets[key] = Preset(
            key=key,
            name=entry["name"],
            direction=entry["direction"],
            click_id_param=entry["click_id_param"],
            event_param=entry.get("event_param"),
            amount_param=entry.get("amount_param"),
            currency_param=entry.get("currency_param"),
            required_params=tuple(required),
            template=entry["template"],
            method=entry["method"],
            notes=entry["notes"],
            test_markers=tuple((param, tuple(values)) for param, values in markers.items()),
            status_params=tuple(status_params),
            statuses=statuses,
        )
    return presets


PRESETS: dict[str, Preset] = load_presets(
    resources.files(__package__).joinpath("presets.toml").read_text(encoding="utf-8")
)


def get_preset(key: str) -> Preset | None:
    return PRESETS.get(key.strip().lower())


def postback_url(preset: Preset | str, capture_url: str) -> str:
    """The capture URL with the preset's postback query appended; KeyError if unknown."""
    if isinstance(preset, str):
        found = get_preset(preset)
        if found is None:
            raise KeyError(preset)
        preset = found
    if not preset.template:
        return capture_url
    base = capture_url.split("#", 1)[0]
    if "?" not in base:
        separator = "?"
    elif base.endswith(("?", "&")):
        separator = ""
    else:
        separator = "&"
    return f"{base}{separator}{preset.template}"


def template_macros(preset: Preset) -> list[str]:
    """The macros (or fillers) the preset's template uses, in order."""
    macros = []
    for part in preset.template.split("&") if preset.template else ():
        value = part.partition("=")[2]
        token = find_macro(value)
        if token is not None:
            macros.append(token)
    return macros


def preset_list() -> list[dict[str, object]]:
    """All presets as JSON-ready dicts for GET /api/presets."""
    listed = []
    for preset in PRESETS.values():
        entry: dict[str, object] = asdict(preset)
        entry["required_params"] = list(preset.required_params)
        entry["status_params"] = list(preset.status_params)
        entry["macros"] = template_macros(preset)
        entry["test_markers"] = {param: list(values) for param, values in preset.test_markers}
        listed.append(entry)
    return listed
