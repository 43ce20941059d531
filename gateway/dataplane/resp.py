"""Pre-packed Redis commands on one kept connection: the data plane's hot-path Redis.

Each proxied call costs a limit check and an execution event. redis-py's
pipeline packs every argument in Python, checks a connection out of the pool
per batch and wraps every reply read in its own timeout; under load that cost
more CPU than the round trip it shared (docs/benchmarks.md). The data
plane's two writers (limits.ScriptBatcher, events.EventSink) each send one
batch at a time, so each keeps one connection and packs its commands itself
(shared/resp.py).
The connection comes from redis-py's pool, so AUTH, SELECT and TLS from the
Redis URL still apply.
"""

from __future__ import annotations

import math
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError


class KeptConnection:
    """One pooled connection, taken once and kept; for one sender at a time."""

    def __init__(self, redis: Redis) -> None:
        self._pool = redis.connection_pool
        self._connection: Any = None

    async def exchange(self, packed: bytes, replies: int) -> list[Any]:
        """Send pre-packed commands and read `replies` replies, in order.

        An error reply (a `ResponseError`, e.g. NOSCRIPT) is returned in its place,
        not raised: the other commands' replies still count. A broken or
        interrupted exchange (connection lost, cancelled by the caller's timeout)
        leaves the connection in an unknown state: it is closed, never reused, and
        the error raised.
        """
        if self._connection is None:
            self._connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        connection = self._connection
        try:
            await connection.send_packed_command(packed, check_health=False)
            answers: list[Any] = []
            for _ in range(replies):
                try:
                    # No per-reply timeout (math.inf): the caller bounds the whole batch.
                    answers.append(await connection.read_response(timeout=math.inf))
                except ResponseError as exc:
                    answers.append(exc)
            return answers
        except BaseException:
            self._connection = None
            await connection.disconnect()
            await self._pool.release(connection)
            raise

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await self._pool.release(connection)
