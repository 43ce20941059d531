"""Analytics rules that need no database: histogram buckets, windows, series, rollups, cursors."""

from __future__ import annotations

import gc
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from analytics.history.service import decode_cursor, encode_cursor, parse_status
from analytics.ingest.consumer import restore_gc, tune_gc
from analytics.ingest.rollup import rollup_rows
from analytics.stats import histogram
from analytics.stats.windows import cover, resolve_window, series_plan
from shared.errors import Unprocessable
from shared.events import ExecutionEvent

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_buckets_are_log_spaced_and_cover_everything() -> None:
    assert 1.1 <= histogram.RATIO <= 1.2
    assert histogram.bucket_of(0.0) == 0
    assert histogram.bucket_of(10**9) == histogram.BUCKETS - 1
    previous = 0
    value = histogram.MIN_MS
    while value < histogram.MAX_MS:
        bucket = histogram.bucket_of(value)
        assert bucket >= previous
        middle = histogram.representative(bucket)
        assert abs(middle - value) <= value * (histogram.RELATIVE_ERROR + 1e-9)
        previous = bucket
        value *= 1.013


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_from_buckets_are_within_the_relative_error(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311
    values = [rng.lognormvariate(2, 1.5) for _ in range(rng.randint(1, 5000))]
    counts: dict[int, int] = {}
    for v in values:
        counts[histogram.bucket_of(v)] = counts.get(histogram.bucket_of(v), 0) + 1
    ordered = sorted(values)
    estimates = histogram.percentiles(counts, (50, 95, 99, 100), maximum=max(values))
    for p, estimate in estimates.items():
        exact = ordered[histogram.nearest_rank(len(values), p)]
        assert estimate is not None
        assert abs(estimate - exact) <= exact * histogram.RELATIVE_ERROR + 0.001
    assert estimates[100] is not None
    assert estimates[100] <= round(max(values), 3)  # the maximum caps the top bucket
    assert histogram.percentiles({}, (50,)) == {50: None}


def test_windows_are_whole_minutes_and_covered_exactly() -> None:
    since, until = resolve_window(T0 + timedelta(seconds=30), T0 + timedelta(hours=5, seconds=1))
    assert (since, until) == (T0, T0 + timedelta(hours=5, minutes=1))
    with pytest.raises(Unprocessable):
        resolve_window(T0, T0 - timedelta(seconds=1))
    rng = random.Random(5)  # noqa: S311
    for _ in range(300):
        start = T0 + timedelta(minutes=rng.randint(0, 60 * 24 * 10))
        end = start + timedelta(minutes=rng.randint(1, 60 * 24 * 40))
        ranges = cover(start, end)
        assert len(ranges) <= 5
        position = start
        for resolution, a, b in sorted(ranges, key=lambda r: r[1]):
            assert a == position
            assert a.timestamp() % resolution == 0
            assert b.timestamp() % resolution == 0
            position = b
        assert position == end


@pytest.mark.parametrize(
    ("span", "resolution", "step", "points"),
    [
        (timedelta(minutes=1), 60, 60, 1),
        (timedelta(hours=6), 60, 60, 360),
        (timedelta(hours=6, minutes=1), 3600, 3600, 7),
        (timedelta(days=14), 3600, 3600, 336),
        (timedelta(days=15), 86400, 86400, 15),
        (timedelta(days=500), 86400, 86400, 500),
        (timedelta(days=1200), 86400, 3 * 86400, 400),
    ],
)
def test_series_resolution_fits_the_window(
    span: timedelta, resolution: int, step: int, points: int
) -> None:
    plan = series_plan(T0, T0 + span)
    assert (plan.resolution, plan.step, plan.points) == (resolution, step, points)
    assert plan.points <= 500


def _event(at: datetime, status: int, latency: float, sub: str | None) -> ExecutionEvent:
    return ExecutionEvent(
        event_id=str(uuid.uuid4()),
        request_id="r",
        api_id="api",
        deployment_id=None,
        caller_id=None,
        method="GET",
        path="/",
        status_code=status,
        latency_ms=latency,
        upstream_ms=None if status == 504 else latency / 2,
        bytes_in=1,
        bytes_out=2,
        started_at=at,
        subscription_id=sub,
        key_id=f"k-{sub}" if sub else None,
        version=3 if sub else None,
    )


def test_rollup_rows_sum_per_minute_hour_and_day() -> None:
    at = T0 + timedelta(hours=23, minutes=59, seconds=30)
    events = [
        _event(at, 200, 10.0, "s"),
        _event(at + timedelta(seconds=10), 200, 30.0, "s"),
        _event(at + timedelta(seconds=40), 504, 5.0, None),  # the next day
    ]
    counters, per_api, histograms = rollup_rows(events)
    by_level: dict[int, list[dict[str, object]]] = {}
    for row in counters:
        by_level.setdefault(int(row["resolution_s"]), []).append(row)
    assert {k: len(v) for k, v in by_level.items()} == {60: 2, 3600: 2, 86400: 2}
    minute = next(r for r in by_level[60] if r["status_class"] == 2)
    assert minute["calls"] == 2
    assert minute["latency_sum"] == 40.0
    assert minute["latency_max"] == 30.0
    assert (minute["version"], minute["subscription_id"], minute["key_id"]) == (3, "s", "k-s")
    assert minute["upstream_calls"] == 2
    assert minute["last_at"] == at + timedelta(seconds=10)
    api_minute = next(r for r in per_api if r["resolution_s"] == 60 and r["status_class"] == 2)
    assert (api_minute["calls"], api_minute["latency_max"]) == (2, 30.0)
    assert sum(r["calls"] for r in per_api) == 3 * 3  # every event once per resolution
    timeout = next(r for r in by_level[86400] if r["status_class"] == 5)
    assert timeout["bucket_start"] == T0 + timedelta(days=1)
    assert (timeout["version"], timeout["subscription_id"], timeout["upstream_calls"]) == (0, "", 0)
    per_level = {res: 0 for res in (60, 3600, 86400)}
    for row in histograms:
        if row["metric"] == "t":
            per_level[int(row["resolution_s"])] += int(row["count"])
    assert per_level == {60: 3, 3600: 3, 86400: 3}
    assert counters == sorted(
        counters,
        key=lambda r: (
            r["resolution_s"],
            r["api_id"],
            r["bucket_start"],
            r["version"],
            r["subscription_id"],
            r["key_id"],
            r["status_class"],
        ),
    )


def test_status_filter_and_cursor() -> None:
    assert parse_status("404") == (404, None)
    assert parse_status("5xx") == (None, 5)
    assert parse_status(None) == (None, None)
    for bad in ("6xx", "20", "abc", "2xxx"):
        with pytest.raises(Unprocessable):
            parse_status(bad)
    at = T0 + timedelta(microseconds=123)
    assert decode_cursor(encode_cursor(at, "e-1")) == (at, "e-1")
    with pytest.raises(Unprocessable):
        decode_cursor("not a cursor")


def test_the_collector_tuning_is_undone() -> None:
    before = gc.get_threshold()
    assert tune_gc(0) == before
    assert gc.get_threshold() == before
    assert tune_gc(100_000) == before
    assert gc.get_threshold() == (100_000, before[1], before[2])
    assert gc.get_freeze_count() > 0
    restore_gc(before)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
