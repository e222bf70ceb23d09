"""Reading an endpoint's known senders and accepting a new one (sql/014_senders.sql).

The writer learns the rows (``storage.senders``); this is what the API and the
endpoint page read, and the one change a user makes: accepting a network, after
which its hits are no longer ``new_sender``. Hits already flagged keep their flag:
they did come from a network nobody had vouched for yet.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import asyncpg

from monitor.rules.senders import network_of

# Bounded like the writer's per-endpoint caps (MAX_NETWORKS, MAX_SHAPES).
LIST_NETWORKS = """
SELECT network::text AS network, first_seen_at, last_seen_at, hits, user_agent,
    after_learning, accepted, accepted_at
FROM endpoint_senders WHERE endpoint_id = $1
ORDER BY last_seen_at DESC, network LIMIT 1000
"""
LIST_SHAPES = """
SELECT names, first_seen_at, last_seen_at, hits, after_learning
FROM endpoint_param_shapes WHERE endpoint_id = $1
ORDER BY hits DESC, last_seen_at DESC LIMIT 200
"""
ACCEPT = """
UPDATE endpoint_senders SET accepted = true, accepted_at = coalesce(accepted_at, now())
WHERE endpoint_id = $1 AND network = $2::cidr
RETURNING network::text AS network, first_seen_at, last_seen_at, hits, user_agent,
    after_learning, accepted, accepted_at
"""


def network_json(row: Any) -> dict[str, Any]:
    accepted_at = row["accepted_at"]
    return {
        "network": str(ipaddress.ip_network(row["network"], strict=False)),
        "first_seen_at": row["first_seen_at"].isoformat(),
        "last_seen_at": row["last_seen_at"].isoformat(),
        "hits": row["hits"],
        "user_agent": row["user_agent"],
        "after_learning": row["after_learning"],
        "accepted": row["accepted"],
        "accepted_at": None if accepted_at is None else accepted_at.isoformat(),
    }


def shape_json(row: Any) -> dict[str, Any]:
    return {
        "names": list(row["names"]),
        "first_seen_at": row["first_seen_at"].isoformat(),
        "last_seen_at": row["last_seen_at"].isoformat(),
        "hits": row["hits"],
        "after_learning": row["after_learning"],
    }


def parse_network(text: str) -> str | None:
    """A network as the writer keys it: a CIDR or a bare address, narrowed to its /24 or
    /48 (so ``203.0.113.9`` accepts ``203.0.113.0/24``); None when it is neither."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
    return network_of(str(network.network_address))


class SenderStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def list(self, endpoint_id: int) -> dict[str, list[dict[str, Any]]]:
        async with self.pool.acquire() as conn:
            networks = await conn.fetch(LIST_NETWORKS, endpoint_id)
            shapes = await conn.fetch(LIST_SHAPES, endpoint_id)
        return {
            "networks": [network_json(row) for row in networks],
            "shapes": [shape_json(row) for row in shapes],
        }

    async def accept(self, endpoint_id: int, network: str) -> dict[str, Any] | None:
        """The accepted network's row, or None when the endpoint has not seen it."""
        row = await self.pool.fetchrow(ACCEPT, endpoint_id, network)
        return None if row is None else network_json(row)
