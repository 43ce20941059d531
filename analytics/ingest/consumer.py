"""Reads execution events from the Redis stream and stores each exactly once.

At-least-once delivery (a consumer group; entries are acknowledged only after
the database commit) plus an idempotent insert keyed on the event id gives
exactly-once storage; the rollups are written in the same transaction, and
only for the events that insert actually stored. Entries left pending by this
consumer are read again first on start-up; entries left pending by a consumer
that is gone for good are claimed after `claim_idle_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.ingest.entries import row_of
from analytics.ingest.repository import Batch, prepare, store_batch

log = logging.getLogger("veil.analytics.ingest")


def tune_gc(threshold: int) -> tuple[int, int, int]:
    """Run the cyclic garbage collector after `threshold` allocations instead of 700.

    A batch read from the stream is hundreds of thousands of small objects alive at
    once (thousands of entries of 17 fields); with CPython's default the collector
    walks them over and over: reading and decoding an entry took 16 µs of CPU instead
    of 8 on the 2-core development machine. Ingestion makes no reference cycles; the
    little cyclic garbage the process makes is collected later, not never (the older
    generations keep CPython's ratios). What start-up allocated is frozen out of the
    collections. Returns the thresholds it replaced (0: leaves them alone).
    """
    previous = gc.get_threshold()
    if threshold > 0:
        gc.freeze()
        gc.set_threshold(threshold, previous[1], previous[2])
    return previous


def restore_gc(previous: tuple[int, int, int]) -> None:
    gc.set_threshold(*previous)
    gc.unfreeze()
    gc.collect()


class EventConsumer:
    def __init__(
        self,
        redis: Redis,
        sessions: async_sessionmaker[AsyncSession],
        stream: str,
        group: str,
        consumer: str,
        batch_size: int,
        claim_idle_ms: int = 60_000,
    ) -> None:
        self.redis = redis
        self.sessions = sessions
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.stored = 0  # events this consumer stored (redeliveries not counted)

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run_forever(self, block_ms: int = 200) -> None:
        """Block at most `block_ms` per read: a new event is stored well within a second.

        The next batch is read, decoded and rolled up while the database stores the
        previous one: one store in flight at a time, each acknowledged after its commit.
        """
        while True:
            storing: asyncio.Task[None] | None = None
            try:
                await self.ensure_group()
                while await self.drain(pending_first=True):
                    pass
                reads = 0
                this = asyncio.current_task()
                while True:
                    if this is not None and this.cancelling():
                        # A cancellation a client library swallowed mid-call: honour it.
                        raise asyncio.CancelledError
                    if reads % 1000 == 0:
                        if storing is not None:
                            await asyncio.shield(storing)
                            storing = None
                        await self.claim_abandoned()
                    reads += 1
                    entries = await self.read(block_ms=block_ms)
                    batch = self.prepare(entries) if entries else None
                    if storing is not None:
                        # Shielded: a cancellation is for this loop, even when it comes
                        # while a store (which may not pass it on) is being awaited.
                        await asyncio.shield(storing)
                        storing = None
                    if entries:
                        storing = asyncio.create_task(self.store(entries, batch))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("event stream unavailable (%s); retrying", exc)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("event ingestion failed; retrying")
                await asyncio.sleep(1.0)
            finally:
                if storing is not None:
                    # Let the store in flight finish (commit and acknowledge); what it
                    # did not acknowledge is read again, pending first.
                    with contextlib.suppress(BaseException):
                        await asyncio.wait([storing])

    async def read(self, *, pending_first: bool = False, block_ms: int | None = None) -> list[Any]:
        """One batch: this consumer's pending entries when `pending_first`, else new ones."""
        response: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: "0" if pending_first else ">"},
            count=self.batch_size,
            block=None if pending_first else block_ms,
        )
        if not response:
            return []
        entries: list[Any] = response[0][1]
        return entries

    async def drain(self, *, pending_first: bool = False, block_ms: int | None = None) -> int:
        """Read one batch (pending entries when `pending_first`), store it, acknowledge it."""
        entries = await self.read(pending_first=pending_first, block_ms=block_ms)
        if entries:
            await self.store(entries)
        return len(entries)

    async def claim_abandoned(self) -> int:
        """Take over and store entries another consumer read but never acknowledged (it died)."""
        claimed = 0
        start = "0-0"
        while True:
            response: Any = await self.redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id=start,
                count=self.batch_size,
            )
            start, entries = response[0], response[1]
            entries = [entry for entry in entries if entry[1] is not None]  # trimmed away
            if entries:
                await self.store(entries)
                claimed += len(entries)
            if start in (b"0-0", "0-0"):
                return claimed

    def prepare(self, entries: list[Any]) -> Batch:
        """The entries as execution rows, with their rollups (CPU only, no I/O)."""
        rows = []
        for entry_id, fields in entries:
            if not fields:  # trimmed from the stream while pending: nothing left to store
                continue
            try:
                rows.append(row_of(fields))
            except (ValueError, KeyError) as exc:
                log.error("dropping malformed event %s: %s", entry_id, exc)
        return prepare(rows)

    async def store(self, entries: list[Any], batch: Batch | None = None) -> None:
        """Store the entries (`batch`: as prepared already) in one transaction, then
        acknowledge them."""
        if batch is None:
            batch = self.prepare(entries)
        async with self.sessions() as session:
            inserted = await store_batch(session, batch)
            await session.commit()
        await self.redis.xack(self.stream, self.group, *[entry_id for entry_id, _ in entries])
        self.stored += inserted
