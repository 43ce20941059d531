"""Analytics: exactly-once storage from the Redis stream, stats over a window."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from analytics.app import create_app
from analytics.ingest.consumer import EventConsumer
from analytics.stats.histogram import RELATIVE_ERROR
from shared.events import EVENT_FIELD, ExecutionEvent
from shared.models import Execution
from shared.settings import AnalyticsSettings
from tests.conftest import asgi_client


def event(api_id: str, status: int, latency: float, at: datetime, **extra: Any) -> ExecutionEvent:
    values: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "request_id": uuid.uuid4().hex,
        "api_id": api_id,
        "deployment_id": "d-1",
        "caller_id": "u-1",
        "method": "GET",
        "path": "/x",
        "status_code": status,
        "latency_ms": latency,
        "upstream_ms": latency / 2,
        "bytes_in": 10,
        "bytes_out": 100,
        "started_at": at,
    }
    values.update(extra)
    return ExecutionEvent(**values)


@pytest.fixture
def settings(make_settings: Any) -> AnalyticsSettings:
    result: AnalyticsSettings = make_settings(AnalyticsSettings, batch_size=50)
    return result


@pytest.fixture
async def analytics(settings: AnalyticsSettings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async for client in asgi_client(create_app(settings)):
        yield client


def _consumer(app_client: httpx.AsyncClient) -> EventConsumer:
    transport = app_client._transport
    assert isinstance(transport, httpx.ASGITransport)
    consumer: EventConsumer = transport.app.state.veil.consumer  # type: ignore[attr-defined]
    return consumer


async def _stored(consumer: EventConsumer) -> int:
    async with consumer.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Execution)) or 0)


async def test_redelivered_events_are_stored_once(
    settings: AnalyticsSettings, redis: Redis, make_settings: Any
) -> None:
    from shared.db import create_engine, create_sessionmaker

    engine = create_engine(settings.resolved_database_url)
    sessions = create_sessionmaker(engine)
    stream = settings.events_stream
    first = EventConsumer(redis, sessions, stream, "g", "c1", batch_size=10)
    await first.ensure_group()
    now = datetime.now(UTC)
    batch = [event("api-1", 200, float(i), now) for i in range(24)]
    keyed = {"key_id": "k-1", "subscription_id": "s-1", "version": 4, "gateway_ms": 0.25}
    batch.append(event("api-1", 200, 1.0, now, **keyed))
    for e in batch:
        await redis.xadd(stream, {EVENT_FIELD: e.to_line()})
    # The same event delivered twice (a data plane retry) must count once.
    await redis.xadd(stream, {EVENT_FIELD: batch[0].to_line()})

    # c1 reads a batch and "crashes" before storing: nothing acknowledged.
    await redis.xreadgroup("g", "c1", {stream: ">"}, count=10)
    assert await redis.xpending(stream, "g") is not None

    # c1 comes back: pending entries first, then the rest.
    assert await first.drain(pending_first=True) == 10
    while await first.drain(block_ms=10):
        pass
    assert await _stored(first) == 25
    async with sessions() as session:
        stored = await session.get(Execution, batch[-1].event_id)
        assert stored is not None
        assert (stored.key_id, stored.subscription_id, stored.version) == ("k-1", "s-1", 4)
        assert stored.gateway_ms == 0.25
    pending = await redis.xpending(stream, "g")
    assert pending["pending"] == 0
    await engine.dispose()


async def test_stats_count_errors_and_percentiles(
    analytics: httpx.AsyncClient, settings: AnalyticsSettings, redis: Redis
) -> None:
    now = datetime.now(UTC)
    events = [event("api-1", 200, float(ms), now - timedelta(minutes=5)) for ms in range(1, 101)]
    events += [
        event("api-1", 502, 7.0, now - timedelta(minutes=1)),
        event("api-1", 404, 3.0, now - timedelta(minutes=1)),
    ]
    events += [event("api-1", 200, 999.0, now - timedelta(days=3))]  # outside the default window
    events += [event("api-2", 200, 1.0, now)]  # another API
    for e in events:
        await redis.xadd(settings.events_stream, {EVENT_FIELD: e.to_line()})
    consumer = _consumer(analytics)
    for _ in range(100):
        if await _stored(consumer) == len(events):
            break
        await consumer.drain(block_ms=10)
    assert await _stored(consumer) == len(events)

    token = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    response = await analytics.get("/internal/v1/apis/api-1/stats", headers=token)
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["calls"] == 102
    assert stats["errors"] == 1
    assert stats["client_errors"] == 1
    assert stats["error_rate"] == round(1 / 102, 4)
    # Nearest rank over 1..100 plus 7.0 and 3.0: 102 values; from the rollups'
    # histogram, within its relative error.
    for p, exact in (("p50", 49.0), ("p95", 95.0), ("p99", 99.0)):
        assert stats["latency_ms"][p] == pytest.approx(exact, rel=RELATIVE_ERROR + 1e-9)
    assert stats["latency_ms"]["max"] == 100.0
    assert stats["bytes_out"] == 102 * 100

    window = await analytics.get(
        "/internal/v1/apis/api-1/stats",
        params={"since": (now - timedelta(days=4)).isoformat(), "until": now.isoformat()},
        headers=token,
    )
    assert window.json()["calls"] == 103

    no_token = await analytics.get("/internal/v1/apis/api-1/stats")
    assert no_token.status_code == 401
    assert no_token.json()["error"]["code"] == "invalid_service_token"
    backwards = await analytics.get(
        "/internal/v1/apis/api-1/stats",
        params={"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()},
        headers=token,
    )
    assert backwards.status_code == 422
