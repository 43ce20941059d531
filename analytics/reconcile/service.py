"""Reconciliation: what the data plane counted vs what analytics stored, per API and minute.

The data plane's EventSink increments a per-minute Redis hash (field: API id)
in the same atomic round trip as each XADD; analytics stores each event once
and rolls it up per minute. Any difference in a settled minute is an event
lost (or doubled) between them, or a Redis counter that expired.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.stats import repository
from analytics.stats.windows import aware, ceil_to, floor_to
from shared.errors import Unprocessable
from shared.events import EXECUTION_COUNTS_TTL_SECONDS, execution_counts_key
from shared.models.base import utcnow
from shared.models.execution import MINUTE

MAX_WINDOW = timedelta(seconds=EXECUTION_COUNTS_TTL_SECONDS)


class MinuteDifference(BaseModel):
    api_id: str
    minute: datetime
    counted: int  # by the data plane
    stored: int  # by analytics
    difference: int  # counted - stored: > 0 lost on the way, < 0 stored but never counted


class ReconciliationReport(BaseModel):
    since: datetime
    until: datetime
    checked_at: datetime
    counted: int
    stored: int
    matches: bool
    differences: list[MinuteDifference]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def counted_per_minute(
    redis: Redis, stream: str, since: datetime, until: datetime
) -> dict[tuple[str, datetime], int]:
    minutes = []
    at = since
    while at < until:
        minutes.append(at)
        at += timedelta(seconds=MINUTE)
    async with redis.pipeline(transaction=False) as pipe:
        for minute in minutes:
            pipe.hgetall(execution_counts_key(stream, minute))
        hashes = await pipe.execute()
    counted: dict[tuple[str, datetime], int] = {}
    for minute, fields in zip(minutes, hashes, strict=True):
        for api_id, count in fields.items():
            counted[(_text(api_id), minute)] = int(count)
    return counted


async def reconcile(
    redis: Redis, session: AsyncSession, stream: str, since: datetime, until: datetime
) -> ReconciliationReport:
    since, until = floor_to(aware(since), MINUTE), ceil_to(aware(until), MINUTE)
    if since >= until:
        raise Unprocessable("'since' must be before 'until'.", code="invalid_window")
    if until - since > MAX_WINDOW:
        raise Unprocessable(
            "The data plane's counts are kept 8 days: reconcile at most that.",
            code="window_too_long",
        )
    counted = await counted_per_minute(redis, stream, since, until)
    stored = {
        (api_id, aware(minute)): int(calls)
        for api_id, minute, calls in await repository.stored_per_minute(session, since, until)
    }
    differences = [
        MinuteDifference(
            api_id=api_id,
            minute=minute,
            counted=counted.get((api_id, minute), 0),
            stored=stored.get((api_id, minute), 0),
            difference=counted.get((api_id, minute), 0) - stored.get((api_id, minute), 0),
        )
        for api_id, minute in sorted(set(counted) | set(stored), key=lambda k: (k[1], k[0]))
        if counted.get((api_id, minute), 0) != stored.get((api_id, minute), 0)
    ]
    return ReconciliationReport(
        since=since,
        until=until,
        checked_at=utcnow(),
        counted=sum(counted.values()),
        stored=sum(stored.values()),
        matches=not differences,
        differences=differences,
    )
