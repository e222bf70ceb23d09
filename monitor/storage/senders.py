"""``new_sender`` and ``param_shape_changed`` in the writer: learned in the database.

Unlike ``amount_outlier`` (a per-process sample), who sends is learned in tables
(sql/014_senders.sql) upserted in the batch's transaction before the COPY, so the
flags are stored with the hits, the learning survives restarts and every process
shares it. That costs three statements per batch with non-test hits: one reading
each endpoint's learning state, one upsert per table (keys sorted, so concurrent
batches lock rows in one order; a deadlock is retried by the batch anyway).

The decision needs no cache: a network row remembers whether it was first seen after
the endpoint's learning period (``after_learning``, fixed at insert) and whether a
user accepted it, and the upsert returns both for every network in the batch; a hit
is ``new_sender`` while its network is after-learning and not accepted. A shape row's
upsert returns whether this batch inserted it (``xmax = 0``: the row has no updating
transaction), and the first hit with a shape new after learning is
``param_shape_changed``, against the endpoint's most common other shape. A batch is
judged on the learning state before its own hits count. Test hits are left out.

What the database has settled for good, each process remembers (``Known``): an
endpoint whose learning is over, its networks that never flag (learned while
learning, or accepted) and its stored shapes. Rows are only deleted with their
endpoint, a network is never un-accepted and learning never restarts, so this
memory cannot go stale. A batch whose every hit is known asks the database nothing;
only hits with something new (or from a flagged network) take the upserts. Their
hits, newest times and user agents are added up per process and written by
``flush`` in a transaction of its own, off the capture path: upserting the same hot
rows in every batch made each batch wait for the one before it to commit (measured:
the senders step averaged 31 ms of a batch's 70 under wrk at 64 connections). So
the counts and last-seen times on the Senders card trail by up to a flush interval
(and a crash loses that much of them); the flags do not depend on them.

Networks and shapes come from the sender, so each endpoint keeps at most
MAX_NETWORKS and MAX_SHAPES rows: past that, known rows are still counted and hits
from unknown ones still flagged, but no new row is stored.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog

from monitor.model.hit import Hit
from monitor.model.verdict import clip
from monitor.rules.senders import (
    SendersRule,
    learning_over,
    network_of,
    new_sender_flag,
    param_shape,
    shape_changed_flag,
    shape_hash,
)
from monitor.storage.sender_counts import (
    Key,
    Known,
    Learned,
    Seen,
    add_hit,
    count_known_hit,
    merge_counts,
)

if TYPE_CHECKING:  # the cache's own imports reach the writer: a type is all we need
    from monitor.storage.endpoint_cache import EndpointCache

log = structlog.get_logger(__name__)

MAX_NETWORKS = 1000
MAX_SHAPES = 200

STATE = """
SELECT e.id AS endpoint_id,
    coalesce(s.hits, 0) AS hits, s.days, coalesce(s.networks, 0) AS networks,
    (SELECT count(*) FROM endpoint_param_shapes p WHERE p.endpoint_id = e.id) AS shapes
