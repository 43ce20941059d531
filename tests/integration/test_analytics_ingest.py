"""The consumer's pace at a trickle, and API keys' last use, on both databases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.ingest.consumer import EventConsumer
from shared.events import ExecutionEvent
from shared.models import Execution
from shared.settings import AnalyticsSettings
from tests.integration.analytics_support import event, feed, rolled_up, stored, wait_stored
from tests.integration.conftest import signup
from tests.integration.marketplace_support import public_api, subscribe


@pytest.fixture
def settings(make_settings: Any) -> AnalyticsSettings:
    result: AnalyticsSettings = make_settings(AnalyticsSettings)
    return result


class CountingConsumer(EventConsumer):
    """Counts its stores and the entries each one held."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    async def store(self, entries: list[Any], batch: Any = None) -> None:
        self.batches.append(len(entries))
        await super().store(entries, batch)


@contextlib.asynccontextmanager
async def running(consumer: EventConsumer, min_interval_ms: int) -> AsyncIterator[None]:
    await consumer.ensure_group()
    task = asyncio.create_task(consumer.run_forever(200, min_interval_ms))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_trickle_is_stored_in_few_batches_each_event_once(
    sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    stream = "veil:test-trickle"
    consumer = CountingConsumer(redis, sessions, stream, "g", "c1", batch_size=1000)
    now = datetime.now(UTC)
    events = [event("api-1", 200, 1.0, now) for _ in range(100)]
    async with running(consumer, min_interval_ms=300):
        await asyncio.sleep(0.05)  # the consumer waits in its blocking read
        for burst in range(20):  # as the data plane writes: small bursts, ~every 25 ms
            await feed(redis, stream, events[burst * 5 : burst * 5 + 5])
            await asyncio.sleep(0.025)
        assert await wait_stored(sessions, 100, within=5.0) == 100
        assert (await redis.xpending(stream, "g"))["pending"] == 0
    # Read at most every 300 ms: the first burst, then what gathered meanwhile.
    assert sum(consumer.batches) == 100
    assert len(consumer.batches) <= 5, consumer.batches
    assert consumer.stored == 100
    async with sessions() as session:
        distinct = select(func.count(func.distinct(Execution.event_id)))
        assert await session.scalar(distinct) == 100
    assert await rolled_up(sessions) == 100


async def test_a_backlog_drains_without_waiting(
    sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    stream = "veil:test-backlog"
    now = datetime.now(UTC)
    await feed(redis, stream, [event("api-1", 200, 1.0, now) for _ in range(100)])
    consumer = CountingConsumer(redis, sessions, stream, "g", "c1", batch_size=10)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with running(consumer, min_interval_ms=1000):
        # Full batches are read one after the other; waiting would take 9 s at least.
        assert await wait_stored(sessions, 100, within=10.0) == 100
        assert loop.time() - started < 4.0
    assert consumer.batches == [10] * 10


async def _last_used(gateway: httpx.AsyncClient, headers: dict[str, str], sub: str) -> Any:
    keys = await gateway.get(f"/api/v1/subscriptions/{sub}/keys", headers=headers)
    assert keys.status_code == 200, keys.text
    return {k["id"]: k["last_used_at"] for k in keys.json()["items"]}


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


async def test_ingest_sets_keys_last_used_at_only_forward(
    gateway: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    dev = await signup(gateway)
    consumer_headers = await signup(gateway, role="consumer")
    api, _ = await public_api(gateway, dev)
    subscribed = await subscribe(gateway, consumer_headers, api["id"])
    sub = subscribed["subscription"]["id"]
    first = subscribed["key"]["id"]
    second = await gateway.post(f"/api/v1/subscriptions/{sub}/keys", headers=consumer_headers)
    second_id = second.json()["key"]["id"]
    assert await _last_used(gateway, consumer_headers, sub) == {first: None, second_id: None}

    stream = "veil:test-last-used"
    consumer = EventConsumer(redis, sessions, stream, "g", "c1", batch_size=1000)
    await consumer.ensure_group()
    now = datetime.now(UTC).replace(microsecond=123456)

    def called(key_id: str, at: datetime) -> ExecutionEvent:
        return event(api["id"], 200, 1.0, at, key_id=key_id, subscription_id=sub)

    newest = now - timedelta(seconds=5)
    batch = [called(first, now - timedelta(minutes=m)) for m in (3, 1, 2)]
    batch += [called(first, newest), event(api["id"], 200, 1.0, now)]  # the last: no key
    await feed(redis, stream, batch)
    assert await consumer.drain() == 5
    used = await _last_used(gateway, consumer_headers, sub)
    assert (_at(used[first]), used[second_id]) == (newest, None)

    # An older call later does not move it back; the other key gets its own.
    older = [called(first, now - timedelta(hours=1)), called(second_id, now - timedelta(days=2))]
    await feed(redis, stream, older)
    assert await consumer.drain() == 2
    used = await _last_used(gateway, consumer_headers, sub)
    assert (_at(used[first]), _at(used[second_id])) == (newest, now - timedelta(days=2))

    # A batch with an event stored before (a redelivery) moves it on for the new one.
    latest = called(first, now)
    await feed(redis, stream, [batch[3], latest])
    assert await consumer.drain() == 2
    assert await stored(sessions) == 8
    assert _at((await _last_used(gateway, consumer_headers, sub))[first]) == now
