"""Periodic jobs of the analytics service: raw-data retention and reconciliation
(run by shared/periodic.py `every`)."""

from __future__ import annotations

import logging
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.reconcile.service import ReconciliationReport, reconcile
from analytics.retention import purge_raw
from shared.models.base import utcnow
from shared.settings import AnalyticsSettings

log = logging.getLogger("veil.analytics.jobs")


async def purge_once(
    sessions: async_sessionmaker[AsyncSession], settings: AnalyticsSettings
) -> int:
    before = utcnow() - timedelta(days=settings.raw_retention_days)
    deleted = await purge_raw(sessions, before)
    if deleted:
        log.info("purged %d raw executions older than %s", deleted, before.isoformat())
    return deleted


async def reconcile_recent(
    redis: Redis, sessions: async_sessionmaker[AsyncSession], settings: AnalyticsSettings
) -> ReconciliationReport:
    """Reconcile the last settled window; log a warning for every difference."""
    until = utcnow() - timedelta(seconds=settings.reconcile_settle_seconds)
    since = until - timedelta(minutes=settings.reconcile_window_minutes)
    async with sessions() as session:
        report = await reconcile(redis, session, settings.events_stream, since, until)
    for d in report.differences:
        log.warning(
            "reconciliation: API %s minute %s: data plane counted %d, analytics stored %d",
            d.api_id,
            d.minute.isoformat(),
            d.counted,
            d.stored,
        )
    return report
