"""One bulk replay per endpoint across every process and machine.

A second replay of an endpoint while one runs would send every hit twice. The
check in a process's memory (``forwarding/replays.py``) cannot see a replay that
another worker, another node or the CLI's ``hits replay`` started, so a replay also
holds a session-level advisory lock on (``REPLAY_LOCK_CLASS``, endpoint id) for as
long as it runs, on a connection of its own: not one of the pool's, which the
replay's own queries need. Postgres releases it when that connection closes, so a
process that dies mid-replay frees the endpoint at once.
"""

from __future__ import annotations

import contextlib

import asyncpg

# The two-key form, its own space beside the single-key locks (evaluator, migrations);
# any int4 constant works, as long as every process uses the same one.
REPLAY_LOCK_CLASS = 0x72_70_6C_79  # "rply"
CONNECT_TIMEOUT_S = 10.0


class ReplayLock:
    """The lock of one endpoint's running replay; ``release`` when it finishes."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @classmethod
    async def take(cls, dsn: str, endpoint_id: int) -> ReplayLock | None:
        """The endpoint's lock, or None when a replay of it runs somewhere."""
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            held = await conn.fetchval(
                "SELECT pg_try_advisory_lock($1::int4, $2::int4)", REPLAY_LOCK_CLASS, endpoint_id
            )
        except BaseException:
            conn.terminate()
            raise
        if not held:
            await conn.close()
            return None
        return cls(conn)

    async def release(self) -> None:
        """Closing the connection releases the lock; never raises (a lost connection
        has released it already)."""
        with contextlib.suppress(Exception):
            await self._conn.close(timeout=CONNECT_TIMEOUT_S)
        self._conn.terminate()
