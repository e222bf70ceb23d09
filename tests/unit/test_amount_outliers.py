"""The writer's amount windows without a database: seeding, bounds, what is remembered.

The seed query itself runs against PostgreSQL in tests/integration/test_payouts.py;
here a stand-in connection hands back its rows, so the bookkeeping is checked alone.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from monitor.model.hit import Hit
from monitor.model.verdict import Verdict, make_flag
from monitor.rules.outliers import AmountOutlierRule
from monitor.storage.amount_outliers import AmountOutliers


class SeedRows:
    """A connection whose only query is the seed; counts how often it is asked."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.queries = 0

    async def fetch(self, _sql: str, *_args: Any) -> list[dict[str, Any]]:
        self.queries += 1
        return self.rows


def hit(amount: str | None, event: str = "sale", currency: str = "USD", **kw: Any) -> Hit:
    verdict = Verdict(
        flags=[],
        event=event,
        currency=currency,
        amount=None if amount is None else Decimal(amount),
        amount_param="payout",
    )
    return Hit(
        id=uuid.uuid4(), endpoint_id=kw.get("endpoint_id", 1), received_at=datetime.now(UTC),
        method="GET", path="/p/x", raw_query=b"", params=[], body_params=[], headers=[],
        content_type="", body=b"", body_size=0, remote_ip=None, user_agent=None,
        verdict=verdict, flags=kw.get("flags", []),
    )  # fmt: skip


def seed(n: int, amount: str = "10", event: str = "sale") -> list[dict[str, Any]]:
    return [{"event": event, "currency": "USD", "amount": Decimal(amount)}] * n


async def test_seeded_once_and_judged_against_committed_amounts_only() -> None:
    rule = AmountOutlierRule(Decimal(10), 5, 50)
    outliers = AmountOutliers(lambda _id: rule)
    conn = SeedRows(seed(5, "10") + seed(5, "11"))
    batch = [hit("10.50"), hit("500"), hit(None), hit("-5")]
    remember = await outliers.judge(conn, batch)  # type: ignore[arg-type]
    assert [h.outlier is not None for h in batch] == [False, True, False, False]
    assert batch[1].outlier is not None and batch[1].outlier["samples"] == 10
    # Not committed yet: the batch's amounts are not in the window.
    sample = outliers.sample(1, "sale", "USD")
    assert sample is not None and len(sample) == 10
    assert remember is not None
    remember()
    assert len(sample) == 12  # 10.50 and 500; no amount and a negative one stay out
    await outliers.judge(conn, [hit("10")])  # type: ignore[arg-type]
    assert conn.queries == 1


async def test_a_batch_that_never_commits_adds_nothing() -> None:
    rule = AmountOutlierRule(Decimal(10), 1, 50)
    outliers = AmountOutliers(lambda _id: rule)
    conn = SeedRows(seed(3))
    for _ in range(3):  # retried: judged afresh each time, never remembered
        await outliers.judge(conn, [hit("10")])  # type: ignore[arg-type]
    sample = outliers.sample(1, "sale", "USD")
    assert sample is not None and len(sample) == 3


async def test_tests_off_endpoints_and_the_key_cap_are_left_out() -> None:
    rule = AmountOutlierRule(Decimal(10), 1, 50)
    outliers = AmountOutliers(lambda e: rule if e == 1 else None, max_keys_per_endpoint=2)
    conn = SeedRows([])
    test = make_flag("test_traffic", "test", "1", "a test")
    batch = [
        hit("10", flags=[test]),
        hit("10", endpoint_id=2),
        hit("10", event="a"),
        hit("10", event="b"),
        hit("10", event="c"),
    ]
    remember = await outliers.judge(conn, batch)  # type: ignore[arg-type]
    assert remember is not None
    remember()
    assert outliers.sample(1, "sale", "USD") is None  # the test hit
    assert outliers.sample(2, "sale", "USD") is None  # off
    assert [outliers.sample(1, e, "USD") is not None for e in "abc"] == [True, True, False]


async def test_a_new_window_keeps_the_newest_amounts() -> None:
    rules = {"now": AmountOutlierRule(Decimal(10), 1, 10)}
    outliers = AmountOutliers(lambda _id: rules["now"])
    await outliers.judge(SeedRows(seed(10)), [hit("10")])  # type: ignore[arg-type]
    rules["now"] = AmountOutlierRule(Decimal(10), 1, 4)
    await outliers.judge(SeedRows([]), [hit("10")])  # type: ignore[arg-type]
    sample = outliers.sample(1, "sale", "USD")
    assert sample is not None and (sample.window, len(sample)) == (4, 4)
    outliers.forget(1)
    assert outliers.sample(1, "sale", "USD") is None
