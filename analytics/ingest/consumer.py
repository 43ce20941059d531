"""Reads execution events from the Redis stream and stores each exactly once.

At-least-once delivery (a consumer group; entries are acknowledged only after
the database commit) plus an idempotent insert keyed on the event id gives
exactly-once storage. Entries left pending by a crashed consumer are read
again first on start-up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.ingest.repository import insert_executions
from shared.events import ExecutionEvent

log = logging.getLogger("veil.analytics.ingest")


class EventConsumer:
    def __init__(
        self,
        redis: Redis,
        sessions: async_sessionmaker[AsyncSession],
        stream: str,
        group: str,
        consumer: str,
        batch_size: int,
    ) -> None:
        self.redis = redis
        self.sessions = sessions
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.batch_size = batch_size
        self.stored = 0

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run_forever(self, block_ms: int = 1000) -> None:
        while True:
            try:
                await self.ensure_group()
                await self.drain(pending_first=True)
                while True:
                    await self.drain(block_ms=block_ms)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("event stream unavailable (%s); retrying", exc)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("event ingestion failed; retrying")
                await asyncio.sleep(1.0)

    async def drain(self, *, pending_first: bool = False, block_ms: int | None = None) -> int:
        """Read one batch (pending entries when `pending_first`), store it, acknowledge it."""
        start_id = "0" if pending_first else ">"
        response: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: start_id},
            count=self.batch_size,
            block=None if pending_first else block_ms,
        )
        if not response:
            return 0
        entries = response[0][1]
        if not entries:
            return 0
        ids = [entry_id for entry_id, _ in entries]
        events: list[ExecutionEvent] = []
        for entry_id, fields in entries:
            try:
                events.append(ExecutionEvent.from_fields(fields))
            except (ValueError, KeyError) as exc:
                log.error("dropping malformed event %s: %s", entry_id, exc)
        async with self.sessions() as session:
            await insert_executions(session, events)
            await session.commit()
        await self.redis.xack(self.stream, self.group, *ids)
        self.stored += len(events)
        return len(entries)
