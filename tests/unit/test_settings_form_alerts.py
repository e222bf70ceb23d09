"""The settings form's Alerts fieldset ↔ the ``alerts`` object: percents, durations,
an untouched fieldset left exactly as stored, an emptied one removed."""

from __future__ import annotations

from monitor.web.views.settings_form import apply_form, field_of, field_values

STORED = {
    "preset": "binom",
    "alerts": {"channel_ids": [2, 5], "flagged_share_above": 0.125, "window_s": 3600},
}


def test_stored_alerts_show_as_fields() -> None:
    shown = field_values(STORED)
    assert shown["alert_channel_ids"] == "2,5"
    assert shown["alert_flagged_share"] == "12.5"
    assert shown["alert_window"] == "3600"
    assert shown["alert_silence_after"] == "" and shown["alert_forwards_given_up"] == ""


def test_untouched_fields_keep_the_stored_object_and_edits_rebuild_it() -> None:
    shown = field_values(STORED)
    assert apply_form(STORED, shown) == STORED
    edited = apply_form(
        STORED, {**shown, "alert_silence_after": "90s", "alert_forwards_given_up": "true",
                 "alert_duplicate_share": "5%", "alert_min_hits": "3"},
    )  # fmt: skip
    assert edited["alerts"] == {
        "channel_ids": [2, 5],
        "silence_after_s": "90s",
        "flagged_share_above": 0.125,
        "duplicate_share_above": 0.05,
        "window_s": 3600,
        "min_hits": 3,
        "forwards_given_up": True,
    }
    emptied = {**shown, **{k: "" for k in shown if k.startswith("alert_")}}
    assert "alerts" not in apply_form(STORED, emptied)
    assert (
        apply_form(STORED, {**shown, "alert_flagged_share": "lots"})["alerts"][
            "flagged_share_above"
        ]
        == "lots"
    )  # passed on: the validator refuses it by name


def test_messages_point_at_their_alerts_field() -> None:
    assert field_of("alerts.flagged_share_above: a share above 0") == "alert_flagged_share"
    assert field_of("alerts.reminder_s: at least 60 seconds") == "alert_reminder"
    assert field_of("alerts.channel_ids: no channel with id 9") == "alert_channel_ids"
