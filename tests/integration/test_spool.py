"""The spool file format and the writer's use of it: torn tails, a full spool, replays."""

from __future__ import annotations

import dataclasses
import json
import struct
import uuid
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from monitor.storage.db import create_pool
from monitor.storage.spool import Spool, SpoolFull, encode, read_segment
from monitor.storage.writer import HitWriter, WriteFailed
from tests.helpers.hits import spool_hit


def test_the_amount_and_currency_survive_the_spool(tmp_path: Path) -> None:
    """A replayed hit still adds its payout to the metrics once it is committed."""
    hit = spool_hit(1, "paid")
    hit.verdict = dataclasses.replace(hit.verdict, amount=Decimal("12.50"), currency="EUR")
    spool = Spool(tmp_path, max_bytes=10**6)
    spool.append([hit, spool_hit(1, "unpaid")])
    spool.close()
    (segment,) = spool.segments()
    paid, unpaid = read_segment(segment)
    assert (str(paid.verdict.amount), paid.verdict.currency) == ("12.50", "EUR")
    assert (unpaid.verdict.amount, unpaid.verdict.currency) == (None, None)


def test_an_amount_spooled_as_a_float_by_the_previous_release_is_read(tmp_path: Path) -> None:
    """Before exact amounts the spool wrote a JSON number; such segments still replay."""
    hit = spool_hit(1, "old")
    record = encode(hit)
    doc = json.loads(record[8:])
    doc["verdict"]["amount"] = 1.5
    payload = json.dumps(doc).encode()
    (tmp_path / "0001.spool").write_bytes(
        struct.pack(">II", len(payload), zlib.crc32(payload)) + payload
    )
    (back,) = read_segment(tmp_path / "0001.spool")
    assert back.verdict.amount == Decimal("1.5")


def test_round_trip_and_torn_tail(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**6)
    hits = [spool_hit(1, f"c{i}") for i in range(3)]
    spool.append(hits)
    spool.close()
    (segment,) = spool.segments()
    with open(segment, "ab") as f:
        f.write(b"\x00\x00\x01\x00garbage")  # a crash mid-append
    back = read_segment(segment)
    assert [h.id for h in back] == [h.id for h in hits]
    assert back[0].body == hits[0].body
    assert back[0].raw_query == hits[0].raw_query
    assert back[0].headers == hits[0].headers
    assert back[0].verdict.dedupe_key == ("c0", "")
    assert Spool(tmp_path, max_bytes=10**6).pending_hits == 3


def test_cap_refuses_without_writing(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=600)
    spool.append([spool_hit(1, "a")])
    try:
        spool.append([spool_hit(1, "b", body=b"x" * 1000)])
    except SpoolFull:
        pass
    else:
        raise AssertionError("expected SpoolFull")
    spool.close()
    assert [h.verdict.click_id for s in spool.segments() for h in read_segment(s)] == ["a"]


def test_a_locked_segment_is_not_claimed(tmp_path: Path) -> None:
    writer_side = Spool(tmp_path, max_bytes=10**6)
    writer_side.append([spool_hit(1, "a")])
    other_process = Spool(tmp_path, max_bytes=10**6)
    assert other_process.claim_oldest() is None  # still being appended to
    writer_side.close()
    claimed = other_process.claim_oldest()
    assert claimed is not None
    path, handle, hits = claimed
    assert [h.verdict.click_id for h in hits] == ["a"]
    other_process.release(path, handle, replayed=True, hits=len(hits))
    assert other_process.segments() == []


async def test_replay_twice_stores_once_and_settles_duplicates_in_order(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    endpoint_id = await db.fetchval(
        "INSERT INTO endpoints (token, name) VALUES ($1, 'spool') RETURNING id", uuid.uuid4().hex
    )
    hits = [
        spool_hit(endpoint_id, "same"),
        spool_hit(endpoint_id, "same"),
        spool_hit(endpoint_id, "other"),
    ]
    pool = await create_pool(pg_url)
    try:
        for _ in range(2):  # the second replay is a crash between commit and delete
            spool = Spool(tmp_path / "spool", max_bytes=10**6)
            spool.append(hits)
            spool.close()
            writer = HitWriter(pool, spool=spool)
            assert await writer.drain_spool() == 0
            await writer.close()
            assert spool.segments() == []
        rows = await db.fetch(
            "SELECT id, click_id, flags FROM hits WHERE endpoint_id = $1 ORDER BY id", endpoint_id
        )
    finally:
        await pool.close()
    assert [r["id"] for r in rows] == sorted(h.id for h in hits)
    flags: dict[Any, list[str]] = {r["id"]: [f["flag"] for f in r["flags"]] for r in rows}
    assert flags[hits[0].id] == []
    assert flags[hits[1].id] == ["duplicate_click_id"]
    assert flags[hits[2].id] == []


def test_a_segment_replayed_by_another_worker_clears_the_owners_count(tmp_path: Path) -> None:
    owner = Spool(tmp_path, max_bytes=10**6)
    owner.append([spool_hit(1, "a"), spool_hit(1, "b")])
    owner.close()
    other_worker = Spool(tmp_path, max_bytes=10**6)
    path, handle, hits = other_worker.claim_oldest()  # type: ignore[misc]
    other_worker.release(path, handle, replayed=True, hits=len(hits))
    assert owner.pending_hits == 2  # stale until the owner looks
    assert owner.claim_oldest() is None
    assert owner.pending_hits == 0
    assert not owner.has_pending()


async def test_a_full_spool_refuses_and_tells_its_listeners(
    pg_url: str, tmp_path: Path, db: asyncpg.Connection
) -> None:
    """Database stalled: the first hit is spooled, the next does not fit and fails."""
    endpoint_id = await db.fetchval(
        "INSERT INTO endpoints (token, name) VALUES ($1, 'full') RETURNING id", uuid.uuid4().hex
    )
    fits, too_big = spool_hit(endpoint_id, "a"), spool_hit(endpoint_id, "b", body=b"x" * 1000)
    spool = Spool(tmp_path / "spool", max_bytes=len(encode(fits)) + 100)
    pool = await create_pool(pg_url)
    blocker = await asyncpg.connect(pg_url)
    await blocker.execute("BEGIN")
    await blocker.execute("LOCK TABLE hits IN ACCESS EXCLUSIVE MODE")
    writer = HitWriter(pool, spool=spool, commit_timeout_s=0.3)
    refused: list[int] = []
    writer.spool_full_listeners.append(refused.append)
    writer.start()
    try:
        await writer.submit(fits)
        assert writer.spool_pending == 1
        with pytest.raises(WriteFailed):
            await writer.submit(too_big)
    finally:
        await blocker.execute("ROLLBACK")
        await blocker.close()
        await writer.close()
        await pool.close()
    assert refused == [1]
    assert [h.id for s in spool.segments() for h in read_segment(s)] == [fits.id]
