"""Appends execution events to the Redis stream that analytics consumes.

Each event is also counted per API and minute in Redis, in the same atomic
round trip, for analytics' reconciliation. Sending happens after the response
is finished, off the caller's latency. When Redis is unreachable, events wait
in a bounded in-memory spool and a flusher retries them (counting them when
they are delivered), so a short Redis outage loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.events import EXECUTION_COUNTS_TTL_SECONDS, ExecutionEvent, execution_counts_key

log = logging.getLogger("veil.dataplane.events")


class EventSink:
    def __init__(self, redis: Redis, stream: str, maxlen: int, spool_size: int = 100_000) -> None:
        self._redis = redis
        self._stream = stream
        self._maxlen = maxlen
        self._spool: deque[ExecutionEvent] = deque(maxlen=spool_size)

    async def emit(self, event: ExecutionEvent) -> None:
        if self._spool:
            self._spool.append(event)  # keep order behind what is already waiting
            return
        try:
            await self._append(event)
        except (RedisError, OSError) as exc:
            log.warning("event stream unavailable (%s); spooling", exc)
            self._spool.append(event)

    async def _append(self, event: ExecutionEvent) -> None:
        # One round trip, applied atomically (MULTI/EXEC): the event and its count
        # for the reconciliation (per API and minute of the call) land together.
        counts = execution_counts_key(self._stream, event.started_at)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self._stream,
                event.to_fields(),  # type: ignore[arg-type]
                maxlen=self._maxlen,
                approximate=True,
            )
            pipe.hincrby(counts, event.api_id, 1)
            pipe.expire(counts, EXECUTION_COUNTS_TTL_SECONDS)
            await pipe.execute()

    async def flush_spool_forever(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            while self._spool:
                try:
                    await self._append(self._spool[0])
                except (RedisError, OSError):
                    break
                self._spool.popleft()

    @property
    def spooled(self) -> int:
        return len(self._spool)
