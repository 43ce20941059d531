"""SQL over the rollup tables; never over the raw executions, whatever their number."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, cast, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models.execution import ApiRollup as A
from shared.models.execution import ExecutionRollup as R
from shared.models.execution import LatencyRollup as H


async def plan_for_small_reads(session: AsyncSession) -> None:
    """PostgreSQL, for the rest of this transaction: no JIT compilation and no parallel
    workers. A stats query reads some thousands of rollup rows, but the planner prices
    the bitmap heap scans of the tiled ranges as random reads, and at 10M executions
    its estimates pass `jit_above_cost`: compiling and starting parallel workers then
    cost more than the query itself (figures: docs/benchmarks.md, from bench/analytics.py)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text(
                "SELECT set_config('jit', 'off', true), "
                "set_config('max_parallel_workers_per_gather', '0', true)"
            )
        )


@dataclass(frozen=True)
class Scope:
    """Which calls of the API: all of them, or those of one version, subscription or key."""

    api_id: str
    version: int | None = None
    subscription_id: str | None = None
    key_id: str | None = None

    @property
    def whole_api(self) -> bool:
        return self.version is None and self.subscription_id is None and self.key_id is None


Ranges = Sequence[tuple[int, datetime, datetime]]


def in_ranges(model: Any, ranges: Ranges) -> ColumnElement[bool]:
    """Rows of the rollup `model` in any of the ranges (resolution, start, end)."""
    return or_(
        *[
            and_(
                model.resolution_s == resolution,
                model.bucket_start >= start,
                model.bucket_start < end,
            )
            for resolution, start, end in ranges
        ]
    )


def _scope(scope: Scope) -> tuple[Any, list[ColumnElement[bool]]]:
    """The table to read (per API when nothing narrows it: far fewer rows) and the filter."""
    if scope.whole_api:
        return A, [A.api_id == scope.api_id]
    conditions = [R.api_id == scope.api_id]
    if scope.version is not None:
        conditions.append(R.version == scope.version)
    if scope.subscription_id is not None:
        conditions.append(R.subscription_id == scope.subscription_id)
    if scope.key_id is not None:
        conditions.append(R.key_id == scope.key_id)
    return R, conditions


async def totals_by_class(session: AsyncSession, scope: Scope, ranges: Ranges) -> Sequence[Any]:
    """Per status class: calls, bytes, latency sums and maximum, and the last call."""
    T, conditions = _scope(scope)
    result = await session.execute(
        select(
            T.status_class,
            func.sum(T.calls),
            func.sum(T.bytes_in),
            func.sum(T.bytes_out),
            func.sum(T.latency_sum),
            func.max(T.latency_max),
            func.sum(T.upstream_calls),
            func.sum(T.upstream_sum),
            func.sum(T.gateway_calls),
            func.sum(T.gateway_sum),
            func.max(T.last_at),
        )
        .where(*conditions, in_ranges(T, ranges))
        .group_by(T.status_class)
    )
    return result.all()


async def histograms(session: AsyncSession, api_id: str, ranges: Ranges) -> Sequence[Any]:
    """(metric, bucket, count) over the ranges: the API's latency histograms."""
    # One disjunct per metric and range: the key is (api, resolution, metric, time, bucket).
    per_metric = or_(
        *[
            and_(
                H.resolution_s == resolution,
                H.metric == metric,
                H.bucket_start >= start,
                H.bucket_start < end,
            )
            for metric in ("t", "u", "g")
            for resolution, start, end in ranges
        ]
    )
    result = await session.execute(
        select(H.metric, H.bucket, func.sum(H.count))
        .where(H.api_id == api_id, per_metric)
        .group_by(H.metric, H.bucket)
    )
    return result.all()


async def top_subscriptions(
    session: AsyncSession, scope: Scope, ranges: Ranges, limit: int
) -> Sequence[Any]:
    """(subscription_id, calls, errors, bytes_out), most calls first; "": the owner's calls."""
    conditions = [R.api_id == scope.api_id]
    if scope.version is not None:
        conditions.append(R.version == scope.version)
    if scope.key_id is not None:
        conditions.append(R.key_id == scope.key_id)
    calls = func.sum(R.calls)
    result = await session.execute(
        select(
            R.subscription_id,
            calls,
            func.coalesce(func.sum(R.calls).filter(R.status_class == 5), 0),
            func.sum(R.bytes_out),
        )
        .where(*conditions, in_ranges(R, ranges))
        .group_by(R.subscription_id)
        .order_by(calls.desc(), R.subscription_id)
        .limit(limit)
    )
    return result.all()


async def series_counts(
    session: AsyncSession, scope: Scope, resolution: int, start: datetime, end: datetime
) -> Sequence[Any]:
    """(bucket_start, status_class, calls, latency_sum) per rollup bucket of one resolution."""
    T, conditions = _scope(scope)
    result = await session.execute(
        select(T.bucket_start, T.status_class, func.sum(T.calls), func.sum(T.latency_sum))
        .where(*conditions, in_ranges(T, [(resolution, start, end)]))
        .group_by(T.bucket_start, T.status_class)
    )
    return result.all()


async def series_percentile_buckets(
    session: AsyncSession,
    api_id: str,
    resolution: int,
    start: datetime,
    end: datetime,
    percentile: int,
) -> Sequence[Any]:
    """(bucket_start, histogram bucket) of the total latency's nearest-rank percentile, per
    rollup bucket: the database walks each histogram, so only one row per point comes back.
    """
    window = and_(H.api_id == api_id, H.metric == "t", in_ranges(H, [(resolution, start, end)]))
    # Summed as doubles (exact for counts below 2**53; PostgreSQL sums bigints as numeric,
    # several times slower), row by row: (bucket_start, bucket) is unique in the window.
    count = cast(H.count, Float)
    walked = (
        select(
            H.bucket_start,
            H.bucket,
            func.sum(count)
            .over(partition_by=H.bucket_start, order_by=H.bucket, rows=(None, 0))
            .label("seen"),
            func.sum(count).over(partition_by=H.bucket_start).label("total"),
        )
        .where(window)
        .subquery()
    )
    # The nearest-rank value is the first bucket where seen >= percentile% of the total.
    result = await session.execute(
        select(walked.c.bucket_start, func.min(walked.c.bucket))
        .where(walked.c.seen * 100 >= walked.c.total * percentile)
        .group_by(walked.c.bucket_start)
    )
    return result.all()


async def stored_per_minute(session: AsyncSession, start: datetime, end: datetime) -> Sequence[Any]:
    """(api_id, minute, calls) of every API: what analytics stored, for the reconciliation."""
    result = await session.execute(
        select(A.api_id, A.bucket_start, func.sum(A.calls))
        .where(in_ranges(A, [(60, start, end)]))
        .group_by(A.api_id, A.bucket_start)
    )
    return result.all()
