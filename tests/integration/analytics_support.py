"""Helpers for the analytics tests: events, stream feeding, waiting for storage."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.ingest.consumer import EventConsumer
from shared.events import EVENT_FIELD, ExecutionEvent
from shared.models import Execution
from shared.models.execution import ApiRollup, ExecutionRollup
from shared.settings import AnalyticsSettings


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
        "upstream_ms": latency * 0.8,
        "bytes_in": 10,
        "bytes_out": 100,
        "started_at": at,
        "gateway_ms": latency * 0.2,
    }
    values.update(extra)
    return ExecutionEvent(**values)


async def feed(redis: Redis, stream: str, events: list[ExecutionEvent]) -> None:
    """XADD the events as the data plane does (wire format 1)."""
    for start in range(0, len(events), 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for e in events[start : start + 1000]:
                pipe.xadd(stream, {EVENT_FIELD: e.to_line()})
            await pipe.execute()


def app_consumer(client: httpx.AsyncClient) -> EventConsumer:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    consumer: EventConsumer = transport.app.state.veil.consumer  # type: ignore[attr-defined]
    return consumer


async def stored(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Execution)) or 0)


async def rolled_up(sessions: async_sessionmaker[AsyncSession], resolution: int = 60) -> int:
    """Calls in the rollups of one resolution; both rollup tables must agree."""
    totals = []
    async with sessions() as session:
        for model in (ExecutionRollup, ApiRollup):
            total = await session.scalar(
                select(func.sum(model.calls)).where(model.resolution_s == resolution)
            )
            totals.append(int(total or 0))
    assert totals[0] == totals[1], totals
    return totals[0]


async def wait_stored(
    sessions: async_sessionmaker[AsyncSession], expected: int, within: float = 30.0
) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    count = await stored(sessions)
    while count < expected and loop.time() < deadline:
        await asyncio.sleep(0.05)
        count = await stored(sessions)
    return count


def service_headers(settings: AnalyticsSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}


def app_sessions(client: httpx.AsyncClient) -> async_sessionmaker[AsyncSession]:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    sessions: async_sessionmaker[AsyncSession] = transport.app.state.veil.sessions  # type: ignore[attr-defined]
    return sessions
