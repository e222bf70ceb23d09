"""`hits tail` output: flags in words, colour only on a terminal."""

from __future__ import annotations

from typing import Any

from monitor.tail import RED, RESET, format_hit

HIT: dict[str, Any] = {
    "received_at": "2026-01-10T12:00:00.123000+00:00",
    "method": "GET",
    "remote_ip": "203.0.113.10",
    "params": [["cid", "{clickid}"], ["payout", "1,50"]],
    "body_params": [],
    "flags": [
        {
            "flag": "unreplaced_macro",
            "param": "cid",
            "value": "{clickid}",
            "message": "Parameter cid still holds the placeholder {clickid}, so the sender "
            "did not replace it with a real value.",
        },
        {
            "flag": "invalid_amount",
            "param": "payout",
            "value": "1,50",
            "message": 'Amount parameter payout is "1,50", which is not a plain non-negative '
            "decimal like 12 or 1.50.",
        },
    ],
}


def test_flags_named_and_explained_without_colour() -> None:
    first, macro, amount = format_hit(HIT, colour=False).split("\n")
    assert first.endswith("cid={clickid} payout=1,50  [unreplaced_macro, invalid_amount]")
    assert macro == f"    ! unreplaced_macro: {HIT['flags'][0]['message']}"
    assert amount.startswith("    ! invalid_amount: Amount parameter payout")
    assert "\033" not in format_hit(HIT, colour=False)


def test_flags_red_on_a_terminal() -> None:
    text = format_hit(HIT, colour=True)
    assert f"{RED}  [unreplaced_macro, invalid_amount]{RESET}" in text
    assert f"{RED}    ! invalid_amount:" in text


def test_clean_hit_is_one_line() -> None:
    assert "\n" not in format_hit({**HIT, "flags": []}, colour=True)


def test_sender_data_cannot_drive_the_terminal() -> None:
    hit = {**HIT, "params": [["cid", "x\x1b]0;owned\x07\r\nfake line"]]}
    hit["flags"] = [{"flag": "unreplaced_macro", "message": "holds \x1b[2J"}]
    text = format_hit(hit, colour=False)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert "\\x1b]0;owned\\x07\\x0d\\x0afake line" in text
    assert text.count("\n") == 1
