"""``hits tail``: print an endpoint's newest hits, then each new one as it commits.

New hits are announced by the writer with NOTIFY on the hits channel; a poll every
few seconds covers a lost notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from datetime import datetime
from typing import Any

import asyncpg

from monitor.storage.batch_commit import HITS_CHANNEL
from monitor.storage.hits import HitFilter

POLL_S = 3.0
RED, YELLOW, DIM, RESET = "\033[31m", "\033[33m", "\033[2m", "\033[0m"


# Sender data must not drive the terminal: control characters (ESC, CR, ...) are shown escaped.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def safe(text: str) -> str:
    return text.translate(_CONTROL)


def format_hit(hit: dict[str, Any], *, colour: bool) -> str:
    params = safe(" ".join(f"{k}={v}" for k, v in (hit["params"] + hit["body_params"])[:8]))
    flags = [f["flag"] for f in hit["flags"]]
    line = f"{hit['received_at']}  {hit['method']:<6} {hit['remote_ip'] or '-':<15} {params}"
    if flags:
        badge = "  [" + ", ".join(flags) + "]"
        line += f"{RED}{badge}{RESET}" if colour else badge
    if colour:
        line = f"{DIM}{line[:32]}{RESET}{line[32:]}"
    # What is wrong, in words: one indented line per flag under the hit.
    for flag in hit["flags"]:
        detail = f"    ! {flag['flag']}: {safe(flag.get('message', ''))}"
        line += "\n" + (f"{RED}{detail}{RESET}" if colour else detail)
    return line


async def tail(stores: Any, endpoint_id: int, *, lines: int, as_json: bool, follow: bool) -> None:
    colour = sys.stdout.isatty() and not as_json
    seen: set[str] = set()

    def emit(hits: list[dict[str, Any]]) -> None:
        for hit in reversed(hits):  # oldest first, like tail(1)
            if hit["id"] in seen:
                continue
            seen.add(hit["id"])
            print(
                json.dumps(hit, ensure_ascii=False) if as_json else format_hit(hit, colour=colour),
                flush=True,
            )

    # The newest hit marks where following starts, even when none is printed (-n 0).
    items, _ = await stores.hits.list(endpoint_id, limit=min(max(lines, 1), 500))
    seen.update(h["id"] for h in items[lines:])
    emit(items[:lines])
    newest = datetime.fromisoformat(items[0]["received_at"]) if items else None
    if not follow:
        return
    wake = asyncio.Event()
    conn = await asyncpg.connect(stores.url)
    try:

        def on_notify(_c: Any, _pid: int, _channel: str, payload: str) -> None:
            if str(endpoint_id) in payload.split(","):
                wake.set()

        await conn.add_listener(HITS_CHANNEL, on_notify)
        if newest is None:
            newest = await stores.pool.fetchval("SELECT now() - interval '1 second'")
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await wake.wait()
            wake.clear()
            items, _ = await stores.hits.list(endpoint_id, HitFilter(since=newest), limit=500)
            emit(items)
            if items:
                newest = datetime.fromisoformat(items[0]["received_at"])
    finally:
        await conn.close()
