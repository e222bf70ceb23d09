"""What the click lifecycle costs a batch: HitWriter committing N hits in batches of B.

    python bench/lifecycle.py [--hits 10000] [--batch 50] [--rounds 3]

Runs against an embedded PostgreSQL (or DATABASE_URL's server) in a scratch
database. Three shapes of the same hits, each on a fresh endpoint: no status at all
(the writer's path before statuses), a status on every hit (sale then rejected per
click id, so every hit takes part in the lifecycle and every second one updates an
existing row), and a status with no click id of its own (tracked by none). Batches
are made exactly B hits by submitting B at once and waiting. Printed: ms per batch
and µs per hit for each shape, best of the rounds; compare shapes, not machines.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.storage.db import connect, create_pool  # noqa: E402
from monitor.storage.writer import HitWriter  # noqa: E402
from tests.helpers.hits import judged_hit  # noqa: E402
from tests.helpers.pg import ScratchDatabase  # noqa: E402

SHAPES = {
    "no status": "subid=c{click}&payout=1",
    "status, lifecycle": "subid=c{click}&status={status}&payout=1",
    "status, no click id": "x=c{click}&status={status}&payout=1",
}


async def one_shape(url: str, endpoint_id: int, shape: str, hits: int, batch: int) -> float:
    pool = await create_pool(url)
    writer = HitWriter(pool, batch_max_hits=batch)
    writer.start()
    made = []
    for n in range(hits):
        # Each click id gets a sale, then (one batch later or more) its rejection.
        click, status = n // 2 if n % 2 == 0 else (n - 1) // 2, "sale" if n % 2 == 0 else "rejected"
        query = SHAPES[shape].format(click=f"{endpoint_id}-{click}", status=status)
        made.append(judged_hit(endpoint_id, {"preset": "keitaro"}, query, datetime.now(UTC)))
    # Sales of a batch first, their rejections in the next batch: rows exist by then.
    ordered = []
    for start in range(0, hits, 2 * batch):
        chunk = made[start : start + 2 * batch]
        ordered += chunk[0::2] + chunk[1::2]
    started = time.perf_counter()
    try:
        for start in range(0, hits, batch):
            await asyncio.gather(*(writer.submit(h) for h in ordered[start : start + batch]))
    finally:
        await writer.close()
        await pool.close()
    return time.perf_counter() - started


async def run(url: str, args: argparse.Namespace) -> dict[str, float]:
    conn = await connect(url)
    best: dict[str, float] = {}
    endpoint_id = 0
    for _ in range(args.rounds):
        for shape in SHAPES:
            endpoint_id += 1
            await conn.execute(
                "INSERT INTO endpoints (id, token, name) OVERRIDING SYSTEM VALUE "
                "VALUES ($1, $2, 'bench')",
                endpoint_id,
                f"bench-{endpoint_id}",
            )
            seconds = await one_shape(url, endpoint_id, shape, args.hits, args.batch)
            best[shape] = min(best.get(shape, seconds), seconds)
    await conn.close()
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hits", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # ScratchDatabase starts and migrates with its own event loop: outside ours.
    db = ScratchDatabase(Path(tempfile.mkdtemp(prefix="pbm-bench-")))
    db.start()
    try:
        best = asyncio.run(run(db.url, args))
    finally:
        db.stop()
    batches = args.hits / args.batch
    print(f"{args.hits} hits in batches of {args.batch}, best of {args.rounds}:")
    for shape, seconds in best.items():
        print(
            f"  {shape:<22} {seconds:7.2f} s  {seconds / batches * 1000:6.2f} ms/batch  "
            f"{seconds / args.hits * 1e6:6.1f} µs/hit"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
