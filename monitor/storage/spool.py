"""The local spool: where acknowledged hits wait while the database cannot take them.

Append-only segment files in DATA_DIR/spool, one record per hit:
``length (4 bytes) | crc32 (4 bytes) | JSON``. A batch is fsync'd before any of
its requests is answered, so a hit that got a 2xx survives a crash. A torn tail
(a crash mid-append) fails its length or checksum and is ignored: that batch was
never acknowledged. Segment names start with a nanosecond timestamp, so replaying
them in name order replays hits in arrival order. The owner holds an exclusive
flock on the segment it appends to; a drainer (any process) replays only segments
it can lock, so a live writer's segment is never replayed under it.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import struct
import time
import uuid
import zlib
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO

import structlog

from monitor.model.hit import Hit
from monitor.model.verdict import Verdict

log = structlog.get_logger(__name__)

HEADER = struct.Struct(">II")  # payload length, crc32 of payload
SEGMENT_SUFFIX = ".spool"
SEGMENT_MAX_BYTES = 8 * 1024 * 1024
MAX_RECORD_BYTES = 256 * 1024 * 1024
DIRECTORY_CHECK_S = 0.5


class SpoolFull(Exception):
    """The spool has reached its size cap; the hit cannot be acknowledged."""


def encode(hit: Hit) -> bytes:
    verdict = hit.verdict
    doc = {
        "id": str(hit.id),
        "endpoint_id": hit.endpoint_id,
        "received_at": hit.received_at.isoformat(),
        "method": hit.method,
        "path": hit.path,
        "raw_query": base64.b64encode(hit.raw_query).decode(),
        "params": hit.params,
        "body_params": hit.body_params,
        "headers": hit.headers,
        "content_type": hit.content_type,
        "body": base64.b64encode(hit.body).decode(),
        "body_size": hit.body_size,
        "remote_ip": hit.remote_ip,
        "user_agent": hit.user_agent,
        "flags": hit.flags,
        "verdict": {
            "click_id": verdict.click_id,
            "event": verdict.event,
            "click_id_param": verdict.click_id_param,
            "dedupe_key": verdict.dedupe_key,
            "dedupe_window_s": verdict.dedupe_window_s,
            # The exact decimal as text (an older release wrote a JSON number).
            "amount": None if verdict.amount is None else str(verdict.amount),
            "currency": verdict.currency,
            "amount_param": verdict.amount_param,
        },
    }
    if verdict.status_param is not None:  # left out when absent: records stay small
        doc["verdict"].update(  # type: ignore[attr-defined]
            status=verdict.status,
            status_param=verdict.status_param,
            status_value=verdict.status_value,
            status_tracked=verdict.status_tracked,
        )
    payload = json.dumps(doc, separators=(",", ":")).encode()
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes) -> Hit:
    doc = json.loads(payload)
    v = doc["verdict"]
    verdict = Verdict(
        flags=[],
        click_id=v["click_id"],
        event=v["event"],
        click_id_param=v["click_id_param"],
        dedupe_key=tuple(v["dedupe_key"]) if v["dedupe_key"] else None,  # type: ignore[arg-type]
        dedupe_window_s=v["dedupe_window_s"],
        # Absent from records spooled by an older release: the payout is then not counted;
        # a JSON number from the release before exact amounts is read through its text.
        amount=spooled_amount(v.get("amount")),
        currency=v.get("currency"),
        amount_param=v.get("amount_param"),
        # Absent when the hit had none, and from records spooled before statuses.
        status=v.get("status"),
        status_param=v.get("status_param"),
        status_value=v.get("status_value"),
        status_tracked=v.get("status_tracked", False),
    )
    return Hit(
        id=uuid.UUID(doc["id"]),
        endpoint_id=doc["endpoint_id"],
        received_at=datetime.fromisoformat(doc["received_at"]),
        method=doc["method"],
        path=doc["path"],
        raw_query=base64.b64decode(doc["raw_query"]),
        params=[tuple(p) for p in doc["params"]],  # type: ignore[misc]
        body_params=[tuple(p) for p in doc["body_params"]],  # type: ignore[misc]
        headers=[tuple(p) for p in doc["headers"]],  # type: ignore[misc]
        content_type=doc["content_type"],
        body=base64.b64decode(doc["body"]),
        body_size=doc["body_size"],
        remote_ip=doc["remote_ip"],
        user_agent=doc["user_agent"],
        verdict=verdict,
        flags=doc["flags"],
    )


def spooled_amount(value: str | float | None) -> Decimal | None:
    """A spooled amount as the writer stores it: text now, a float before."""
    return None if value is None else Decimal(str(value))


def read_segment(path: Path) -> list[Hit]:
    """Every whole record of a segment, in order; a torn or corrupt tail ends it."""
    hits = []
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        payload = data[start : start + length]
        if length > MAX_RECORD_BYTES or len(payload) < length or zlib.crc32(payload) != crc:
            log.warning("spool.torn_tail", segment=path.name, offset=offset)
            break
        hits.append(decode(payload))
        offset = start + length
    return hits


class Spool:
    """Segments in one directory; appends by this process, replay of any unlocked segment."""

    def __init__(
        self, directory: Path, max_bytes: int, segment_max_bytes: int = SEGMENT_MAX_BYTES
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_max_bytes = segment_max_bytes
        self._active: IO[bytes] | None = None
        self._active_path: Path | None = None
        self._active_size = 0
        self._checked_at = 0.0
        self._others_pending = False
        directory.mkdir(parents=True, exist_ok=True)
        self.pending_hits, self.pending_bytes = self._scan()

    def _scan(self) -> tuple[int, int]:
        hits = size = 0
        for path in self.segments():
            size += path.stat().st_size
            hits += len(read_segment(path))
        return hits, size

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("*" + SEGMENT_SUFFIX))

    def has_pending(self) -> bool:
        """Whether any hits wait here, from this process or another (checked twice a second)."""
        if self.pending_hits > 0:
            return True
        now = time.monotonic()
        if now - self._checked_at >= DIRECTORY_CHECK_S:
            self._checked_at = now
            self._others_pending = any(True for _ in self.directory.glob("*" + SEGMENT_SUFFIX))
        return self._others_pending

    def append(self, hits: list[Hit]) -> None:
        """Write and fsync a batch; raises SpoolFull (writing nothing) over the cap."""
        records = b"".join(encode(h) for h in hits)
        if self.pending_bytes + len(records) > self.max_bytes:
            raise SpoolFull(f"spool holds {self.pending_bytes} bytes, cap {self.max_bytes}")
        if self._active is None or self._active_size >= self.segment_max_bytes:
            self._open_segment()
        assert self._active is not None
        self._active.write(records)
        self._active.flush()
        os.fsync(self._active.fileno())
        self._active_size += len(records)
        self.pending_bytes += len(records)
        self.pending_hits += len(hits)

    def _open_segment(self) -> None:
        self.seal()
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SEGMENT_SUFFIX}"
        path = self.directory / name
        f = open(path, "ab")
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        self._sync_directory()
        self._active, self._active_path, self._active_size = f, path, 0

    def seal(self) -> None:
        """Close the segment being appended to, so it can be replayed."""
        if self._active is not None:
            fcntl.flock(self._active.fileno(), fcntl.LOCK_UN)
            self._active.close()
        self._active = self._active_path = None
        self._active_size = 0

    def claim_oldest(self) -> tuple[Path, IO[bytes], list[Hit]] | None:
        """The oldest segment no live process is appending to, locked, with its hits."""
        for path in self.segments():
            if path == self._active_path:
                self.seal()
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                continue  # another process replayed it meanwhile
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            if not path.exists():
                f.close()
                continue
            return path, f, read_segment(path)
        # Nothing left that this process could replay: whatever it appended has been
        # replayed (possibly by another worker), so its own count starts again at 0.
        self.pending_hits = self.pending_bytes = 0
        self._others_pending = bool(self.segments())
        return None

    def release(self, path: Path, handle: IO[bytes], *, replayed: bool, hits: int) -> None:
        """Delete a replayed segment (or just unlock one that failed to replay)."""
        if replayed:
            size = path.stat().st_size
            path.unlink()
            self._sync_directory()
            self.pending_hits = max(0, self.pending_hits - hits)
            self.pending_bytes = max(0, self.pending_bytes - size)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()

    def set_aside(self, hit: Hit) -> None:
        """Keep a hit the database refuses in failed/, for a person to look at."""
        target = self.directory / "failed"
        target.mkdir(exist_ok=True)
        with open(target / f"{hit.id}{SEGMENT_SUFFIX}", "wb") as f:
            f.write(encode(hit))
            f.flush()
            os.fsync(f.fileno())

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.seal()
