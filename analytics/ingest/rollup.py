"""Fold execution events into minute, hour and day rollups and latency histograms.

Pure functions: the repository upserts what they return, adding to the rows
already there, in the same transaction as the raw rows they come from. They
read rows of `executions` as tuples in `COLUMNS` order (the order the ingest
path already holds them in): the fold runs for every stored event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from analytics.stats.histogram import bucket_of
from shared.events import ExecutionEvent
from shared.models.execution import DAY, HOUR, MINUTE

# The columns of an execution row, in the order of the tuples folded here (and COPYed).
COLUMNS = (
    "event_id",
    "request_id",
    "api_id",
    "deployment_id",
    "caller_id",
    "method",
    "path",
    "status_code",
    "latency_ms",
    "upstream_ms",
    "bytes_in",
    "bytes_out",
    "started_at",
    "key_id",
    "subscription_id",
    "version",
    "gateway_ms",
)

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
# Key columns of each rollup table, in the order of the row tuples below.
COUNTER_KEY = (
    "api_id",
    "resolution_s",
    "bucket_start",
    "version",
    "subscription_id",
    "key_id",
    "status_class",
)
API_KEY = ("api_id", "resolution_s", "bucket_start", "status_class")
HISTOGRAM_COLUMNS = ("api_id", "resolution_s", "metric", "bucket_start", "bucket", "count")

# (api_id, bucket_start epoch, version, subscription_id, key_id, status_class)
CounterKey = tuple[str, int, int, str, str, int]
# (api_id, bucket_start epoch, metric, bucket)
HistogramKey = tuple[str, int, str, int]


def record(e: ExecutionEvent) -> tuple[Any, ...]:
    """The event as a row of `executions`, in COLUMNS order."""
    return (
        e.event_id,
        e.request_id,
        e.api_id,
        e.deployment_id,
        e.caller_id,
        e.method,
        e.path,
        e.status_code,
        e.latency_ms,
        e.upstream_ms,
        e.bytes_in,
        e.bytes_out,
        e.started_at,
        e.key_id,
        e.subscription_id,
        e.version,
        e.gateway_ms,
    )


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


def _fold_minutes(
    rows: Iterable[Sequence[Any]],
) -> tuple[dict[CounterKey, list[Any]], dict[HistogramKey, int]]:
    counters: dict[CounterKey, list[Any]] = {}
    histograms: dict[HistogramKey, int] = {}
    bucket = bucket_of
    for row in rows:
        epoch = row[12].timestamp()
        minute = int(epoch // MINUTE) * MINUTE
        api = row[2]
        latency, upstream, gateway = row[8], row[9], row[16]
        key = (api, minute, row[15] or 0, row[14] or "", row[13] or "", row[7] // 100)
        acc = counters.get(key)
        if acc is None:
            acc = counters[key] = [0, 0, 0, 0.0, latency, 0, 0.0, 0, 0.0, epoch]
        acc[0] += 1
        acc[1] += row[10]
        acc[2] += row[11]
        acc[3] += latency
        if latency > acc[4]:
            acc[4] = latency
        if upstream is not None:
            acc[5] += 1
            acc[6] += upstream
            hkey = (api, minute, "u", bucket(upstream))
            histograms[hkey] = histograms.get(hkey, 0) + 1
        if gateway is not None:
            acc[7] += 1
            acc[8] += gateway
            hkey = (api, minute, "g", bucket(gateway))
            histograms[hkey] = histograms.get(hkey, 0) + 1
        if epoch > acc[9]:
            acc[9] = epoch
        hkey = (api, minute, "t", bucket(latency))
        histograms[hkey] = histograms.get(hkey, 0) + 1
    return counters, histograms


def _counters(values: list[Any]) -> tuple[Any, ...]:
    return (*values[:9], datetime.fromtimestamp(values[9], UTC))


Rows = list[tuple[Any, ...]]


def rollups(rows: Iterable[Sequence[Any]]) -> tuple[Rows, Rows, Rows]:
    """The rollup rows of some execution rows (COLUMNS order), for every resolution:
    counters per version, subscription, key and status class (COUNTER_KEY + COUNTERS),
    counters per API and status class (API_KEY + COUNTERS), histograms
    (HISTOGRAM_COLUMNS). Each list is sorted by resolution, then by the table's key,
    so that concurrent consumers lock rollup rows in the same order.
    """
    minutes, minute_histograms = _fold_minutes(rows)
    counter_rows: Rows = []
    api_rows: Rows = []
    histogram_rows: Rows = []
    for resolution in (MINUTE, HOUR, DAY):
        if resolution == MINUTE:
            level, hlevel = minutes, minute_histograms
        else:
            level, hlevel = {}, {}
            for k, values in minutes.items():
                coarse = (k[0], k[1] // resolution * resolution, k[2], k[3], k[4], k[5])
                found = level.get(coarse)
                if found is None:
                    level[coarse] = list(values)
                else:
                    _merge(found, values)
            for (api, start, metric, bucket), count in minute_histograms.items():
                hk = (api, start // resolution * resolution, metric, bucket)
                hlevel[hk] = hlevel.get(hk, 0) + count
        starts: dict[int, datetime] = {}
        per_api: dict[tuple[str, int, int], list[Any]] = {}
        for (api, start, version, subscription, key_id, status_class), v in sorted(level.items()):
            at = starts.get(start)
            if at is None:
                at = starts[start] = datetime.fromtimestamp(start, UTC)
            counter_rows.append(
                (api, resolution, at, version, subscription, key_id, status_class, *_counters(v))
            )
            found = per_api.get((api, start, status_class))
            if found is None:
                per_api[(api, start, status_class)] = list(v)
            else:
                _merge(found, v)
        for (api, start, status_class), v in sorted(per_api.items()):
            api_rows.append((api, resolution, starts[start], status_class, *_counters(v)))
        for (api, start, metric, bucket), count in sorted(
            hlevel.items(), key=lambda item: (item[0][0], item[0][2], item[0][1], item[0][3])
        ):
            at = starts.get(start)
            if at is None:
                at = starts[start] = datetime.fromtimestamp(start, UTC)
            histogram_rows.append((api, resolution, metric, at, bucket, count))
    return counter_rows, api_rows, histogram_rows


def rollup_rows(
    events: Iterable[ExecutionEvent],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """`rollups` of some events, each row as a dict of its columns."""
    counters, per_api, histograms = rollups(record(e) for e in events)
    return (
        [dict(zip(COUNTER_KEY + COUNTERS, row, strict=True)) for row in counters],
        [dict(zip(API_KEY + COUNTERS, row, strict=True)) for row in per_api],
        [dict(zip(HISTOGRAM_COLUMNS, row, strict=True)) for row in histograms],
    )
