"""Reconciliation of data-plane counts with stored counts, and freshness of the stats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from analytics import jobs
from analytics.app import create_app
from gateway.dataplane.events import EventSink
from shared.events import execution_counts_key
from shared.settings import AnalyticsSettings
from tests.conftest import asgi_client
from tests.integration.analytics_support import (
    app_sessions,
    event,
    feed,
    service_headers,
    wait_stored,
)


@pytest.fixture
def settings(make_settings: Any) -> AnalyticsSettings:
    result: AnalyticsSettings = make_settings(
        AnalyticsSettings, reconcile_interval_seconds=3600, reconcile_settle_seconds=0
    )
    return result


@pytest.fixture
async def analytics(settings: AnalyticsSettings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async for client in asgi_client(create_app(settings)):
        yield client


async def test_reconciliation_finds_a_planted_difference(
    analytics: httpx.AsyncClient,
    settings: AnalyticsSettings,
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = settings.events_stream
    sink = EventSink(redis, stream, maxlen=100_000)
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    counted = [event("api-a", 200, 1.0, minute + timedelta(seconds=s)) for s in range(40)]
    counted += [event("api-b", 200, 1.0, minute + timedelta(minutes=1)) for _ in range(7)]
    for e in counted:
        await sink.emit(e)
    await sink.flush()
    # Planted: an event that reached the stream without being counted (stored > counted) …
    uncounted = event("api-b", 200, 1.0, minute + timedelta(minutes=2))
    await feed(redis, stream, [uncounted])
    # … and two the data plane counted that never arrived (counted > stored).
    await redis.hincrby(execution_counts_key(stream, minute), "api-a", 2)
    assert await wait_stored(app_sessions(analytics), 48) == 48

    params = {
        "since": (minute - timedelta(minutes=10)).isoformat(),
        "until": (minute + timedelta(minutes=10)).isoformat(),
    }
    response = await analytics.get(
        "/internal/v1/reconciliation", params=params, headers=service_headers(settings)
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["matches"] is False
    assert (report["counted"], report["stored"]) == (49, 48)
    found = {
        (d["api_id"], d["minute"][:16], d["counted"], d["stored"]) for d in report["differences"]
    }
    at = minute.isoformat()[:16]
    later = (minute + timedelta(minutes=2)).isoformat()[:16]
    assert found == {("api-a", at, 42, 40), ("api-b", later, 0, 1)}

    # The periodic job reports the same, as warnings.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="veil.analytics.jobs"):
        last = await jobs.reconcile_recent(redis, app_sessions(analytics), settings)
    assert len(last.differences) == 2
    assert sum("reconciliation: API api-a" in r.getMessage() for r in caplog.records) == 1

    # Without the planted differences everything matches.
    clean = {"since": params["since"], "until": (minute + timedelta(minutes=2)).isoformat()}
    await redis.hincrby(execution_counts_key(stream, minute), "api-a", -2)
    response = await analytics.get(
        "/internal/v1/reconciliation", params=clean, headers=service_headers(settings)
    )
    assert response.json()["matches"] is True
    too_long = {"since": (minute - timedelta(days=9)).isoformat(), "until": at}
    response = await analytics.get(
        "/internal/v1/reconciliation", params=too_long, headers=service_headers(settings)
    )
    assert response.status_code == 422
    assert (await analytics.get("/internal/v1/reconciliation")).status_code == 401


async def test_a_call_is_in_the_stats_within_a_second(
    analytics: httpx.AsyncClient, settings: AnalyticsSettings, redis: Redis
) -> None:
    sink = EventSink(redis, settings.events_stream, maxlen=100_000)
    writer = asyncio.create_task(sink.run_forever())  # as the data plane starts it
    headers = service_headers(settings)
    # Let the consumer settle into its blocking read first.
    await asyncio.sleep(0.3)
    for attempt in range(3):
        loop = asyncio.get_running_loop()
        started = loop.time()
        await sink.emit(event("api-fresh", 200, 2.0, datetime.now(UTC)))
        while True:
            stats = (
                await analytics.get("/internal/v1/apis/api-fresh/stats", headers=headers)
            ).json()
            if stats["calls"] == attempt + 1:
                break
            assert loop.time() - started < 1.0, "not visible within 1 s"
            await asyncio.sleep(0.02)
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
