"""Hits made in the test, as capture would make them, for the writer, the spool and
the queries to take without a request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from monitor.model import ids
from monitor.model.hit import Hit
from monitor.model.verdict import Verdict
from monitor.rules import compile_settings, judge
from monitor.rules.params import parse_query
from monitor.storage.db import create_pool
from monitor.storage.spool import Spool
from monitor.storage.writer import HitWriter


def judged_hit(endpoint_id: int, settings: dict[str, Any], query: str, when: datetime) -> Hit:
    """A GET hit of ``query`` at ``when``, judged by ``settings`` as capture judges it."""
    params = parse_query(query.encode())
    verdict = judge(compile_settings(settings), params, remote_ip=None, headers=[])
    millis = int(when.timestamp() * 1000)
    return Hit(
        id=ids.uuid7(millis),
        endpoint_id=endpoint_id,
        received_at=when,
        method="GET",
        path="/p/x",
        raw_query=query.encode(),
        params=params,
        body_params=[],
        headers=[],
        content_type="",
        body=b"",
        body_size=0,
        remote_ip=None,
        user_agent=None,
        verdict=verdict,
        flags=list(verdict.flags),
    )


def spool_hit(endpoint_id: int, click_id: str, body: bytes = b"\x00\xffraw") -> Hit:
    """A POST hit with raw bytes, repeated headers and an invalid escape, judged clean."""
    now = datetime.now(UTC)
    return Hit(
        id=ids.uuid7(),
        endpoint_id=endpoint_id,
        received_at=now,
        method="POST",
        path="/p/x",
        raw_query=f"click_id={click_id}&bad=%ff".encode(),
        params=[("click_id", click_id), ("bad", "\ufffd")],
        body_params=[],
        headers=[("Host", "x"), ("X-Tag", "a"), ("X-Tag", "b")],
        content_type="application/octet-stream",
        body=body,
        body_size=len(body),
        remote_ip="203.0.113.7",
        user_agent="test",
        verdict=Verdict(
            flags=[], click_id=click_id, click_id_param="click_id", dedupe_key=(click_id, "")
        ),
        flags=[],
    )


async def replay_spool(pg_url: str, spool: Spool) -> int:
    """Drain ``spool`` as the next ``serve`` on its data directory would: a writer of
    its own, every hit replayed. Returns the hits dropped (their endpoint was gone)."""
    pool = await create_pool(pg_url)
    try:
        writer = HitWriter(pool, spool=spool)
        assert await writer.drain_spool() == 0
        await writer.close()
        return writer.dropped_total
    finally:
        await pool.close()
