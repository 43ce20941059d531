"""Appends execution events to the Redis stream that analytics consumes.

One entry per event, in wire format 1 (shared/events.py): one field, the event as
one line, so one XADD has eight arguments rather than forty.

Calls hand their event to the sink and return: a writer task sends what has
gathered in one MULTI/EXEC round trip (the XADDs, plus per API and minute the
count that analytics' reconciliation compares with what it stored), so the
cost of a round trip is shared by every call that finished meanwhile (a round
trip per call cost many times a batched event: docs/benchmarks.md).

While Redis is unreachable, events wait in memory (up to `spool_size`; past
that, new ones are dropped and counted) and the writer retries every
`retry_seconds`, so a short outage loses nothing. An event is removed from
memory only after its batch is acknowledged: a failed batch is sent again
whole (analytics stores each event id once). A worker that dies loses what it
had not yet sent, a few milliseconds' worth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.dataplane.resp import KeptConnection
from shared.events import (
    EVENT_FIELD,
    EXECUTION_COUNTS_TTL_SECONDS,
    ExecutionEvent,
    event_line,
    execution_counts_key,
)
from shared.resp import pack

log = logging.getLogger("veil.dataplane.events")

MAX_BATCH = 500  # events per round trip: bounds one MULTI/EXEC's size
_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"
_COUNTS_TTL = str(EXECUTION_COUNTS_TTL_SECONDS).encode()


class EventSink:
    def __init__(
        self,
        redis: Redis,
        stream: str,
        maxlen: int,
        spool_size: int = 100_000,
        retry_seconds: float = 1.0,
        warn_interval: float = 30.0,
        linger_seconds: float = 0.01,
    ) -> None:
        self._stream = stream
        self._maxlen = maxlen
        # Every XADD is the same but for its last argument, the event's line.
        head = [b"XADD", stream.encode(), b"MAXLEN", b"~", str(maxlen).encode(), b"*"]
        self._xadd = pack(*head, EVENT_FIELD, b"")[: -len(b"$0\r\n\r\n")]
        self._spool_size = spool_size
        self._retry_seconds = retry_seconds
        self._warn_interval = warn_interval
        self._linger = linger_seconds
        self._connection = KeptConnection(redis)  # the writer's own, kept between batches
        self._pending: deque[ExecutionEvent] = deque()
        self._wake = asyncio.Event()
        self._send_lock = asyncio.Lock()  # one batch at a time: never the same event twice
        self._closing = False
        self._warned_at = -float("inf")
        self.dropped = 0

    async def emit(self, event: ExecutionEvent) -> None:
        self.add(event)

    def add(self, event: ExecutionEvent) -> None:
        """Queue one event for the writer; never waits."""
        if len(self._pending) >= self._spool_size:
            self.dropped += 1  # the oldest may be in flight: drop the newcomer
            self._warn(f"event spool full ({self._spool_size}); {self.dropped} events dropped")
            return
        self._pending.append(event)
        self._wake.set()

    @property
    def spooled(self) -> int:
        """Events not yet acknowledged by Redis."""
        return len(self._pending)

    async def run_forever(self) -> None:
        """The writer: sends whatever is pending, batch after batch; retries on failure."""
        while not (self._closing and not self._pending):
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                if not self._closing:
                    # Let calls gather: one round trip for many (events need to be
                    # in the stats within 1 s, not within 1 ms).
                    await asyncio.sleep(self._linger)
                continue
            try:
                await self._send_batch()
            except (RedisError, OSError) as exc:
                if self._closing:
                    return
                self._warn(f"event stream unavailable ({exc}); {len(self._pending)} spooled")
                await asyncio.sleep(self._retry_seconds)

    async def flush(self) -> None:
        """Send everything pending now (tests; shutdown). Raises when Redis fails."""
        while self._pending:
            await self._send_batch()

    async def close(self, writer: asyncio.Task[None] | None, grace: float = 2.0) -> None:
        """Let the writer send what is left (one last try each), then stop it."""
        self._closing = True
        self._wake.set()
        if writer is not None:
            done, _ = await asyncio.wait({writer}, timeout=grace)
            if not done:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        await self._connection.close()
        if self._pending:
            log.error("%d execution events not delivered at shutdown", len(self._pending))

    async def _send_batch(self) -> None:
        async with self._send_lock:
            count = min(len(self._pending), MAX_BATCH)
            if not count:
                return
            # Only this method removes events, and only from the left, under the
            # lock: the first `count` are the same after the await.
            batch = [self._pending[i] for i in range(count)]
            await self._append(batch)
            for _ in range(count):
                self._pending.popleft()

    async def _append(self, batch: list[ExecutionEvent]) -> None:
        # One round trip, applied atomically (MULTI/EXEC): the events and their
        # counts for the reconciliation (per API and minute of the call) land together.
        counts: Counter[tuple[str, str]] = Counter()
        minute_keys: dict[float, str] = {}  # formatting a key costs more than the rest
        for e in batch:
            minute = e.started_at.timestamp() // 60
            key = minute_keys.get(minute)
            if key is None:
                key = minute_keys[minute] = execution_counts_key(self._stream, e.started_at)
            counts[key, e.api_id] += 1
        xadd = self._xadd
        parts = [_MULTI]
        for event in batch:
            line = event_line(tuple(vars(event).values()))
            parts.append(b"%s$%d\r\n%s\r\n" % (xadd, len(line), line))
        for (key, api_id), n in counts.items():
            parts.append(pack(b"HINCRBY", key, api_id, n))
        for key in {key for key, _ in counts}:
            parts.append(pack(b"EXPIRE", key, _COUNTS_TTL))
        parts.append(_EXEC)
        await self._send(b"".join(parts), replies=len(parts))

    async def _send(self, packed: bytes, replies: int) -> None:
        """Send the pre-packed batch on the writer's kept connection, check every reply.

        redis-py's pipeline packs each argument in Python and reads
        each reply under its own timeout; here a batch is a few bytes operations
        per event and one read per reply (resp.py).
        """
        answers = await self._connection.exchange(packed, replies)
        results = answers[-1]  # EXEC's: one reply per queued command, or None if aborted
        if results is None:
            raise RedisError("MULTI/EXEC of execution events was aborted")
        if isinstance(results, Exception):  # EXECABORT: a command was refused when queued
            raise results
        for reply in [*answers[:-1], *results]:
            if isinstance(reply, Exception):
                raise reply

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= self._warn_interval:
            self._warned_at = now
            log.warning("%s", message)
