"""Stats for one API over a time window, answered from the rollups alone.

Counts, bytes and averages are exact; percentiles come from the fixed latency
histograms and are within `histogram.RELATIVE_ERROR` of the exact nearest-rank
value. Histograms are kept per API: stats narrowed to a version, subscription
or key have exact counts and averages but no percentiles.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.stats import histogram, repository
from analytics.stats.repository import Ranges, Scope
from analytics.stats.schemas import ApiStats, ConsumerUsage, LatencySummary, Series, SeriesPoint
from analytics.stats.windows import RESOLUTION_NAMES, cover, resolve_window, series_plan

PERCENTILES = (50, 95, 99)
TOP_CONSUMERS = 10


def _rate(errors: int, calls: int) -> float:
    return round(errors / calls, 4) if calls else 0.0


def _avg(total: float, n: int) -> float | None:
    return round(total / n, 3) if n else None


def _latency(
    counts: dict[int, int] | None, total: float, n: int, maximum: float | None = None
) -> LatencySummary:
    out = LatencySummary(avg=_avg(total, n), max=maximum)
    if counts:
        values = histogram.percentiles(counts, PERCENTILES, maximum)
        out.p50, out.p95, out.p99 = (values[p] for p in PERCENTILES)
    return out


async def _series(session: AsyncSession, scope: Scope, since: datetime, until: datetime) -> Series:
    plan = series_plan(since, until)
    step = timedelta(seconds=plan.step)
    # Per point, in plain lists (a model per point is built once at the end).
    calls, errors, client_errors = ([0] * plan.points for _ in range(3))
    latency_sums = [0.0] * plan.points
    p95: list[float | None] = [None] * plan.points
    origin = plan.first.timestamp()
    rows = await repository.series_counts(session, scope, plan.resolution, plan.first, until)
    for bucket_start, status_class, n, latency_sum in rows:
        i = int((bucket_start.timestamp() - origin) // plan.step)
        calls[i] += int(n)
        latency_sums[i] += float(latency_sum)
        if status_class == 5:
            errors[i] += int(n)
        elif status_class == 4:
            client_errors[i] += int(n)
    if scope.whole_api and plan.step == plan.resolution:
        for bucket_start, bucket in await repository.series_percentile_buckets(
            session, scope.api_id, plan.resolution, plan.first, until, 95
        ):
            i = int((bucket_start.timestamp() - origin) // plan.step)
            p95[i] = round(histogram.representative(int(bucket)), 3)
    points = [
        SeriesPoint(
            at=plan.first + i * step,
            calls=calls[i],
            errors=errors[i],
            client_errors=client_errors[i],
            latency_avg_ms=_avg(latency_sums[i], calls[i]),
            latency_p95_ms=p95[i],
        )
        for i in range(plan.points)
    ]
    return Series(
        resolution=RESOLUTION_NAMES[plan.resolution], step_seconds=plan.step, points=points
    )


async def _summary(
    sessions: async_sessionmaker[AsyncSession], scope: Scope, ranges: Ranges
) -> tuple[Sequence[Any], Sequence[Any], Sequence[Any]]:
    """Totals per status class, the latency histograms and the top consumers."""
    async with sessions() as session:
        await repository.plan_for_small_reads(session)
        totals = await repository.totals_by_class(session, scope, ranges)
        if not any(int(row[1]) for row in totals):
            return totals, [], []
        histograms = (
            await repository.histograms(session, scope.api_id, ranges) if scope.whole_api else []
        )
        top = (
            await repository.top_subscriptions(session, scope, ranges, TOP_CONSUMERS)
            if scope.subscription_id is None
            else []
        )
        return totals, histograms, top


async def _series_of(
    sessions: async_sessionmaker[AsyncSession], scope: Scope, since: datetime, until: datetime
) -> Series:
    async with sessions() as session:
        await repository.plan_for_small_reads(session)
        return await _series(session, scope, since, until)


async def api_stats(
    sessions: async_sessionmaker[AsyncSession],
    api_id: str,
    since: datetime | None,
    until: datetime | None,
    *,
    version: int | None = None,
    subscription_id: str | None = None,
    key_id: str | None = None,
) -> ApiStats:
    """The stats of an API over a window. The summary and the time series are read side
    by side, in two sessions: the database answers both at once."""
    since, until = resolve_window(since, until)
    scope = Scope(api_id, version, subscription_id, key_id)
    (totals, histogram_rows, top_rows), series = await asyncio.gather(
        _summary(sessions, scope, cover(since, until)), _series_of(sessions, scope, since, until)
    )

    by_class: dict[int, int] = {}
    bytes_in = bytes_out = calls = upstream_n = gateway_n = 0
    latency_total = upstream_total = gateway_total = 0.0
    latency_max: float | None = None
    last: datetime | None = None
    for row in totals:
        status_class, n, b_in, b_out, l_sum, l_max, u_n, u_sum, g_n, g_sum, last_at = row
        by_class[int(status_class)] = by_class.get(int(status_class), 0) + int(n)
        calls += int(n)
        bytes_in += int(b_in)
        bytes_out += int(b_out)
        latency_total += float(l_sum)
        latency_max = float(l_max) if latency_max is None else max(latency_max, float(l_max))
        upstream_n += int(u_n)
        upstream_total += float(u_sum)
        gateway_n += int(g_n)
        gateway_total += float(g_sum)
        last = last_at if last is None or last_at > last else last

    histograms: dict[str, dict[int, int]] = {"t": {}, "u": {}, "g": {}}
    for metric, bucket, count in histogram_rows:
        histograms[metric][int(bucket)] = int(count)
    top = [
        ConsumerUsage(
            subscription_id=sub or None,
            calls=int(n),
            errors=int(errors),
            error_rate=_rate(int(errors), int(n)),
            bytes_out=int(b_out),
        )
        for sub, n, errors, b_out in top_rows
    ]

    errors = by_class.get(5, 0)
    return ApiStats(
        api_id=api_id,
        since=since,
        until=until,
        calls=calls,
        errors=errors,
        client_errors=by_class.get(4, 0),
        error_rate=_rate(errors, calls),
        status_classes={f"{c}xx": n for c, n in sorted(by_class.items())},
        latency_ms=_latency(histograms["t"], latency_total, calls, latency_max),
        upstream_ms=_latency(histograms["u"], upstream_total, upstream_n),
        gateway_ms=_latency(histograms["g"], gateway_total, gateway_n),
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        last_call_at=last,
        top_consumers=top,
        series=series,
    )
