"""Forwarding's pure rules: settings validated and normalised, templates rendered,
backoff with jitter and a cap."""

from __future__ import annotations

import pytest

from monitor.rules import SettingsError
from monitor.rules.forwards import backoff_s, compile_forward, render_template


def test_settings_are_validated_and_normalized() -> None:
    settings, doc = compile_forward({"forward_url": " https://t.example/pb?cid={click_id} "})
    assert settings is not None and settings.mode == "template"
    assert doc == {
        "forward_url": "https://t.example/pb?cid={click_id}",
        "forward_mode": "template",
        "forward_flagged": True,
        "forward_max_attempts": 10,
    }
    assert compile_forward({}) == (None, {})
    for bad, named in [
        ({"forward_mode": "template"}, "forward_mode"),
        ({"forward_url": "ftp://x/"}, "forward_url"),
        ({"forward_url": "https://{host}/pb"}, "host"),
        ({"forward_url": "https://t.example/pb?x={a"}, "forward_url"),
        ({"forward_url": "https://t.example/a b"}, "forward_url"),
        ({"forward_url": "https://t.example/?c={cid}", "forward_mode": "passthrough"}, "template"),
        ({"forward_url": "https://t.example/", "forward_mode": "copy"}, "forward_mode"),
        ({"forward_url": "https://t.example/", "forward_flagged": "no"}, "forward_flagged"),
        ({"forward_url": "https://t.example/", "forward_max_attempts": 0}, "forward_max_attempts"),
    ]:
        with pytest.raises(SettingsError, match=named):
            compile_forward(bad)


def test_template_encodes_values_and_flags_unknown_names() -> None:
    url, flags = render_template(
        "https://t.example/pb?cid={click_id}&p={payout}&x={nope}&y={nope}",
        [("click_id", "a b&c=d/é"), ("payout", "1.50"), ("click_id", "second")],
    )
    assert url == "https://t.example/pb?cid=a%20b%26c%3Dd%2F%C3%A9&p=1.50&x=&y="
    assert [(f["flag"], f["param"]) for f in flags] == [("unknown_template_param", "nope")]


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    assert [backoff_s(n, 1.0, 100.0, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert [backoff_s(n, 1.0, 100.0, rand=lambda: 0.0) for n in (1, 2, 3)] == [0.5, 1, 2]
    assert backoff_s(50, 1.0, 100.0, rand=lambda: 1.0) == 100.0
