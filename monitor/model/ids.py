"""Identifiers: time-ordered hit ids (UUIDv7) and unguessable capture tokens."""

from __future__ import annotations

import os
import random
import re
import secrets
import time
import uuid
from datetime import UTC, datetime

_random = random.Random(int.from_bytes(os.urandom(16), "big"))
CAPTURE_TOKEN_BYTES = 18  # 144 random bits, 24 URL-safe characters


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48-bit millisecond timestamp, then 74 random bits."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    # Hit ids need uniqueness, not secrecy (capture tokens are the secrets), so a
    # fast PRNG seeded from the OS per process is enough: 74 random bits per ms.
    rand = _random.getrandbits(80)
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
    return uuid.UUID(int=value)


def uuid7_time(value: uuid.UUID) -> datetime:
    """The millisecond timestamp a UUIDv7 was made at."""
    return datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC)


CAPTURE_TOKEN_CHARS = 4 * CAPTURE_TOKEN_BYTES // 3  # unpadded URL-safe base64
CAPTURE_TOKEN_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{{CAPTURE_TOKEN_CHARS}}}")


def looks_like_capture_token(token: str) -> bool:
    return CAPTURE_TOKEN_SHAPE.fullmatch(token) is not None


def capture_token() -> str:
    return secrets.token_urlsafe(CAPTURE_TOKEN_BYTES)


def admin_token() -> str:
    return secrets.token_urlsafe(32)
