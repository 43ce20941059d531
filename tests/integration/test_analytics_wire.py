"""Ingestion of wire-format lines, awkward ones and ones the database refuses, on both
databases."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.ingest.consumer import EventConsumer
from analytics.stats.service import api_stats
from shared.events import EVENT_FIELD, INDEX, ExecutionEvent
from shared.models import Execution
from shared.models.execution import LatencyRollup
from shared.settings import AnalyticsSettings
from tests.integration.analytics_support import event, feed, rolled_up, stored

AWKWARD = ["/tab\there", "/new\nline\\and\\N", "\\N", "/caf\u00e9/\u2603", "/nul\x00byte", ""]


@pytest.fixture
def settings(make_settings: Any) -> AnalyticsSettings:
    result: AnalyticsSettings = make_settings(AnalyticsSettings)
    return result


async def _drain(consumer: EventConsumer) -> None:
    await consumer.ensure_group()
    while await consumer.drain(block_ms=10):
        pass


async def _paths(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessions() as session:
        rows = await session.execute(select(Execution.event_id, Execution.path))
        return {event_id: path for event_id, path in rows}


async def _histogram_total(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        total = await session.scalar(
            select(func.sum(LatencyRollup.count)).where(
                LatencyRollup.resolution_s == 60, LatencyRollup.metric == "t"
            )
        )
        return int(total or 0)


async def test_events_are_stored_once_with_their_rollups(
    sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    """Lines with escapes and NULs among plain ones; the same event may come twice (a
    data plane that sent it again)."""
    stream = "veil:test-lines"
    now = datetime.now(UTC).replace(microsecond=0)
    at = [now - timedelta(minutes=3, seconds=s) for s in range(300)]
    plain = [event("api-1", 200 + 100 * (i % 4), 1.0 + i % 40, at[i]) for i in range(150)]
    keyed = [
        event("api-1", 200, 0.5 + i, at[150 + i], subscription_id="s-1", key_id="k-1", version=2)
        for i in range(150)
    ]
    awkward = [event("api-1", 200, 3.0, now, path=p) for p in AWKWARD]
    await feed(redis, stream, plain[:100])
    await feed(redis, stream, keyed[:100] + awkward[:3])
    await feed(redis, stream, plain[100:] + keyed[:10] + awkward[3:])
    await feed(redis, stream, keyed[100:] + plain[:10])
    everything = plain + keyed + awkward

    consumer = EventConsumer(redis, sessions, stream, "g", "c1", batch_size=64)
    await _drain(consumer)
    assert consumer.stored == await stored(sessions) == len(everything)
    paths = await _paths(sessions)
    assert paths == {e.event_id: e.path.replace("\x00", "\ufffd") for e in everything}
    for resolution in (60, 3600, 86400):
        assert await rolled_up(sessions, resolution) == len(everything)
    assert await _histogram_total(sessions) == len(everything)
    stats = await api_stats(sessions, "api-1", now - timedelta(hours=1), now + timedelta(hours=1))
    assert stats.calls == len(everything)
    assert stats.bytes_out == sum(e.bytes_out for e in everything)
    assert stats.errors == sum(e.status_code >= 500 for e in everything)
    assert stats.latency_ms.max == max(e.latency_ms for e in everything)

    # Every entry delivered again, to another consumer: nothing changes.
    await redis.xgroup_setid(stream, "g", "0")
    again = EventConsumer(redis, sessions, stream, "g", "c2", batch_size=100)
    await _drain(again)
    assert again.stored == 0
    assert await stored(sessions) == len(everything)
    for resolution in (60, 3600, 86400):
        assert await rolled_up(sessions, resolution) == len(everything)
    assert (await redis.xpending(stream, "g"))["pending"] == 0


async def test_lines_the_database_refuses_are_dropped_and_the_rest_stored(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Lines our encoder would not write, but that the fold can read: the database
    refuses the batch (PostgreSQL; on SQLite the same checks are made in Python), which
    is then read line by line: what cannot be stored is logged and dropped."""
    stream = "veil:test-refused"
    now = datetime.now(UTC)
    good = [event("api-1", 200, float(i + 1), now - timedelta(seconds=i)) for i in range(40)]

    def line(e: ExecutionEvent, name: str, value: bytes) -> bytes:
        fields = e.to_line().split(b"\t")
        fields[INDEX[name]] = value
        return b"\t".join(fields)

    too_long = line(event("api-1", 200, 1.0, now), "method", b"PROPPATCHED")  # 10 at most
    no_request_id = line(event("api-1", 200, 1.0, now), "request_id", b"\\N")
    raw_nul = event("api-1", 200, 1.0, now, path="/keep")
    with_nul = line(raw_nul, "path", b"/ke\x00ep")  # stored, as the encoder would write it
    bad_utf8 = line(event("api-1", 200, 1.0, now), "path", b"/\xff")
    for e in good[:20]:
        await redis.xadd(stream, {EVENT_FIELD: e.to_line()})
    for raw in (too_long, no_request_id, with_nul, bad_utf8):
        await redis.xadd(stream, {EVENT_FIELD: raw})
    for e in good[20:]:
        await redis.xadd(stream, {EVENT_FIELD: e.to_line()})

    consumer = EventConsumer(redis, sessions, stream, "g", "c1", batch_size=1000)
    with caplog.at_level(logging.ERROR, logger="veil.analytics.ingest"):
        await _drain(consumer)
    assert consumer.stored == await stored(sessions) == len(good) + 1
    paths = await _paths(sessions)
    assert paths[raw_nul.event_id] == "/ke\ufffdep"
    assert set(paths) == {e.event_id for e in good} | {raw_nul.event_id}
    for resolution in (60, 3600, 86400):
        assert await rolled_up(sessions, resolution) == len(good) + 1
    assert await _histogram_total(sessions) == len(good) + 1
    assert sum("dropping malformed event" in r.getMessage() for r in caplog.records) == 3
    assert (await redis.xpending(stream, "g"))["pending"] == 0