FROM unnest($1::bigint[]) AS e(id)
LEFT JOIN (
    SELECT endpoint_id, sum(hits)::bigint AS hits, count(*) AS networks,
        extract(epoch FROM now() - min(first_seen_at)) / 86400 AS days
    FROM endpoint_senders WHERE endpoint_id = ANY($1::bigint[]) GROUP BY endpoint_id
) s ON s.endpoint_id = e.id
"""

# $8 per row: whether a new row may be inserted (the endpoint is under MAX_NETWORKS);
# rows that may not are only updated when they exist.
UPSERT_NETWORKS = """
WITH batch AS (
    SELECT * FROM unnest($1::bigint[], $2::cidr[], $3::timestamptz[], $4::timestamptz[],
        $5::bigint[], $6::text[], $7::boolean[], $8::boolean[])
        AS b(endpoint_id, network, first_seen_at, last_seen_at, hits, user_agent,
             after_learning, may_insert)
), upserted AS (
    INSERT INTO endpoint_senders AS s (endpoint_id, network, first_seen_at, last_seen_at,
        hits, user_agent, after_learning)
    SELECT endpoint_id, network, first_seen_at, last_seen_at, hits, user_agent, after_learning
    FROM batch WHERE may_insert ORDER BY endpoint_id, network
    ON CONFLICT (endpoint_id, network) DO UPDATE SET
        last_seen_at = greatest(s.last_seen_at, excluded.last_seen_at),
        hits = s.hits + excluded.hits,
        user_agent = coalesce(excluded.user_agent, s.user_agent)
    RETURNING s.endpoint_id, s.network, s.after_learning, s.accepted
), updated AS (
    UPDATE endpoint_senders s SET
        last_seen_at = greatest(s.last_seen_at, b.last_seen_at),
        hits = s.hits + b.hits,
        user_agent = coalesce(b.user_agent, s.user_agent)
    FROM batch b
    WHERE NOT b.may_insert AND s.endpoint_id = b.endpoint_id AND s.network = b.network
    RETURNING s.endpoint_id, s.network, s.after_learning, s.accepted
)
SELECT endpoint_id, network::text AS network, after_learning, accepted FROM upserted
UNION ALL
SELECT endpoint_id, network::text, after_learning, accepted FROM updated
"""

UPSERT_SHAPES = """
WITH batch AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::timestamptz[],
        $5::bigint[], $6::text[], $7::boolean[], $8::boolean[])
        AS b(endpoint_id, shape_hash, first_seen_at, last_seen_at, hits, names,
             after_learning, may_insert)
), upserted AS (
    INSERT INTO endpoint_param_shapes AS p (endpoint_id, shape_hash, names, first_seen_at,
        last_seen_at, hits, after_learning)
    SELECT endpoint_id, shape_hash, ARRAY(SELECT jsonb_array_elements_text(names::jsonb)),
        first_seen_at, last_seen_at, hits, after_learning
    FROM batch WHERE may_insert ORDER BY endpoint_id, shape_hash
    ON CONFLICT (endpoint_id, shape_hash) DO UPDATE SET
        last_seen_at = greatest(p.last_seen_at, excluded.last_seen_at),
        hits = p.hits + excluded.hits
    RETURNING p.endpoint_id, p.shape_hash, p.after_learning, (p.xmax = 0) AS inserted
), updated AS (
    UPDATE endpoint_param_shapes p SET
        last_seen_at = greatest(p.last_seen_at, b.last_seen_at), hits = p.hits + b.hits
    FROM batch b
    WHERE NOT b.may_insert AND p.endpoint_id = b.endpoint_id AND p.shape_hash = b.shape_hash
    RETURNING p.endpoint_id, p.shape_hash, p.after_learning, false AS inserted
)
SELECT * FROM upserted UNION ALL SELECT * FROM updated
"""

# Each endpoint's most common shape other than the batch's new ones.
USUAL_SHAPES = """
SELECT DISTINCT ON (endpoint_id) endpoint_id, names FROM endpoint_param_shapes
WHERE endpoint_id = ANY($1::bigint[]) AND NOT (shape_hash = ANY($2::text[]))
ORDER BY endpoint_id, hits DESC, last_seen_at DESC
"""

# The counts of known networks and shapes, added to their rows by flush.
FLUSH_NETWORK = """
UPDATE endpoint_senders SET last_seen_at = greatest(last_seen_at, $3), hits = hits + $4,
    user_agent = coalesce($5, user_agent)
