"""Unknown senders (issue #17 item 4): the ``senders`` setting and the pure part.

An endpoint learns who sends to it: source networks (IPv4 /24, IPv6 /48, so a
network's servers in one range count as one sender) and the set of parameter
names its hits carry. Once the learning period is over, a hit from a network
never seen before is ``new_sender`` and a hit with a set of names never seen
before is ``param_shape_changed`` (a network that renamed ``payout`` to
``amount`` overnight). The learning itself is stored by the writer
(``storage.senders``); what a network or a shape is, the setting, and the flags
are plain functions here, tested without a database.

Learning ends at whichever comes first: ``learn_hits`` non-test hits seen, or
``learn_days`` days since the endpoint's first one. A busy endpoint is judged
after its first few dozen hits; a quiet one still starts being judged after a week.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.model.errors import SettingsError
from monitor.model.verdict import Flag, clip, make_flag
from monitor.rules.setting_values import whole_number

SENDERS_KEYS = ("learn_hits", "learn_days", "new_sender", "param_shape_changed")
MAX_LEARN_HITS = 1_000_000
MAX_LEARN_DAYS = 3650
# A shape holds at most this many names (the first in sorted order): a sender that
# puts hundreds of names on the wire still makes one bounded row.
MAX_SHAPE_NAMES = 50
IPV4_PREFIX = 24
IPV6_PREFIX = 48


@dataclass(frozen=True, slots=True)
class SendersRule:
    """An endpoint's ``senders`` setting, compiled (``None`` on Rules: both checks off,
    and nothing is learned)."""

    learn_hits: int = 50
    learn_days: int = 7
    new_sender: bool = True
    param_shape_changed: bool = True


def compile_senders(raw: Any) -> tuple[SendersRule | None, dict[str, Any] | None]:
    """The rule (None when both checks are off) and the normalized document (None when
    left out: the defaults apply)."""
    if raw is None:
        return SendersRule(), None
    if not isinstance(raw, Mapping):
        raise SettingsError(
            'senders: must be an object like {"learn_hits": 50, "new_sender": false}'
        )
    for key in raw:
        if key not in SENDERS_KEYS:
            raise SettingsError(
                f"senders.{key}: unknown setting (known: {', '.join(SENDERS_KEYS)})"
            )
    learn_hits = whole_number("senders", raw, "learn_hits", 50, 0, MAX_LEARN_HITS)
    learn_days = whole_number("senders", raw, "learn_days", 7, 0, MAX_LEARN_DAYS)
    switches = {}
    for key in ("new_sender", "param_shape_changed"):
        value = raw.get(key, True)
        if not isinstance(value, bool):
            raise SettingsError(f"senders.{key}: must be true or false")
        switches[key] = value
    document = {"learn_hits": learn_hits, "learn_days": learn_days, **switches}
    if not any(switches.values()):
        return None, document
    return SendersRule(learn_hits, learn_days, **switches), document


def learning_over(rule: SendersRule, hits_seen: int, days_since_first: float | None) -> bool:
    """Whether the endpoint's learning period has ended (either limit reached)."""
    if hits_seen >= rule.learn_hits:
        return True
    return days_since_first is not None and days_since_first >= rule.learn_days


# Both run for every hit in the writer; a sender posts from a few addresses with a few
# shapes, so remembering the recent answers saves parsing an address (ipaddress is
# pure Python) and hashing the names each time. Pure functions: the cache cannot lie.
@functools.lru_cache(maxsize=4096)
def network_of(address: str | None) -> str | None:
    """The sender network of an address: its /24 (IPv4, IPv4-mapped IPv6 too) or /48
    (IPv6) as CIDR text; None for no address or one that does not parse."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = IPV4_PREFIX if ip.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def param_shape(params: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The sorted set of parameter names (query and body), values ignored, capped at
    MAX_SHAPE_NAMES: an empty value is still the sender's name for the field."""
    return tuple(sorted({name for name, _ in params}))[:MAX_SHAPE_NAMES]


@functools.lru_cache(maxsize=4096)
def shape_hash(names: tuple[str, ...]) -> str:
    """A short stable key for a shape (names cannot contain NUL once stored as text)."""
    return hashlib.sha256("\x00".join(names).encode("utf-8", "surrogatepass")).hexdigest()


def new_sender_flag(network: str, address: str | None) -> Flag:
    return make_flag(
        "new_sender",
        None,
        network,
        f"First hits from network {network}, not seen while this endpoint was learning "
        "its senders: a new server of the network, or someone else. Accept it on the "
        "endpoint's page if it is expected.",
        network=network,
        address=address,
    )


def shape_changed_flag(names: tuple[str, ...], usual: tuple[str, ...] | None) -> Flag:
    """param_shape_changed for a hit whose names ``names`` were never seen before; the
    added and removed names are against the endpoint's most common shape ``usual``."""
    known = set(usual or ())
    added = [name for name in names if name not in known]
    removed = sorted(known - set(names))
    parts = []
    if added:
        parts.append("added " + ", ".join(clip(name) for name in added[:10]))
    if removed:
        parts.append("missing " + ", ".join(clip(name) for name in removed[:10]))
    change = "; ".join(parts) or "a new set of names"
    return make_flag(
        "param_shape_changed",
        added[0] if added else None,
        None,
        f"The parameter names changed from what this endpoint usually receives ({change}): "
        "a renamed field (payout sent as amount) breaks the tracker's mapping.",
        added=[clip(name) for name in added[:MAX_SHAPE_NAMES]],
        removed=[clip(name) for name in removed[:MAX_SHAPE_NAMES]],
    )
