"""Per-endpoint rate limits: a token bucket per endpoint, in this process's memory.

With ``--workers N`` each process keeps its own buckets, so the limit an endpoint
sees is up to N times its setting; it guards against floods, not for billing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(slots=True)
class Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[int, Bucket] = {}

    def allow(self, key: int, rate_per_s: float, now: float | None = None) -> float:
        """0 when a hit may pass now; otherwise the seconds until one may."""
        now = time.monotonic() if now is None else now
        burst = max(1.0, rate_per_s)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(burst, now)
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate_per_s)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate_per_s

    @staticmethod
    def retry_after(seconds: float) -> str:
        return str(max(1, math.ceil(seconds)))
