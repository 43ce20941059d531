"""Exactly-once under a real crash: analytics is SIGKILLed in the middle of a burst."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import Execution
from shared.settings import AnalyticsSettings
from tests.integration.analytics_support import event, feed, rolled_up, stored, wait_stored
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
BURST = 20_000


@pytest.fixture
def settings(make_settings: Any) -> AnalyticsSettings:
    result: AnalyticsSettings = make_settings(AnalyticsSettings)
    return result


@pytest.fixture
def start_analytics(settings: AnalyticsSettings) -> Iterator[Any]:
    """Start the analytics service (uvicorn, its own process) as `make run` does."""
    started: list[subprocess.Popen[bytes]] = []
    env = {
        **os.environ,
        "VEIL_DATABASE_URL": settings.resolved_database_url,
        "VEIL_REDIS_URL": settings.redis_url,
        "VEIL_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "VEIL_SERVICE_TOKEN": settings.service_token.get_secret_value(),
        "VEIL_SECRETS_KEY": settings.secrets_key.get_secret_value(),
        "VEIL_DATA_DIR": str(settings.data_dir),
        "VEIL_BATCH_SIZE": "100",  # many commits: a kill lands between two of them
    }

    def start() -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "uvicorn", "analytics.app:create_app", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(free_port()), "--log-level", "warning"]
        process = subprocess.Popen(command, cwd=ROOT, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def test_sigkill_mid_burst_then_restart_stores_each_event_once(
    settings: AnalyticsSettings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    start_analytics: Any,
) -> None:
    now = datetime.now(UTC)
    events = [
        event("api-1", 200 if i % 10 else 500, 1.0 + i % 50, now - timedelta(seconds=i % 600))
        for i in range(BURST)
    ]
    first = start_analytics()
    await feed(redis, settings.events_stream, events[: BURST // 2])
    feeding = asyncio.create_task(feed(redis, settings.events_stream, events[BURST // 2 :]))

    # Kill it hard once it has stored some, well before all.
    while (count := await stored(sessions)) < 1000:
        assert first.poll() is None, "analytics exited"
        await asyncio.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    await feeding
    at_kill = await stored(sessions)
    assert 1000 <= count <= at_kill < BURST, at_kill

    start_analytics()
    assert await wait_stored(sessions, BURST, within=120) == BURST
    await asyncio.sleep(0.5)  # anything stored twice would show up now
    assert await stored(sessions) == BURST
    async with sessions() as session:
        distinct = await session.scalar(select(func.count(func.distinct(Execution.event_id))))
    assert distinct == BURST
    for resolution in (60, 3600, 86400):
        assert await rolled_up(sessions, resolution) == BURST  # rollups: no double count either
    pending = await redis.xpending(settings.events_stream, settings.consumer_group)
    for _ in range(50):
        if pending["pending"] == 0:
            break
        await asyncio.sleep(0.1)
        pending = await redis.xpending(settings.events_stream, settings.consumer_group)
    assert pending["pending"] == 0
