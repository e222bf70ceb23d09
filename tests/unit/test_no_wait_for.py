"""No ``asyncio.wait_for`` in loops that shutdown cancels.

On Python 3.11 ``wait_for`` can swallow a cancel that arrives as its inner await
finishes (gh-86296, fixed in 3.12): a ``while True`` refresher then runs on and the
app's teardown waits for it for ever. It hung CI (75 min) and test runs about one in
fifteen. ``asyncio.timeout`` keeps the cancel, so the service uses it everywhere;
``close_pool``'s one call is no loop and a lost cancel there only ends a close early.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "monitor"
ALLOWED = {"storage/db.py": 1}


def test_wait_for_is_not_used_where_a_lost_cancel_would_hang_shutdown() -> None:
    found = {
        str(path.relative_to(PACKAGE)): path.read_text(encoding="utf-8").count("wait_for(")
        for path in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in found.items() if n} == ALLOWED
