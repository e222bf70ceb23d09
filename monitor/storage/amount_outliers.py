"""``amount_outlier`` in the writer: each process's recent amounts, seeded from ``hits``.

The flag is advisory, so unlike duplicates it is not settled by the database: a
shared, ordered answer would cost a round trip and a lock on every batch for a hint.
Each process keeps, per (endpoint, event, currency), the last ``window`` amounts it
knows (``rules.outliers.AmountSample``) and judges a batch's hits against them
before the COPY, so the flag is stored with the hit. An endpoint's samples are
seeded lazily, on its first batch in this process, by one query for the newest
amounts per event and currency; after that a committed batch adds its own amounts
(never a failed one, so a retried or spooled batch is not counted twice). Hits of
other processes reach a process's samples only through its next restart's seed:
exact arrival order across processes does not matter for a median of hundreds.

Only non-negative amounts of hits that are no test take part: a refund's negative
amount is no payout to compare (``negative_amount`` judges its sign), and an
invalid amount is no amount (``Verdict.amount`` is None).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

import asyncpg

from monitor.model.hit import Hit
from monitor.rules.outliers import AmountOutlierRule, AmountSample, outlier_flag

if TYPE_CHECKING:  # the cache's own imports reach the writer: a type is all we need
    from monitor.storage.endpoint_cache import EndpointCache

# The newest amounts per event and currency, read from the endpoint's newest
# SEED_SCAN_HITS hits (index hits_endpoint_newest), oldest first: a bounded read
# however many hits the endpoint has.
SEED = """
SELECT event, currency, amount FROM (
    SELECT event, currency, amount, received_at, id, row_number() OVER (
        PARTITION BY event, currency ORDER BY received_at DESC, id DESC) AS n
    FROM (SELECT event, currency, amount, received_at, id FROM hits
          WHERE endpoint_id = $1 AND amount >= 0 AND NOT is_test
          ORDER BY received_at DESC, id DESC LIMIT $3) newest
) ranked
WHERE n <= $2
ORDER BY received_at, id
"""
SEED_SCAN_HITS = 20000
# Events and currencies come from the sender: past this many (event, currency)
# pairs an endpoint's new pairs are not tracked, so memory stays bounded.
MAX_KEYS_PER_ENDPOINT = 200

Key = tuple[str, str]
RuleOf = Callable[[int], AmountOutlierRule | None]


def rule_from_cache(cache: EndpointCache) -> RuleOf:
    """An endpoint's amount_outlier rule as this process's cache knows it (None: off,
    or an endpoint not in the cache, such as one deleted since its hits were queued)."""

    def rule_of(endpoint_id: int) -> AmountOutlierRule | None:
        endpoint = cache.by_id(endpoint_id)
        return None if endpoint is None else endpoint.rules.amount_outlier

    return rule_of


class AmountOutliers:
    """Per-process amount samples; ``judge`` runs in the writer's batch transaction."""

    def __init__(
        self,
        rule_of: RuleOf,
        *,
        max_keys_per_endpoint: int = MAX_KEYS_PER_ENDPOINT,
        seed_scan_hits: int = SEED_SCAN_HITS,
    ) -> None:
        # The endpoint's compiled rule (None: off, or the endpoint is unknown here).
        self._rule_of = rule_of
        self.max_keys_per_endpoint = max_keys_per_endpoint
        self.seed_scan_hits = seed_scan_hits
        self._samples: dict[int, dict[Key, AmountSample]] = {}
        self._seeding: set[int] = set()

    def forget(self, endpoint_id: int) -> None:
        """Drop an endpoint's samples (deleted or cleared): the next batch seeds anew."""
        self._samples.pop(endpoint_id, None)

    def sample(
        self, endpoint_id: int, event: str | None, currency: str | None
    ) -> AmountSample | None:
        return self._samples.get(endpoint_id, {}).get((event or "", currency or ""))

    async def judge(
        self, conn: asyncpg.Connection, hits: Sequence[Hit]
    ) -> Callable[[], None] | None:
        """Set ``hit.outlier`` on each hit far from its recent amounts; the callback to
        run once the batch has committed, which adds the batch's amounts."""
        todo: list[tuple[Hit, AmountOutlierRule, Decimal]] = []
        for hit in hits:
            hit.outlier = None
            amount = hit.verdict.amount
            if amount is None or amount < 0 or hit.is_test:
                continue
            rule = self._rule_of(hit.endpoint_id)
            if rule is not None:
                todo.append((hit, rule, amount))
        if not todo:
            return None
        unseeded = {hit.endpoint_id: rule for hit, rule, _ in todo}
        for endpoint_id in sorted(unseeded):
            if endpoint_id not in self._samples and endpoint_id not in self._seeding:
                await self._seed(conn, endpoint_id, unseeded[endpoint_id].window)
        added: list[tuple[int, Key, int, Decimal]] = []
        for hit, rule, amount in todo:
            by_key = self._samples.get(hit.endpoint_id)
            if by_key is None:  # another batch is seeding it: judged from the next one
                continue
            verdict = hit.verdict
            key = (verdict.event or "", verdict.currency or "")
            sample = by_key.get(key)
            if sample is not None:
                if sample.window != rule.window:
                    sample = by_key[key] = sample.resized(rule.window)
                hit.outlier = outlier_flag(
                    sample, rule, amount, verdict.currency, verdict.event, verdict.amount_param
                )
            added.append((hit.endpoint_id, key, rule.window, amount))
        return lambda: self._remember(added)

    async def _seed(self, conn: asyncpg.Connection, endpoint_id: int, window: int) -> None:
        self._seeding.add(endpoint_id)
        try:
            rows = await conn.fetch(SEED, endpoint_id, window, self.seed_scan_hits)
        finally:
            self._seeding.discard(endpoint_id)
        by_key: dict[Key, AmountSample] = {}
        for row in rows:
            key = (row["event"] or "", row["currency"] or "")
            sample = by_key.get(key)
            if sample is None:
                if len(by_key) >= self.max_keys_per_endpoint:
                    continue
                sample = by_key[key] = AmountSample(window)
            sample.add(row["amount"])
        self._samples[endpoint_id] = by_key

    def _remember(self, added: list[tuple[int, Key, int, Decimal]]) -> None:
        for endpoint_id, key, window, amount in added:
            by_key = self._samples.get(endpoint_id)
            if by_key is None:
                continue
            sample = by_key.get(key)
            if sample is None:
                if len(by_key) >= self.max_keys_per_endpoint:
                    continue
                sample = by_key[key] = AmountSample(window)
            sample.add(amount)
