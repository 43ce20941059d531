"""SQL over the rollup tables; never over the raw executions, whatever their number."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models.execution import ExecutionRollup as R
from shared.models.execution import LatencyRollup as H


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


def _in_ranges(model: Any, ranges: Ranges) -> ColumnElement[bool]:
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


def _scope(scope: Scope) -> list[ColumnElement[bool]]:
    conditions = [R.api_id == scope.api_id]
    if scope.version is not None:
        conditions.append(R.version == scope.version)
    if scope.subscription_id is not None:
        conditions.append(R.subscription_id == scope.subscription_id)
    if scope.key_id is not None:
        conditions.append(R.key_id == scope.key_id)
    return conditions


async def totals_by_class(session: AsyncSession, scope: Scope, ranges: Ranges) -> Sequence[Any]:
    """Per status class: calls, bytes, latency sums and maximum, and the last call."""
    result = await session.execute(
        select(
            R.status_class,
            func.sum(R.calls),
            func.sum(R.bytes_in),
            func.sum(R.bytes_out),
            func.sum(R.latency_sum),
            func.max(R.latency_max),
            func.sum(R.upstream_calls),
            func.sum(R.upstream_sum),
            func.sum(R.gateway_calls),
            func.sum(R.gateway_sum),
            func.max(R.last_at),
        )
        .where(*_scope(scope), _in_ranges(R, ranges))
        .group_by(R.status_class)
    )
    return result.all()


async def histograms(session: AsyncSession, api_id: str, ranges: Ranges) -> Sequence[Any]:
    """(metric, bucket, count) over the ranges: the API's latency histograms."""
    result = await session.execute(
        select(H.metric, H.bucket, func.sum(H.count))
        .where(H.api_id == api_id, _in_ranges(H, ranges))
        .group_by(H.metric, H.bucket)
    )
    return result.all()


async def top_subscriptions(
    session: AsyncSession, scope: Scope, ranges: Ranges, limit: int
) -> Sequence[Any]:
    """(subscription_id, calls, errors, bytes_out), most calls first; "": the owner's calls."""
    calls = func.sum(R.calls)
    result = await session.execute(
        select(
            R.subscription_id,
            calls,
            func.coalesce(func.sum(R.calls).filter(R.status_class == 5), 0),
            func.sum(R.bytes_out),
        )
        .where(*_scope(scope), _in_ranges(R, ranges))
        .group_by(R.subscription_id)
        .order_by(calls.desc(), R.subscription_id)
        .limit(limit)
    )
    return result.all()


async def series_counts(
    session: AsyncSession, scope: Scope, resolution: int, start: datetime, end: datetime
) -> Sequence[Any]:
    """(bucket_start, status_class, calls, latency_sum) per rollup bucket of one resolution."""
    result = await session.execute(
        select(R.bucket_start, R.status_class, func.sum(R.calls), func.sum(R.latency_sum))
        .where(*_scope(scope), _in_ranges(R, [(resolution, start, end)]))
        .group_by(R.bucket_start, R.status_class)
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
    window = and_(H.api_id == api_id, H.metric == "t", _in_ranges(H, [(resolution, start, end)]))
    walked = (
        select(
            H.bucket_start,
            H.bucket,
            func.sum(H.count).over(partition_by=H.bucket_start, order_by=H.bucket).label("seen"),
            func.sum(H.count).over(partition_by=H.bucket_start).label("total"),
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
        select(R.api_id, R.bucket_start, func.sum(R.calls))
        .where(_in_ranges(R, [(60, start, end)]))
        .group_by(R.api_id, R.bucket_start)
    )
    return result.all()
