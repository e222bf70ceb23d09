"""The CLI's reconciliation progress: a redrawn bar on a terminal, plain lines
otherwise (a log file or CI), at most one a second."""

from __future__ import annotations

import io

from monitor.cli_reconcile import ProgressLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_redrawn_in_place() -> None:
    stream = Terminal()
    progress = ProgressLine(stream)
    progress(10, 50, 100)
    progress(20, 100, 100)
    progress.end()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[###############---------------]  50%  10 rows" in text
    assert " 100%  20 rows" in text


def test_a_file_gets_plain_lines_and_always_the_last() -> None:
    stream = io.StringIO()
    progress = ProgressLine(stream)
    progress(10, 50, 100)
    progress(15, 70, 100)  # within the second: left out
    progress(20, 100, 100)  # the end: always shown
    progress.end()
    assert stream.getvalue().splitlines() == [
        "read 10 rows, 50 of 100 bytes (50%)",
        "read 20 rows, 100 of 100 bytes (100%)",
    ]
