"""Analytics on :8082: ingests execution events; stats, history, reconciliation (internal)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from fastapi import FastAPI, Query
from redis.asyncio import Redis

from analytics import jobs
from analytics.billing.job import BillingJob
from analytics.billing.router import router as billing_router
from analytics.deps import Session, State
from analytics.history.schemas import ExecutionPage
from analytics.history.service import history
from analytics.ingest.consumer import EventConsumer, restore_gc, tune_gc
from analytics.reconcile.service import ReconciliationReport, reconcile
from analytics.state import AnalyticsState
from analytics.stats.schemas import ApiStats
from analytics.stats.service import api_stats
from shared.db import create_engine, create_sessionmaker
from shared.http.app import create_service_app
from shared.http.service_auth import ServiceOnly
from shared.models.base import utcnow
from shared.periodic import every
from shared.settings import AnalyticsSettings


def create_app(settings: AnalyticsSettings | None = None) -> FastAPI:
    settings = settings or AnalyticsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[AnalyticsState]:
        gc_thresholds = tune_gc(settings.ingest_gc_threshold)
        engine = create_engine(settings.resolved_database_url, settings.database_timeouts)
        redis = Redis.from_url(settings.redis_url)
        sessions = create_sessionmaker(engine)
        state = AnalyticsState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            redis=redis,
            consumer=EventConsumer(
                redis,
                sessions,
                settings.events_stream,
                settings.consumer_group,
                settings.consumer_name,
                settings.batch_size,
            ),
            billing=BillingJob(
                sessions,
                settings.platform_fee_bps,
                settings.billing_interval_seconds,
                settings.billing_close_grace_seconds,
            ),
        )

        async def reconcile_job() -> None:
            state.last_reconciliation = await jobs.reconcile_recent(redis, sessions, settings)

        tasks = [
            asyncio.create_task(
                state.consumer.run_forever(settings.block_ms, settings.ingest_min_interval_ms)
            ),
            asyncio.create_task(
                every(
                    settings.purge_interval_seconds,
                    lambda: jobs.purge_once(sessions, settings),
                    "raw execution purge",
                    log=jobs.log,
                )
            ),
            asyncio.create_task(
                every(
                    settings.reconcile_interval_seconds,
                    reconcile_job,
                    "reconciliation",
                    log=jobs.log,
                )
            ),
        ]
        if settings.billing_interval_seconds > 0:
            tasks.append(asyncio.create_task(state.billing.run_forever()))
        try:
            yield state
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await redis.aclose()
            await engine.dispose()
            restore_gc(gc_thresholds)

    app = create_service_app(
        "Veil analytics", lifespan, description="Internal: usage stats, history, reconciliation."
    )

    app.include_router(billing_router)

    @app.get("/internal/v1/apis/{api_id}/stats")
    async def stats(
        api_id: str,
        _auth: ServiceOnly,
        state: State,
        since: datetime | None = Query(default=None, description="default: 24 hours ago"),
        until: datetime | None = Query(default=None, description="default: now"),
        version: int | None = Query(default=None),
        subscription_id: str | None = Query(default=None),
        key_id: str | None = Query(default=None),
    ) -> ApiStats:
        """Calls, errors, latency percentiles, bytes, top consumers and a time series."""
        return await api_stats(
            state.sessions,
            api_id,
            since,
            until,
            version=version,
            subscription_id=subscription_id,
            key_id=key_id,
        )

    @app.get("/internal/v1/apis/{api_id}/executions")
    async def executions(
        api_id: str,
        _auth: ServiceOnly,
        session: Session,
        since: datetime | None = Query(default=None),
        until: datetime | None = Query(default=None),
        status: str | None = Query(default=None, description="a code (404) or a class (5xx)"),
        key_id: str | None = Query(default=None),
        subscription_id: str | None = Query(default=None),
        version: int | None = Query(default=None),
        cursor: str | None = Query(default=None),
        limit: int = Query(default=50),
    ) -> ExecutionPage:
        """The API's calls, newest first, a page at a time."""
        return await history(
            session,
            api_id,
            since=since,
            until=until,
            status=status,
            key_id=key_id,
            subscription_id=subscription_id,
            version=version,
            cursor=cursor,
            limit=limit,
        )

    @app.get("/internal/v1/reconciliation")
    async def reconciliation(
        _auth: ServiceOnly,
        state: State,
        session: Session,
        since: datetime | None = Query(default=None, description="default: an hour before until"),
        until: datetime | None = Query(default=None, description="default: now"),
    ) -> ReconciliationReport:
        """Data-plane counts vs stored counts per API and minute; every difference listed."""
        until = until or utcnow()
        since = since or until - timedelta(hours=1)
        return await reconcile(state.redis, session, state.settings.events_stream, since, until)

    @app.get("/internal/v1/reconciliation/last")
    async def last_reconciliation(_auth: ServiceOnly, state: State) -> ReconciliationReport | None:
        """The report of the periodic job's last run (None before the first one)."""
        return state.last_reconciliation

    return app