WHERE endpoint_id = $1 AND network = $2::cidr
"""
FLUSH_SHAPE = """
UPDATE endpoint_param_shapes SET last_seen_at = greatest(last_seen_at, $3), hits = hits + $4
WHERE endpoint_id = $1 AND shape_hash = $2
"""

RuleOf = Callable[[int], SendersRule | None]
# A judged hit: the hit, its endpoint's rule, its network and its shape.
Todo = tuple[Hit, SendersRule, str | None, tuple[str, ...]]


def rule_from_cache(cache: EndpointCache) -> RuleOf:
    """An endpoint's senders rule as this process's cache knows it (None: off or unknown)."""

    def rule_of(endpoint_id: int) -> SendersRule | None:
        endpoint = cache.by_id(endpoint_id)
        return None if endpoint is None else endpoint.rules.senders

    return rule_of


class Senders:
    """Learns and judges senders inside the writer's batch transaction."""

    def __init__(self, rule_of: RuleOf) -> None:
        self._rule_of = rule_of
        self._known: dict[int, Known] = {}
        # Hits of known networks and shapes not yet added to their rows (flush).
        self._unflushed_networks: dict[Key, Seen] = {}
        self._unflushed_shapes: dict[Key, Seen] = {}

    async def judge(self, conn: asyncpg.Connection, hits: Sequence[Hit]) -> Callable[[], None]:
        """Set ``hit.sender_flags``; the callback to run once the batch has committed,
        which remembers what it settled and counts its known hits."""
        learned = Learned()
        unknown: list[Todo] = []
        for hit in hits:
            hit.sender_flags = []
            if hit.is_test:
                continue
            rule = self._rule_of(hit.endpoint_id)
            if rule is None:
                continue
            network = network_of(hit.remote_ip)
            shape = param_shape([*hit.params, *hit.body_params])
            known = self._known.get(hit.endpoint_id)
            digest = shape_hash(shape)
            if (
                known is not None
                and known.learning_over
                and (network is None or network in known.networks)
                and digest in known.shapes
            ):
                count_known_hit(learned, hit, network, digest)  # nothing to flag, nothing to ask
            else:
                unknown.append((hit, rule, network, shape))
        if unknown:
            await self._judge_unknown(conn, unknown, learned)
        return lambda: self._remember(learned)

    async def flush(self, pool: asyncpg.Pool) -> None:
        """Add the counted hits of known networks and shapes to their rows.

        Keys sorted, as the batches' upserts lock them, so the two never deadlock;
        on failure the counts are kept for the next flush.
        """
        networks, self._unflushed_networks = self._unflushed_networks, {}
        shapes, self._unflushed_shapes = self._unflushed_shapes, {}
        if not networks and not shapes:
            return
        try:
            async with pool.acquire() as conn, conn.transaction():
                if networks:
                    await conn.executemany(
                        FLUSH_NETWORK,
                        [(*k, s.last, s.hits, s.extra) for k, s in sorted(networks.items())],
                    )
                if shapes:
                    await conn.executemany(
                        FLUSH_SHAPE, [(*k, s.last, s.hits) for k, s in sorted(shapes.items())]
                    )
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("senders.flush_failed", error=str(exc))
            merge_counts(self._unflushed_networks, networks)
            merge_counts(self._unflushed_shapes, shapes)

    def _remember(self, learned: Learned) -> None:
        for endpoint_id, over in learned.over.items():
            if over:
                self._known.setdefault(endpoint_id, Known()).learning_over = True
        for endpoint_id, network in learned.networks:
            self._known.setdefault(endpoint_id, Known()).networks.add(network)
        for endpoint_id, digest in learned.shapes:
            self._known.setdefault(endpoint_id, Known()).shapes.add(digest)
        merge_counts(self._unflushed_networks, learned.counted_networks)
        merge_counts(self._unflushed_shapes, learned.counted_shapes)

    async def _judge_unknown(
        self, conn: asyncpg.Connection, todo: list[Todo], learned: Learned
    ) -> None:
        """The upserts: learn the hits' networks and shapes, flag what is new."""
        rules = {hit.endpoint_id: rule for hit, rule, _, _ in todo}
        state = {row["endpoint_id"]: row for row in await conn.fetch(STATE, sorted(rules))}
        over = {
            endpoint_id: learning_over(
                rule, state[endpoint_id]["hits"], _days(state[endpoint_id]["days"])
            )
            for endpoint_id, rule in rules.items()
        }
        learned.over = over
        networks: dict[Key, Seen] = {}
        shapes: dict[Key, Seen] = {}
        for hit, _, network, shape in todo:
            if network is not None:
                seen = add_hit(networks, (hit.endpoint_id, network), hit.received_at)
                if hit.user_agent:
                    seen.extra = clip(hit.user_agent)
            add_hit(
                shapes, (hit.endpoint_id, shape_hash(shape)), hit.received_at
            ).extra = json.dumps(shape)
        flagged = await self._networks(conn, networks, over, state, learned)
        first_new = await self._shapes(conn, shapes, over, state, learned)
        for hit, rule, network, shape in todo:
            if rule.new_sender and network is not None:
                if (hit.endpoint_id, network) in flagged:
                    hit.sender_flags.append(new_sender_flag(network, hit.remote_ip))
            key = (hit.endpoint_id, shape_hash(shape))
            if rule.param_shape_changed and key in first_new:
                usual = first_new.pop(key)  # the first hit with the new shape only
                hit.sender_flags.append(shape_changed_flag(shape, usual))

    async def _networks(
        self,
        conn: asyncpg.Connection,
        networks: dict[tuple[int, str], Seen],
        over: dict[int, bool],
        state: dict[int, Any],
        learned: Learned,
    ) -> set[Key]:
        """Upsert the networks; those whose hits are new_sender (unknown ones past the
        cap, after learning, too). Those that never flag go into ``learned``."""
        if not networks:
            return set()
        keys = sorted(networks)
        rows = await conn.fetch(
            UPSERT_NETWORKS,
            *_columns(networks, keys, over),
            [state[e]["networks"] < MAX_NETWORKS for e, _ in keys],
        )
        returned = {(row["endpoint_id"], _cidr(row["network"])): row for row in rows}
        flagged = set()
        for key in keys:
            row = returned.get(key)
            if row is None:
                if over[key[0]]:
                    flagged.add(key)
            elif row["after_learning"] and not row["accepted"]:
                flagged.add(key)
            else:
                learned.networks.add(key)
        return flagged

    async def _shapes(
        self,
        conn: asyncpg.Connection,
        shapes: dict[tuple[int, str], Seen],
        over: dict[int, bool],
        state: dict[int, Any],
        learned: Learned,
    ) -> dict[Key, tuple[str, ...] | None]:
        """Upsert the shapes; the new ones after learning, each with its endpoint's usual
        shape. The stored ones go into ``learned``."""
        keys = sorted(shapes)
        rows = await conn.fetch(
            UPSERT_SHAPES,
            *_columns(shapes, keys, over),
            [state[e]["shapes"] < MAX_SHAPES for e, _ in keys],
        )
        learned.shapes.update((row["endpoint_id"], row["shape_hash"]) for row in rows)
        new = [
            (row["endpoint_id"], row["shape_hash"])
            for row in rows
            if row["inserted"] and row["after_learning"]
        ]
        if not new:
            return {}
        usual_rows = await conn.fetch(
            USUAL_SHAPES, sorted({e for e, _ in new}), [h for _, h in new]
        )
        usual = {row["endpoint_id"]: tuple(row["names"]) for row in usual_rows}
        return {key: usual.get(key[0]) for key in new}


def _columns(seen: dict[Key, Seen], keys: list[Key], over: dict[int, bool]) -> list[list[Any]]:
    return [
        [e for e, _ in keys],
        [k for _, k in keys],
        *([getattr(seen[key], name) for key in keys] for name in ("first", "last", "hits")),
        [seen[key].extra for key in keys],
        [over[e] for e, _ in keys],
    ]


def _days(value: Any) -> float | None:
    return None if value is None else float(value)


def _cidr(text: str) -> str:
    return str(ipaddress.ip_network(text, strict=False))
