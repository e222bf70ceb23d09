"""The charts' pure parts: ranges and their UTC buckets, the closed-hour line, the
delay buckets and conversion-time values, the conversion_time_param setting, and the
SVG geometry (a silent bucket has no bar)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from monitor.model.errors import SettingsError
from monitor.rules.charts import (
    DELAY_BUCKETS,
    HOUR,
    RANGES,
    conversion_time,
    delay_bucket,
    delay_histogram,
    floor_time,
    open_from,
)
from monitor.rules.endpoint_settings import compile_endpoint_settings
from monitor.storage.charts import Bucket
from monitor.web.views.charts import hits_chart, nice_ceiling, sparkline

NOW = datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC)


def test_ranges_end_with_the_bucket_now_is_in() -> None:
    minutes = RANGES["1h"].starts(NOW)
    assert len(minutes) == 60 and minutes[-1] == datetime(2026, 3, 1, 12, 34, tzinfo=UTC)
    assert minutes[0] == datetime(2026, 3, 1, 11, 35, tzinfo=UTC)
    hours = RANGES["7d"].starts(NOW)
    assert len(hours) == 168 and hours[-1] == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert hours[0] == datetime(2026, 2, 22, 13, tzinfo=UTC)
    # Another time zone's clock names the same UTC buckets.
    east = NOW.astimezone(ZoneInfo("Asia/Kolkata"))
    assert RANGES["24h"].starts(east) == RANGES["24h"].starts(NOW)


def test_an_hour_is_closed_two_minutes_after_it_ends() -> None:
    eleven, twelve = datetime(2026, 3, 1, 11, tzinfo=UTC), datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert open_from(twelve + timedelta(minutes=1)) == eleven
    assert open_from(twelve + timedelta(minutes=2)) == twelve
    assert floor_time(NOW, HOUR) == datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(-5, "< 1 min"), (0, "< 1 min"), (59.9, "< 1 min"), (60, "1–5 min"), (899, "5–15 min"),
     (3600, "1–6 h"), (86399, "6–24 h"), (86400, "1–7 d"), (7 * 86400, "> 7 d"),
     (400 * 86400, "> 7 d")],
)  # fmt: skip
def test_delay_buckets(seconds: float, label: str) -> None:
    assert DELAY_BUCKETS[delay_bucket(seconds)][0] == label


def test_conversion_time_values() -> None:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert conversion_time(str(int(at.timestamp()))) == at
    assert conversion_time(str(int(at.timestamp() * 1000))) == at
    assert conversion_time("2026-03-01T12:00:00Z") == at
    assert conversion_time("2026-03-01 13:00:00+01:00") == at
    assert conversion_time("2026-03-01 12:00:00") == at  # no zone: UTC
    for junk in ("", "{conversion_time}", "yesterday", "9" * 80, "2026-13-45T99:00"):
        assert conversion_time(junk) is None, junk
    counts, unreadable = delay_histogram(
        [(at, str(int(at.timestamp()) - 30)), (at, "{ts}"), (at, None), (at, "2026-02-20")]
    )
    assert unreadable == 1 and counts[0] == 1 and counts[-1] == 1 and sum(counts) == 2


def test_the_conversion_time_param_setting() -> None:
    settings = compile_endpoint_settings({"conversion_time_param": " conv_ts "})
    assert settings.conversion_time_param == "conv_ts"
    assert settings.document["conversion_time_param"] == "conv_ts"
    assert compile_endpoint_settings({}).conversion_time_param is None
    for bad in ("", "  ", 5, ["a"], "x" * 201):
        with pytest.raises(SettingsError, match="conversion_time_param"):
            compile_endpoint_settings({"conversion_time_param": bad})


def test_bars_leave_silence_as_a_gap_and_stack_flagged_on_clean() -> None:
    starts = RANGES["24h"].starts(NOW)
    buckets = [Bucket(s) for s in starts]
    buckets[3] = Bucket(starts[3], hits=8, flagged=3, by_flag={"unreplaced_macro": 3})
    buckets[5] = Bucket(starts[5], hits=2)
    chart = hits_chart(buckets, "24h")
    assert chart["top"] == 10 and chart["total"] == 10 and chart["silent"] == 22
    row = chart["rows"][3]
    assert row["clean"]["h"] == pytest.approx(50) and row["flagged"]["h"] == pytest.approx(30)
    assert row["flagged"]["y"] + row["flagged"]["h"] == pytest.approx(row["clean"]["y"])
    assert row["flags"] == "unreplaced_macro 3"
    assert chart["rows"][4]["clean"]["h"] == 0 and chart["rows"][4]["flagged"]["h"] == 0
    line = sparkline(buckets)
    assert line["counts"][3] == 8 and line["silent"] == 22
    assert [n for n, bar in zip(line["counts"], line["bars"], strict=True) if bar["h"]] == [8, 2]
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 11, 450)] == [1, 1, 5, 10, 20, 500]


def test_payouts_are_plain_decimal_text() -> None:
    bucket = Bucket(NOW, hits=2, payouts={"USD": Decimal("1E-7"), "EUR": Decimal("1E+2")})
    assert bucket.json()["payouts"] == {"EUR": "100", "USD": "0.0000001"}
    assert bucket.json()["clean"] == 2
