"""Everything the analytics service creates at startup, held on `app.state.veil`."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from analytics.billing.job import BillingJob
from analytics.ingest.consumer import EventConsumer
from analytics.reconcile.service import ReconciliationReport
from shared.settings import AnalyticsSettings


@dataclass
class AnalyticsState:
    settings: AnalyticsSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    consumer: EventConsumer
    billing: BillingJob
    # The periodic reconciliation's last report (None before its first run).
    last_reconciliation: ReconciliationReport | None = None
    publisher: None = None  # nothing analytics changes is cached by the data plane
