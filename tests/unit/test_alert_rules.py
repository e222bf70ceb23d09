"""The alerts setting and the pure decision: fire, resolve, remind or nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.rules import SettingsError
from monitor.rules.alerts import (
    AlertSettings,
    Figures,
    Firing,
    compile_alerts,
    decide,
    human,
    stale,
)
from monitor.rules.endpoint_settings import compile_endpoint_settings

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_good_settings_are_normalized_and_absent_means_none() -> None:
    settings, doc = compile_alerts(
        {
            "channel_ids": [3, 1, 3],
            "silence_after_s": "2m",
            "flagged_share_above": 0.5,
            "duplicate_share_above": 1,
            "window_s": 600,
            "min_hits": 1,
            "forwards_given_up": True,
            "missing_postbacks_above": 0,
            "reminder_s": 60,
        }
    )
    assert settings == AlertSettings(
        channel_ids=(3, 1), silence_after_s=120.0, flagged_share_above=0.5,
        duplicate_share_above=1.0, window_s=600.0, min_hits=1, forwards_given_up=True,
        missing_postbacks_above=0, reminder_s=60.0,
    )  # fmt: skip
    assert settings.conditions == (
        "silence", "flagged_share", "duplicate_share", "forwards_given_up", "missing_postbacks",
    )  # fmt: skip
    assert doc is not None and doc["channel_ids"] == [3, 1] and doc["silence_after_s"] == "2m"
    assert compile_alerts(None) == (None, None)
    settings, doc = compile_alerts({"silence_after_s": 1, "reminder_s": None})
    assert settings is not None and settings.conditions == ("silence",) and not settings.channel_ids
    assert doc == {"silence_after_s": 1}
    assert compile_alerts({})[0] == AlertSettings()
    compiled = compile_endpoint_settings({"alerts": {"silence_after_s": 2}})
    assert compiled.alerts is not None and compiled.alerts.silence_after_s == 2.0
    assert compiled.document["alerts"] == {"silence_after_s": 2}
    assert compile_endpoint_settings({}).alerts is None


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ([], "alerts"),
        ({"silence_after": 5}, "alerts.silence_after"),
        ({"channel_ids": 1}, "alerts.channel_ids"),
        ({"channel_ids": ["1"]}, "alerts.channel_ids"),
        ({"channel_ids": [0]}, "alerts.channel_ids"),
        ({"channel_ids": [True]}, "alerts.channel_ids"),
        ({"silence_after_s": 0}, "alerts.silence_after_s"),
        ({"silence_after_s": 0.5}, "alerts.silence_after_s"),
        ({"silence_after_s": "3651d"}, "alerts.silence_after_s"),
        ({"silence_after_s": "soon"}, "alerts.silence_after_s"),
        ({"flagged_share_above": 0}, "alerts.flagged_share_above"),
        ({"flagged_share_above": 1.5}, "alerts.flagged_share_above"),
        ({"duplicate_share_above": "50%"}, "alerts.duplicate_share_above"),
        ({"duplicate_share_above": True}, "alerts.duplicate_share_above"),
        ({"window_s": 0}, "alerts.window_s"),
        ({"min_hits": 0}, "alerts.min_hits"),
        ({"min_hits": 2.5}, "alerts.min_hits"),
        ({"forwards_given_up": "yes"}, "alerts.forwards_given_up"),
        ({"missing_postbacks_above": -1}, "alerts.missing_postbacks_above"),
        ({"reminder_s": 59}, "alerts.reminder_s"),
    ],
)
def test_bad_settings_name_the_key(value: Any, named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        compile_endpoint_settings({"alerts": value})
    assert str(caught.value).startswith(f"{named}:"), caught.value


SILENCE = AlertSettings(silence_after_s=120)
SHARES = AlertSettings(flagged_share_above=0.5, duplicate_share_above=0.2, min_hits=10)
REMINDING = AlertSettings(silence_after_s=120, reminder_s=600)
NEVER_HIT = Figures(created_at=ago(180))
HIT_NOW = Figures(created_at=ago(900), last_hit_at=ago(5))
OPEN = Firing(1, 7, "silence", ago(60), ago(60))
NO = (None, None)
OPEN_LONG = Firing(1, 7, "silence", ago(3600), ago(700))


@pytest.mark.parametrize(
    ("condition", "settings", "figures", "firing", "action", "words"),
    [
        ("silence", SILENCE, NEVER_HIT, None, "fire", "never received one since it was created"),
        ("silence", SILENCE, NEVER_HIT, OPEN, None, None),
        ("silence", SILENCE, Figures(ago(900), ago(60)), None, None, None),
        ("silence", SILENCE, Figures(ago(900), ago(130)), None, "fire", "last one arrived 2 min"),
        ("silence", SILENCE, HIT_NOW, OPEN, "resolve", "Resolved"),
        ("silence", SILENCE, NEVER_HIT, OPEN_LONG, None, None),
        ("silence", REMINDING, NEVER_HIT, OPEN_LONG, "remind", "Still firing (for 1 h)"),
        ("silence", REMINDING, NEVER_HIT, OPEN, None, None),
        ("silence", REMINDING, HIT_NOW, OPEN_LONG, "resolve", "Resolved"),
        ("flagged_share", SHARES, Figures(NOW, hits=10, flagged=6), None, "fire", "60% of the 10"),
        ("flagged_share", SHARES, Figures(NOW, hits=10, flagged=5), None, None, None),
        ("flagged_share", SHARES, Figures(NOW, hits=9, flagged=9), None, None, None),
        ("flagged_share", SHARES, Figures(NOW, hits=9, flagged=9), OPEN, "resolve", "at least 10"),
        ("duplicate_share", SHARES, Figures(NOW, hits=20, duplicates=5), None, "fire", "25%"),
        ("duplicate_share", SHARES, Figures(NOW, hits=20, duplicates=4), OPEN, "resolve", "20%"),
        ("forwards_given_up", SHARES, Figures(NOW, given_up=2), None, "fire", "2 forwards"),
        ("forwards_given_up", SHARES, Figures(NOW, given_up=0), OPEN, "resolve", "No forward"),
        ("forwards_given_up", SHARES, Figures(NOW, given_up=0), None, None, None),
        (
            "missing_postbacks",
            AlertSettings(missing_postbacks_above=3),
            Figures(NOW, run_id=4, missing=4),
            None,
            "fire",
            "run 4 found 4 missing",
        ),
        (
            "missing_postbacks",
            AlertSettings(missing_postbacks_above=3),
            Figures(NOW, run_id=5, missing=3),
            OPEN,
            "resolve",
            "run 5 found 3",
        ),
        ("missing_postbacks", AlertSettings(missing_postbacks_above=0), Figures(NOW), None, *NO),
    ],
)
def test_decision_table(
    condition: str,
    settings: AlertSettings,
    figures: Figures,
    firing: Firing | None,
    action: str | None,
    words: str | None,
) -> None:
    got = decide(condition, settings, figures, firing, NOW)
    if action is None:
        assert got is None
        return
    assert got is not None and got.action == action
    assert words is not None and words in got.sentence, got.sentence


def test_the_silence_sentence_reads_as_documented() -> None:
    got = decide("silence", SILENCE, NEVER_HIT, None, NOW)
    assert got is not None
    assert got.sentence == (
        "No postbacks for 3 min (alert after 2 min); never received one since it was "
        "created 3 min ago."
    )
    assert got.check.value == 180 and got.check.threshold == 120


def test_stale_alerts_are_those_no_longer_watched() -> None:
    shares = Firing(2, 7, "flagged_share", ago(10), ago(10))
    assert stale(SILENCE, [OPEN, shares]) == [shares]
    assert stale(None, [OPEN]) == [OPEN]
    assert stale(AlertSettings(), [OPEN]) == [OPEN]


def test_human_durations() -> None:
    assert [human(s) for s in (0, 59, 60, 3599, 3600, 86400 * 2)] == [
        "0 s", "59 s", "1 min", "59 min", "1 h", "2 d",
    ]  # fmt: skip
