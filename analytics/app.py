"""Analytics on :8082: ingests execution events, answers stats (internal, service token)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Query, Request
from redis.asyncio import Redis

from analytics.ingest.consumer import EventConsumer
from analytics.stats.service import ApiStats, api_stats
from shared.db import create_engine, create_sessionmaker
from shared.http.app import create_service_app
from shared.http.service_auth import ServiceOnly
from shared.settings import AnalyticsSettings


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    settings = settings or AnalyticsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.resolved_database_url)
        redis = Redis.from_url(settings.redis_url)
        sessions = create_sessionmaker(engine)
        consumer = EventConsumer(
            redis,
            sessions,
            settings.events_stream,
            settings.consumer_group,
            settings.consumer_name,
            settings.batch_size,
        )
        app.state.settings = settings
        app.state.sessions = sessions
        app.state.consumer = consumer
        task = asyncio.create_task(consumer.run_forever())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await redis.aclose()
            await engine.dispose()

    app = create_service_app("Veil analytics", lifespan, description="Internal: usage stats.")

    @app.get("/internal/v1/apis/{api_id}/stats")
    async def stats(
        api_id: str,
        request: Request,
        _auth: ServiceOnly,
        since: datetime | None = Query(default=None),
        until: datetime | None = Query(default=None),
    ) -> ApiStats:
        async with request.app.state.sessions() as session:
            return await api_stats(session, api_id, since, until)

    return app
