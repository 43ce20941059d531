"""Stats for one API over a time window: counts, errors, latency percentiles."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.stats import repository
from shared.errors import Unprocessable
from shared.models import Execution

PERCENTILES = (50, 95, 99)


class LatencySummary(BaseModel):
    p50: float | None
    p95: float | None
    p99: float | None
    avg: float | None = None
    max: float | None = None


class ApiStats(BaseModel):
    api_id: str
    since: datetime
    until: datetime
    calls: int
    errors: int  # 5xx: the API or the platform failed
    client_errors: int  # 4xx
    error_rate: float
    latency_ms: LatencySummary
    upstream_ms: LatencySummary
    bytes_in: int
    bytes_out: int
    last_call_at: datetime | None


def nearest_rank(n: int, percentile: int) -> int:
    """0-based index of the nearest-rank percentile among n sorted values."""
    return max(0, math.ceil(percentile / 100 * n) - 1)


def resolve_window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    until = _aware(until) if until else datetime.now(UTC) + timedelta(seconds=1)
    since = _aware(since) if since else until - timedelta(hours=24)
    if since >= until:
        raise Unprocessable("'since' must be before 'until'.", code="invalid_window")
    return since, until


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _percentiles(
    session: AsyncSession, column: Any, n: int, api_id: str, since: datetime, until: datetime
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for p in PERCENTILES:
        value = (
            await repository.nth_value(session, column, api_id, since, until, nearest_rank(n, p))
            if n
            else None
        )
        out[f"p{p}"] = value
    return out


async def api_stats(
    session: AsyncSession, api_id: str, since: datetime | None, until: datetime | None
) -> ApiStats:
    since, until = resolve_window(since, until)
    calls, errors, client_errors, avg, maximum, bytes_in, bytes_out, last = await repository.totals(
        session, api_id, since, until
    )
    latency = await _percentiles(session, Execution.latency_ms, calls, api_id, since, until)
    n_upstream = await repository.count_not_null(
        session, Execution.upstream_ms, api_id, since, until
    )
    upstream = await _percentiles(session, Execution.upstream_ms, n_upstream, api_id, since, until)
    return ApiStats(
        api_id=api_id,
        since=since,
        until=until,
        calls=calls,
        errors=errors,
        client_errors=client_errors,
        error_rate=round(errors / calls, 4) if calls else 0.0,
        latency_ms=LatencySummary(
            **latency,
            avg=round(float(avg), 3) if avg is not None else None,
            max=float(maximum) if maximum is not None else None,
        ),
        upstream_ms=LatencySummary(**upstream),
        bytes_in=int(bytes_in),
        bytes_out=int(bytes_out),
        last_call_at=_aware(last) if isinstance(last, datetime) else None,
    )
