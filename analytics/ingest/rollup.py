"""Fold execution events into minute, hour and day rollups and latency histograms.

Pure functions: the repository upserts what they return, adding to the rows
already there, in the same transaction as the raw rows they come from.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from analytics.stats.histogram import bucket_of
from shared.events import ExecutionEvent
from shared.models.execution import DAY, HOUR, MINUTE

# Counter columns, in the order of the accumulator lists below.
COUNTERS = (
    "calls",
    "bytes_in",
    "bytes_out",
    "latency_sum",
    "latency_max",
    "upstream_calls",
    "upstream_sum",
    "gateway_calls",
    "gateway_sum",
    "last_at",
)

# (api_id, bucket_start epoch, version, subscription_id, key_id, status_class)
CounterKey = tuple[str, int, int, str, str, int]
# (api_id, bucket_start epoch, metric, bucket)
HistogramKey = tuple[str, int, str, int]


def floor_epoch(epoch: float, resolution: int) -> int:
    return int(epoch // resolution) * resolution


def floor_time(value: datetime, resolution: int) -> datetime:
    return datetime.fromtimestamp(floor_epoch(value.timestamp(), resolution), UTC)


def _merge(into: list[Any], other: list[Any]) -> None:
    into[0] += other[0]
    into[1] += other[1]
    into[2] += other[2]
    into[3] += other[3]
    into[4] = max(into[4], other[4])
    into[5] += other[5]
    into[6] += other[6]
    into[7] += other[7]
    into[8] += other[8]
    into[9] = max(into[9], other[9])


def _counter_columns(v: list[Any]) -> dict[str, Any]:
    return {
        "calls": v[0],
        "bytes_in": v[1],
        "bytes_out": v[2],
        "latency_sum": v[3],
        "latency_max": v[4],
        "upstream_calls": v[5],
        "upstream_sum": v[6],
        "gateway_calls": v[7],
        "gateway_sum": v[8],
        "last_at": datetime.fromtimestamp(v[9], UTC),
    }


def rollup_rows(
    events: Iterable[ExecutionEvent],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows (as column dicts) for every resolution, sorted by key: counters per version,
    subscription, key and status class; counters per API and status class; histograms.

    Sorted so that concurrent consumers lock rollup rows in the same order.
    """
    counters: dict[CounterKey, list[Any]] = {}
    histograms: dict[HistogramKey, int] = {}
    for e in events:
        epoch = e.started_at.timestamp()
        minute = floor_epoch(epoch, MINUTE)
        key = (
            e.api_id,
            minute,
            e.version or 0,
            e.subscription_id or "",
            e.key_id or "",
            e.status_code // 100,
        )
        upstream, gateway = e.upstream_ms, e.gateway_ms
        row = counters.get(key)
        if row is None:
            row = counters[key] = [0, 0, 0, 0.0, 0.0, 0, 0.0, 0, 0.0, epoch]
        row[0] += 1
        row[1] += e.bytes_in
        row[2] += e.bytes_out
        row[3] += e.latency_ms
        row[4] = max(row[4], e.latency_ms)
        if upstream is not None:
            row[5] += 1
            row[6] += upstream
        if gateway is not None:
            row[7] += 1
            row[8] += gateway
        row[9] = max(row[9], epoch)
        for metric, value in (("t", e.latency_ms), ("u", upstream), ("g", gateway)):
            if value is not None:
                hkey = (e.api_id, minute, metric, bucket_of(value))
                histograms[hkey] = histograms.get(hkey, 0) + 1

    counter_rows: list[dict[str, Any]] = []
    histogram_rows: list[dict[str, Any]] = []
    api_rows: list[dict[str, Any]] = []
    for resolution in (MINUTE, HOUR, DAY):
        if resolution == MINUTE:
            level, hlevel = counters, histograms
        else:
            level, hlevel = {}, {}
            for k, values in counters.items():
                coarse = (k[0], floor_epoch(k[1], resolution), k[2], k[3], k[4], k[5])
                found = level.get(coarse)
                if found is None:
                    level[coarse] = list(values)
                else:
                    _merge(found, values)
            for (api, start, metric, bucket), count in histograms.items():
                hk = (api, floor_epoch(start, resolution), metric, bucket)
                hlevel[hk] = hlevel.get(hk, 0) + count
        per_api: dict[tuple[str, int, int], list[Any]] = {}
        for (api, start, version, subscription, key_id, status_class), v in sorted(level.items()):
            counter_rows.append(
                {
                    "api_id": api,
                    "resolution_s": resolution,
                    "bucket_start": datetime.fromtimestamp(start, UTC),
                    "version": version,
                    "subscription_id": subscription,
                    "key_id": key_id,
                    "status_class": status_class,
                    **_counter_columns(v),
                }
            )
            found = per_api.get((api, start, status_class))
            if found is None:
                per_api[(api, start, status_class)] = list(v)
            else:
                _merge(found, v)
        for (api, start, status_class), v in sorted(per_api.items()):
            api_rows.append(
                {
                    "api_id": api,
                    "resolution_s": resolution,
                    "bucket_start": datetime.fromtimestamp(start, UTC),
                    "status_class": status_class,
                    **_counter_columns(v),
                }
            )
        for (api, start, metric, bucket), count in sorted(
            hlevel.items(), key=lambda item: (item[0][0], item[0][2], item[0][1], item[0][3])
        ):
            histogram_rows.append(
                {
                    "api_id": api,
                    "resolution_s": resolution,
                    "metric": metric,
                    "bucket_start": datetime.fromtimestamp(start, UTC),
                    "bucket": bucket,
                    "count": count,
                }
            )
    return counter_rows, api_rows, histogram_rows
