"""The click lifecycle decision, pure: sequences of statuses in, flags out."""

from __future__ import annotations

import uuid

import pytest

from monitor.model.verdict import Verdict
from monitor.rules.lifecycle import ClickState, lifecycle_flag, replay, step

# Each case: a click's statuses in arrival order, and the flag each one raises.
SEQUENCES = [
    ("lead sale reversal", [None, None, None]),
    ("lead pending approved", [None, None, None]),
    ("sale rebill rebill", [None, None, None]),
    ("sale approved sale", [None, None, None]),
    ("approved rebill", [None, None]),
    ("reversal", ["orphan_reversal"]),
    ("rejected", ["orphan_reversal"]),
    ("reversal sale", ["orphan_reversal", "conversion_after_reversal"]),
    ("sale reversal approved", [None, None, "conversion_after_reversal"]),
    ("lead rejected sale", [None, None, "conversion_after_reversal"]),
    ("sale reversal reversal", [None, None, None]),
    ("reversal reversal", ["orphan_reversal", "orphan_reversal"]),
    ("approved pending", [None, "status_regression"]),
    ("sale lead", [None, "status_regression"]),
    ("sale pending", [None, "status_regression"]),
    ("approved lead", [None, "status_regression"]),
    ("approved pending pending", [None, "status_regression", None]),
    ("lead sale reversal lead", [None, None, None, "status_regression"]),
    ("rebill reversal", [None, None]),
    ("pending rejected", [None, None]),
    ("rebill lead", [None, None]),
    ("sale reversal rebill", [None, None, None]),
]


@pytest.mark.parametrize(("statuses", "flags"), SEQUENCES, ids=[s for s, _ in SEQUENCES])
def test_sequence(statuses: str, flags: list[str | None]) -> None:
    state = ClickState()
    raised = []
    for status in statuses.split():
        state, flag = step(state, status, uuid.uuid4())
        raised.append(flag)
    assert raised == flags


def test_the_state_keeps_the_first_reversal_and_the_last_ranked_status() -> None:
    ids = [uuid.uuid4() for _ in range(5)]
    state = ClickState()
    for status, hit_id in zip(["lead", "sale", "reversal", "rejected", "rebill"], ids, strict=True):
        state, _ = step(state, status, hit_id)
    assert state == ClickState("sale", ids[1], True, ids[2])


def test_replay_rebuilds_a_state_and_ignores_what_takes_no_part() -> None:
    ids = [uuid.uuid4() for _ in range(4)]
    assert replay([("test", ids[0]), ("lead", ids[1]), ("reversal", ids[2])]) == ClickState(
        "lead", ids[1], True, ids[2]
    )
    assert replay([("test", ids[0])]) == ClickState()
    assert replay([]) == ClickState()


def test_flags_say_what_happened_in_words() -> None:
    first, reversal = uuid.uuid4(), uuid.uuid4()
    verdict = Verdict(
        flags=[], click_id="abc", status="reversal", status_param="transactionType",
        status_value="RFND",
    )  # fmt: skip
    flag = lifecycle_flag("orphan_reversal", verdict, ClickState())
    assert flag["param"] == "transactionType" and flag["value"] == "RFND"
    assert flag["message"] == (
        'Click id "abc" was reversed (transactionType=RFND) with no earlier conversion on '
        "this endpoint: the postback of the conversion itself may have been lost."
    )
    sale = Verdict(
        flags=[], click_id="abc", status="sale", status_param="status", status_value="sale"
    )
    flag = lifecycle_flag("conversion_after_reversal", sale, ClickState(None, None, True, reversal))
    assert flag["reversed_hit_id"] == str(reversal)
    assert f"after it was reversed or rejected by hit {reversal}." in flag["message"]
    pending = Verdict(
        flags=[], click_id="abc", status="pending", status_param="status", status_value="2"
    )
    flag = lifecycle_flag("status_regression", pending, ClickState("approved", first, True, None))
    assert flag["message"] == (
        f'Click id "abc" moved back from approved (hit {first}) to pending (status=2).'
    )
    assert flag["previous_status"] == "approved" and flag["previous_hit_id"] == str(first)


def test_a_spooled_hit_keeps_its_status() -> None:
    from datetime import UTC, datetime

    from monitor.storage.spool import decode, encode
    from tests.helpers.hits import judged_hit

    now = datetime.now(UTC)
    hit = judged_hit(1, {"preset": "affise"}, "click_id=a&goal=1&status=3", now)
    again = decode(encode(hit)[8:])
    assert (again.verdict.status, again.verdict.status_param, again.verdict.status_value) == (
        "rejected", "status", "3",
    )  # fmt: skip
    assert again.verdict.status_tracked and again.verdict.dedupe_key == ("a", "1|3")
    plain = decode(encode(judged_hit(1, {}, "click_id=b", now))[8:])
    assert plain.verdict.status is None and not plain.verdict.status_tracked
