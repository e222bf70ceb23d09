"""Test and ping postbacks: which hits are a platform's test, not a conversion.

Trackers and networks fire test postbacks while a campaign is set up (Keitaro
``status=test`` / ``ping``, ClickBank's TEST transactions, CAKE ``ckm_test=1``,
a generic ``test=1``), and users fire their own from a known click id or office
network. Such a hit is stored and shown like any other, flagged ``test_traffic``,
but it is not a conversion: the writer keeps it out of the duplicate ledger (a test
must not become the original a real conversion is then a duplicate of), and stats,
alert metrics and reconciliation leave it out. docs/rules.md lists the markers and
where each is documented.

Split like the rest of the rules: ``compile_test_traffic`` checks the endpoint's
``test_traffic`` setting once; ``test_flag`` runs per hit inside ``judge``, a few
dict lookups and no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.model.errors import SettingsError
from monitor.model.verdict import TEST_TRAFFIC, Flag, clip, make_flag
from monitor.rules.networks import IPNetwork, network_of, parse_address, parse_networks

TEST_TRAFFIC_KEYS = ("click_ids", "ip_ranges", "off")
MAX_TEST_CLICK_IDS = 1000
MAX_TEST_IP_RANGES = 1000
MAX_CLICK_ID_CHARS = 256
# What every test_traffic message ends with: why the flag matters.
LEFT_OUT = "it is stored, but left out of duplicates, stats, alert metrics and reconciliation."


@dataclass(frozen=True, slots=True)
class Marker:
    """A param whose value marks a test: one of ``values``, or starting with ``prefix``
    (both lower case; the sent value is trimmed and compared without regard to case)."""

    param: str
    values: frozenset[str]
    prefix: str | None
    source: str  # who documents it: a platform name, or "common"

    def matches(self, value: str) -> bool:
        lowered = value.lower()
        if self.prefix is not None and lowered.startswith(self.prefix):
            return True
        return lowered in self.values


# Checked on every endpoint: each param name here carries a test marker on the
# platform named, and none of these values is a real conversion anywhere else.
COMMON_MARKERS = (
    # Keitaro's postback docs: ignore_status=ping,test (statuses a tracker ignores).
    Marker("status", frozenset({"test", "ping"}), None, "Keitaro"),
    # ClickBank INS: transactionType TEST, TEST_SALE, TEST_BILL, TEST_RFND.
    Marker("transactionType", frozenset(), "test", "ClickBank"),
    # CAKE posting document: "ckm_test=1" marks a test lead.
    Marker("ckm_test", frozenset({"1"}), None, "CAKE"),
    Marker("test", frozenset({"1", "true", "yes"}), None, "common"),
    Marker("is_test", frozenset({"1", "true"}), None, "common"),
)


@dataclass(frozen=True, slots=True)
class TestTraffic:
    """An endpoint's test-traffic rule, compiled: what ``test_flag`` needs per hit."""

    __test__ = False  # not a pytest test class, whatever its name says

    off: bool = False
    markers: tuple[Marker, ...] = COMMON_MARKERS
    click_ids: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()


def preset_markers(name: str, markers: Iterable[tuple[str, Iterable[str]]]) -> list[Marker]:
    """A preset's own markers (presets.toml ``test_markers``) as Marker objects."""
    return [
        Marker(param, frozenset(v.strip().lower() for v in values), None, name)
        for param, values in markers
    ]


def compile_test_traffic(
    value: Any, extra_markers: Iterable[Marker] = ()
) -> tuple[TestTraffic, dict[str, Any] | None]:
    """The ``test_traffic`` setting checked and compiled, with its normalized document
    (None when not set); SettingsError names the bad key."""
    markers = list(COMMON_MARKERS)
    for marker in extra_markers:
        if marker not in markers:
            markers.append(marker)
    if value is None:
        return TestTraffic(markers=tuple(markers)), None
    if not isinstance(value, Mapping):
        raise SettingsError(
            'test_traffic: must be an object like {"click_ids": ["test-1"], '
            '"ip_ranges": ["203.0.113.0/24"], "off": false}'
        )
    for key in value:
        if key not in TEST_TRAFFIC_KEYS:
            close = difflib.get_close_matches(str(key), TEST_TRAFFIC_KEYS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            known = ", ".join(TEST_TRAFFIC_KEYS)
            raise SettingsError(f"test_traffic.{key}: unknown setting{hint} (known: {known})")
    normalized: dict[str, Any] = {}
    off = False
    if value.get("off") is not None:
        off = value["off"]
        if not isinstance(off, bool):
            raise SettingsError("test_traffic.off: true or false")
        normalized["off"] = off
    click_ids: list[str] = []
    if value.get("click_ids") is not None:
        click_ids = _click_ids(value["click_ids"])
        normalized["click_ids"] = click_ids
    networks: tuple[IPNetwork, ...] = ()
    if value.get("ip_ranges") is not None:
        ranges = value["ip_ranges"]
        networks = parse_networks("test_traffic.ip_ranges", ranges, MAX_TEST_IP_RANGES)
        normalized["ip_ranges"] = [item.strip() for item in ranges]
    compiled = TestTraffic(
        off=off, markers=tuple(markers), click_ids=frozenset(click_ids), networks=networks
    )
    return compiled, normalized


def _click_ids(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise SettingsError("test_traffic.click_ids: must be a list of click ids")
    if len(value) > MAX_TEST_CLICK_IDS:
        raise SettingsError(f"test_traffic.click_ids: at most {MAX_TEST_CLICK_IDS} click ids")
    found: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise SettingsError(f"test_traffic.click_ids[{index}]: must be a non-empty string")
        if len(item.strip()) > MAX_CLICK_ID_CHARS:
            raise SettingsError(
                f"test_traffic.click_ids[{index}]: longer than {MAX_CLICK_ID_CHARS} characters"
            )
        found.append(item.strip())
    return list(dict.fromkeys(found))


def judge_test_traffic(
    rules: TestTraffic,
    values: Mapping[str, str],
    click_id: str,
    click_id_param: str | None,
    remote_ip: str | None,
) -> Flag | None:
    """The hit's ``test_traffic`` flag, or None; one flag per hit, the first reason
    found: a marker param, a test click id, then a test IP range. ``values`` are the
    hit's trimmed params, first occurrence of each name (as judge reads them)."""
    if rules.off:
        return None
    for marker in rules.markers:
        value = values.get(marker.param)
        if value and marker.matches(value):
            who = "a common test marker" if marker.source == "common" else marker.source
            return make_flag(
                TEST_TRAFFIC,
                marker.param,
                value,
                f'Parameter {marker.param} is "{clip(value)}", which marks a test postback '
                f"({who}): {LEFT_OUT}",
                source=marker.source,
            )
    if click_id and click_id in rules.click_ids:
        return make_flag(
            TEST_TRAFFIC,
            click_id_param,
            click_id,
            f'Click id "{clip(click_id)}" is one of this endpoint\'s test click ids '
            f"(test_traffic.click_ids): {LEFT_OUT}",
            source="test_traffic.click_ids",
        )
    if rules.networks:
        address = parse_address(remote_ip)
        network = None if address is None else network_of(address, rules.networks)
        if network is not None:
            return make_flag(
                TEST_TRAFFIC,
                None,
                str(address),
                f"The request came from {address}, in this endpoint's test IP range "
                f"{network} (test_traffic.ip_ranges): {LEFT_OUT}",
                source="test_traffic.ip_ranges",
                network=str(network),
            )
    return None
