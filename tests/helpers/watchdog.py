"""A watchdog that makes the test timeout hold where pytest-timeout's does not.

pytest-timeout's signal method arms SIGALRM for the process, with two gaps:
- once a test has failed, its ``pytest_exception_interact`` hook cancels the alarm
  (meant for a debugger), so the failed test's teardown runs with no limit at all;
- the kernel hands a process signal to any thread that does not block it: when a
  worker thread (asyncio's default executor, a database keeper) takes it, a main
  thread sleeping without a deadline is never woken and its handler never runs.
A teardown that then waits for ever hangs the run until CI's own limit kills it,
printing nothing. CI saw that once: 75 silent minutes after a test.

This plugin watches from a thread of its own: when a test (setup, call and
teardown) has run past its timeout plus a grace, it sends SIGUSR2 to the main
thread itself (pthread_kill reaches that thread, whatever it waits in), whose
handler fails the test there, and the run goes on. If even that does not end it,
it dumps every thread's stack and exits, so the run fails in minutes with the
place it hung instead of in silence.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

import pytest

GRACE_S = 15.0  # past the test's timeout, before the alarm is sent again
GIVE_UP_S = 120.0  # past the resent alarm, before the stacks are dumped and the run ends
POLL_S = 1.0


class Watchdog:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: float | None = None
        self.timeout_s = 0.0
        self.nodeid = ""
        self.main = threading.main_thread().ident

    def begin(self, nodeid: str, timeout_s: float) -> None:
        with self.lock:
            self.nodeid, self.timeout_s, self.started = nodeid, timeout_s, time.monotonic()

    def end(self) -> None:
        with self.lock:
            self.started = None

    def run(self) -> None:
        alarmed_for: float | None = None
        while True:
            time.sleep(POLL_S)
            with self.lock:
                started, timeout_s, nodeid = self.started, self.timeout_s, self.nodeid
            if started is None or timeout_s <= 0:
                continue
            overdue = time.monotonic() - started - timeout_s
            if overdue < GRACE_S:
                continue
            if alarmed_for != started:
                alarmed_for = started
                print(f"\nwatchdog: {nodeid} is {overdue:.0f} s past its timeout", file=sys.stderr)
                assert self.main is not None
                signal.pthread_kill(self.main, WAKE)
            elif overdue >= GRACE_S + GIVE_UP_S:
                print(f"\nwatchdog: {nodeid} did not stop; every thread:", file=sys.stderr)
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
                sys.stderr.flush()
                os._exit(3)


WATCHDOG = Watchdog()
WAKE = signal.SIGUSR2  # nothing in the service or the tests uses it


def fail_overdue(_signum: int, _frame: object) -> None:
    pytest.fail(f"watchdog: still running past its timeout + {GRACE_S:.0f} s", pytrace=True)


def timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini("timeout") or 0)


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(WAKE, fail_overdue)
    threading.Thread(target=WATCHDOG.run, name="test-watchdog", daemon=True).start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    WATCHDOG.begin(item.nodeid, timeout_of(item))
    try:
        yield
    finally:
        WATCHDOG.end()
