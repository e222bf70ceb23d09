"""The settings form's fields ↔ the settings document (monitor/web/views/settings_form.py),
and the settings reference's Markdown subset (monitor/web/views/reference.py)."""

from __future__ import annotations

from typing import Any

from monitor.rules.endpoint_settings import compile_endpoint_settings
from monitor.web.views import reference, settings_form
from monitor.web.views.settings_form import apply_form, field_of, field_values

STORED: dict[str, Any] = {
    "preset": "voluum",
    "required_params": [],
    "dedupe": {"scope": "click_id", "window": 86400},
    "allowed_ips": ["198.51.100.0/24", "192.0.2.7"],
    "secret": {"value": "s3cr3t", "header": "X-Secret"},
    "rate_limit_per_s": 5,
    "retention_days": 30,
    "forward_url": "https://t.example/pb?c={cid}",
    "forward_flagged": False,
}


def posted(settings: dict[str, Any], **changes: str) -> dict[str, str]:
    """What a browser posts for the stored document, with some fields edited."""
    return {**field_values(settings), **changes}


def test_an_untouched_form_changes_nothing() -> None:
    assert apply_form(STORED, posted(STORED)) == STORED
    # Textareas come back with CRLF line breaks.
    crlf = posted(STORED, allowed_ips="198.51.100.0/24\r\n192.0.2.7")
    assert apply_form(STORED, crlf) == STORED
    # A field the request does not carry at all is left alone.
    assert apply_form(STORED, {"click_id_param": "cid"}) == {**STORED, "click_id_param": "cid"}
    assert apply_form(STORED, {}) == STORED
    # Emptying the forward URL stops forwarding: its other keys go with it.
    assert apply_form(STORED, {"forward_url": ""}) == {
        k: v for k, v in STORED.items() if not k.startswith("forward_")
    }


def test_edited_fields_set_their_keys_and_empty_ones_remove_them() -> None:
    form = posted(
        STORED,
        preset="",
        required_params="cid, payout  sub1",
        click_id_param=" cid ",
        dedupe_window="",
        dedupe_scope="",
        allowed_ips="",
        secret_value="",
        secret_name="",
        expected_interval="6h",
        forward_mode="template",
        forward_flagged="",
        forward_max_attempts="3",
    )
    result = apply_form(STORED, form)
    assert result == {
        "required_params": ["cid", "payout", "sub1"],
        "click_id_param": "cid",
        "rate_limit_per_s": 5,  # keys the form does not show are kept
        "retention_days": 30,
        "forward_url": "https://t.example/pb?c={cid}",
        "expected_interval": "6h",
        "forward_mode": "template",
        "forward_max_attempts": 3,
    }
    compile_endpoint_settings(result)  # a valid document


def test_groups_and_conversions() -> None:
    form = posted({}, dedupe_window="90", secret_value="k", secret_in="param", secret_name="tok")
    assert apply_form({}, form) == {
        "dedupe": {"window": 90},
        "secret": {"value": "k", "param": "tok"},
    }
    form = posted({}, dedupe_scope="off", expected_interval="off", forward_flagged="false")
    assert apply_form({}, form) == {
        "dedupe": {"scope": "off"},
        "expected_interval": "off",
        "forward_flagged": False,
    }
    # What the validator must refuse reaches it as typed, so its message is the API's.
    form = posted({}, forward_max_attempts="0", expected_interval="0", dedupe_window="soon")
    assert apply_form({}, form) == {
        "forward_max_attempts": 0,
        "expected_interval": 0,
        "dedupe": {"window": "soon"},
    }


def test_messages_point_at_their_field() -> None:
    assert field_of("dedupe.window: must be seconds") == "dedupe_window"
    assert field_of("secret.value: must be a non-empty string") == "secret_value"
    assert field_of("allowed_ips: 10.0.0.1/8 has host bits set") == "allowed_ips"
    assert field_of("forward_url: an http or https URL") == "forward_url"
    assert field_of("clickid_param: unknown setting") is None
    assert set(settings_form.FIELDS) <= set(field_values({}))


def test_reference_renders_the_markdown_subset_escaped() -> None:
    html = str(
        reference.render_markdown(
            "# Title <b>\n\ntext with `<code>` and **bold**\n\n"
            "- one\n  - nested\n- two\n\n| a | b |\n| --- | --- |\n| `x|y` | 1<br>2 |\n"
        )
    )
    assert '<h1 id="title-b">Title &lt;b&gt;</h1>' in html
    assert "<code>&lt;code&gt;</code>" in html
    assert "<strong>bold</strong>" in html
    assert "<li>one\n<ul>\n<li>nested\n</li>\n</ul>\n</li>" in html
    assert "<td><code>x|y</code></td><td>1<br>2</td>" in html
    shipped = str(reference.rules_html())
    assert 'id="settings-document"' in shipped
    assert 'id="operational-keys"' in shipped
