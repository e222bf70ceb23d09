"""A bounded load generator for fault tests: loopback only, stops by itself."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

HIT_ID_HEADER = "X-Postback-Monitor-Hit-Id"


@dataclass
class LoadResult:
    sent: int = 0
    acknowledged: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0

    def summary(self) -> str:
        return (
            f"sent={self.sent} acknowledged={len(self.acknowledged)} "
            f"statuses={dict(sorted(self.statuses.items()))} connection_errors={self.errors}"
        )


async def run_load(
    url: str, stop: asyncio.Event, *, workers: int = 10, max_seconds: float = 60.0
) -> LoadResult:
    """GET url with unique click ids from `workers` clients until `stop` (or max_seconds)."""
    result = LoadResult()
    deadline = time.monotonic() + max_seconds
    timeout = aiohttp.ClientTimeout(total=30)

    async def worker(n: int) -> None:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            i = 0
            while not stop.is_set() and time.monotonic() < deadline:
                i += 1
                result.sent += 1
                try:
                    async with session.get(
                        url, params={"click_id": f"w{n}-{i}", "payout": "1.00"}
                    ) as resp:
                        await resp.read()
                        result.statuses[resp.status] = result.statuses.get(resp.status, 0) + 1
                        if 200 <= resp.status < 300:
                            result.acknowledged.append(resp.headers[HIT_ID_HEADER])
                except (TimeoutError, aiohttp.ClientError):
                    result.errors += 1
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(worker(n) for n in range(workers)))
    return result
