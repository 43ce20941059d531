"""The billing job: closes months that are over and keeps this month's drafts fresh.

Run by the analytics app every `billing_interval_seconds`. A month is closed
`billing_close_grace_seconds` after it ends, so that events still in the stream
at midnight land on it rather than as adjustments on the next one. Every step is
idempotent: ticks may overlap a restart, run twice, or be skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.billing import repository, service
from shared.periodic import every

log = logging.getLogger("veil.analytics.billing")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class TickReport:
    closed: list[service.CloseReport] = field(default_factory=list)
    drafts: int = 0


class BillingJob:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        fee_bps: int,
        interval_seconds: float,
        grace_seconds: float,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.sessions = sessions
        self.fee_bps = fee_bps
        self.interval = interval_seconds
        self.grace = timedelta(seconds=grace_seconds)
        self.clock = clock

    def due(self, period: str, now: datetime) -> bool:
        return now >= service.period_bounds(period)[1] + self.grace

    async def tick(self, now: datetime | None = None) -> TickReport:
        now = now or self.clock()
        current = service.period_of(now)
        report = TickReport()
        # The last month whose grace is over, and any older one left with drafts
        # (the job was not running when it ended).
        latest_due = service.previous_period(service.period_of(now - self.grace))
        async with self.sessions() as session:
            periods = set(await repository.open_periods_before(session, current))
        periods.add(latest_due)
        for period in sorted(periods):
            if self.due(period, now):
                report.closed.append(
                    await service.close_period(self.sessions, period, now=now, fee_bps=self.fee_bps)
                )
        report.drafts = await service.refresh_drafts(
            self.sessions, current, now=now, fee_bps=self.fee_bps
        )
        return report

    async def run_forever(self) -> NoReturn:
        await every(self.interval, self.tick, "billing run", log=log)
