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

import asyncio
import contextlib
import faulthandler
import gc
import inspect
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

import pytest

TELL_BEFORE_S = 5.0  # before the timeout, the unfinished tasks are printed
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
        # The real stderr, kept while pytest's capture is off (pytest_configure): a
        # test's captured output is lost when the run is ended from here.
        self.out: TextIO = sys.stderr

    def begin(self, nodeid: str, timeout_s: float) -> None:
        with self.lock:
            self.nodeid, self.timeout_s, self.started = nodeid, timeout_s, time.monotonic()

    def end(self) -> None:
        with self.lock:
            self.started = None

    def run(self) -> None:
        told_for: float | None = None
        alarmed_for: float | None = None
        while True:
            time.sleep(POLL_S)
            with self.lock:
                started, timeout_s, nodeid = self.started, self.timeout_s, self.nodeid
            if started is None or timeout_s <= 0:
                continue
            overdue = time.monotonic() - started - timeout_s
            if overdue >= -TELL_BEFORE_S and told_for != started:
                # Before pytest-timeout fails the test: its report shows no await chain.
                told_for = started
                print(f"\nwatchdog: {nodeid} is about to time out; its tasks:", file=self.out)
                print_tasks(self.out)
            if overdue < GRACE_S:
                continue
            if alarmed_for != started:
                alarmed_for = started
                print(f"\nwatchdog: {nodeid} is {overdue:.0f} s past its timeout", file=self.out)
                assert self.main is not None
                signal.pthread_kill(self.main, WAKE)
            elif overdue >= GRACE_S + GIVE_UP_S:
                print(f"\nwatchdog: {nodeid} did not stop; every thread:", file=self.out)
                faulthandler.dump_traceback(file=self.out, all_threads=True)
                self.out.flush()
                os._exit(3)


def await_chain(obj: Any) -> list[str]:
    """Where a coroutine (or async generator) waits, outermost first."""
    lines = []
    while obj is not None:
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None)
        frame = frame or getattr(obj, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
        obj = getattr(obj, "cr_await", None) or getattr(obj, "ag_await", None)
    return lines


def print_tasks(out: TextIO) -> None:
    """The await chain of each unfinished task and suspended async generator (pytest
    fixtures are ones): a hung teardown waits in one of them, which no thread stack
    shows, as the main thread only sits in the event loop. Read from another thread:
    best effort."""
    waiting = [t.get_coro() for t in list(getattr(asyncio.tasks, "_all_tasks", ())) if not t.done()]
    waiting += [o for o in gc.get_objects() if inspect.isasyncgen(o) and o.ag_await is not None]
    for obj in waiting:
        with contextlib.suppress(Exception):
            print(f"{obj!r} waits at:", *await_chain(obj), sep="\n", file=out)


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
    WATCHDOG.out = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
    threading.Thread(target=WATCHDOG.run, name="test-watchdog", daemon=True).start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    WATCHDOG.begin(item.nodeid, timeout_of(item))
    try:
        yield
    finally:
        WATCHDOG.end()
