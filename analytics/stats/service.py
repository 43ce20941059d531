"""Stats for one API over a time window, answered from the rollups alone.

Counts, bytes and averages are exact; percentiles come from the fixed latency
histograms and are within `histogram.RELATIVE_ERROR` of the exact nearest-rank
value. Histograms are kept per API: stats narrowed to a version, subscription
or key have exact counts and averages but no percentiles.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.stats import histogram, repository
from analytics.stats.repository import Scope
from analytics.stats.windows import RESOLUTION_NAMES, cover, resolve_window, series_plan

PERCENTILES = (50, 95, 99)
TOP_CONSUMERS = 10


class LatencySummary(BaseModel):
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    avg: float | None = None
    max: float | None = None


class ConsumerUsage(BaseModel):
    subscription_id: str | None  # None: the owner's own calls (bearer token, no key)
    calls: int
    errors: int
    error_rate: float
    bytes_out: int


class SeriesPoint(BaseModel):
    at: datetime
    calls: int
    errors: int
    client_errors: int
    latency_avg_ms: float | None
    # From the histogram; None when the stats are narrowed (see the module doc) or a
    # point spans several days (windows over 500 days).
    latency_p95_ms: float | None


class Series(BaseModel):
    resolution: str  # the rollup read: minute, hour or day
    step_seconds: int  # one point per step (several resolutions when the window is long)
    points: list[SeriesPoint]


class ApiStats(BaseModel):
    api_id: str
    since: datetime  # the asked window, widened to whole minutes
    until: datetime
    calls: int
    errors: int  # 5xx: the API or the platform failed
    client_errors: int  # 4xx
    error_rate: float
    status_classes: dict[str, int]  # "2xx": calls, …
    latency_ms: LatencySummary  # total, in the data plane
    upstream_ms: LatencySummary  # waiting for the container
    gateway_ms: LatencySummary  # the data plane's own share
    bytes_in: int
    bytes_out: int
    last_call_at: datetime | None
    top_consumers: list[ConsumerUsage]
    series: Series


def _rate(errors: int, calls: int) -> float:
    return round(errors / calls, 4) if calls else 0.0


def _avg(total: float, n: int) -> float | None:
    return round(total / n, 3) if n else None


def _summary(
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
    points = [
        SeriesPoint(
            at=plan.first + i * step,
            calls=0,
            errors=0,
            client_errors=0,
            latency_avg_ms=None,
            latency_p95_ms=None,
        )
        for i in range(plan.points)
    ]
    sums = [0.0] * plan.points
    origin = plan.first.timestamp()
    rows = await repository.series_counts(session, scope, plan.resolution, plan.first, until)
    for bucket_start, status_class, calls, latency_sum in rows:
        i = int((bucket_start.timestamp() - origin) // plan.step)
        point = points[i]
        point.calls += int(calls)
        sums[i] += float(latency_sum)
        if status_class == 5:
            point.errors += int(calls)
        elif status_class == 4:
            point.client_errors += int(calls)
    for point, total in zip(points, sums, strict=True):
        point.latency_avg_ms = _avg(total, point.calls)
    if scope.whole_api and plan.step == plan.resolution:
        for bucket_start, bucket in await repository.series_percentile_buckets(
            session, scope.api_id, plan.resolution, plan.first, until, 95
        ):
            point = points[int((bucket_start.timestamp() - origin) // plan.step)]
            point.latency_p95_ms = round(histogram.representative(int(bucket)), 3)
    return Series(
        resolution=RESOLUTION_NAMES[plan.resolution], step_seconds=plan.step, points=points
    )


async def api_stats(
    session: AsyncSession,
    api_id: str,
    since: datetime | None,
    until: datetime | None,
    *,
    version: int | None = None,
    subscription_id: str | None = None,
    key_id: str | None = None,
) -> ApiStats:
    since, until = resolve_window(since, until)
    scope = Scope(api_id, version, subscription_id, key_id)
    ranges = cover(since, until)

    by_class: dict[int, int] = {}
    bytes_in = bytes_out = calls = upstream_n = gateway_n = 0
    latency_total = upstream_total = gateway_total = 0.0
    latency_max: float | None = None
    last: datetime | None = None
    for row in await repository.totals_by_class(session, scope, ranges):
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
    if scope.whole_api and calls:
        for metric, bucket, count in await repository.histograms(session, api_id, ranges):
            histograms[metric][int(bucket)] = int(count)

    top = []
    if calls and subscription_id is None:
        for sub, n, errors, b_out in await repository.top_subscriptions(
            session, scope, ranges, TOP_CONSUMERS
        ):
            top.append(
                ConsumerUsage(
                    subscription_id=sub or None,
                    calls=int(n),
                    errors=int(errors),
                    error_rate=_rate(int(errors), int(n)),
                    bytes_out=int(b_out),
                )
            )

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
        latency_ms=_summary(histograms["t"], latency_total, calls, latency_max),
        upstream_ms=_summary(histograms["u"], upstream_total, upstream_n),
        gateway_ms=_summary(histograms["g"], gateway_total, gateway_n),
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        last_call_at=last,
        top_consumers=top,
        series=await _series(session, scope, since, until),
    )
