"""IP networks in settings: a list of addresses and CIDR networks, checked once.

Two settings take such a list (``allowed_ips``, ``test_traffic.ip_ranges``), so the
parsing and its messages live here, named after the setting that holds the list,
and so does the one membership test the judge runs per hit. Pure, no I/O.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from monitor.model.errors import SettingsError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(setting: str, value: Any, max_entries: int) -> tuple[IPNetwork, ...]:
    """The networks of a list of strings; SettingsError names ``setting[i]``.

    A network with host bits set is refused with the network form as a hint: a
    typo there would silently cover a different range."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SettingsError(f"{setting}: must be a list of IP addresses or CIDR networks")
    if len(value) > max_entries:
        raise SettingsError(f"{setting}: at most {max_entries} entries")
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
                    f"{setting}[{index}]: {text!r} is not an IP address or CIDR network"
                ) from None
            raise SettingsError(
                f"{setting}[{index}]: {text!r} has host bits set; did you mean {loose}?"
            ) from None
    return tuple(networks)


def parse_address(remote_ip: str | None) -> IPAddress | None:
    """The sender's address, IPv4-mapped IPv6 read as IPv4; None if absent or unparsable."""
    if not remote_ip:
        return None
    try:
        address = ipaddress.ip_address(remote_ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def network_of(address: IPAddress, networks: tuple[IPNetwork, ...]) -> IPNetwork | None:
    """The first of ``networks`` holding ``address``, or None."""
    for network in networks:
        if address.version == network.version and address in network:
            return network
    return None
