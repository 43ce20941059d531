"""Fold execution events into minute, hour and day rollups and latency histograms.

Pure functions: the repository upserts what they return, adding to the rows
already there, in the same transaction as the raw rows they come from. The ingest
path folds events as they come on the stream, lines of the wire format
(shared/events.py), straight from the split line: no row of Python values is made
per event. Keys are folded as the bytes they are and turned into values once per
distinct key; times are read once per distinct second.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from analytics.stats.histogram import BUCKETS, MIN_MS, RATIO
from shared.events import EVENT_FIELDS, INDEX, ExecutionEvent, event_line, line_values
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
# Two rows of one key combine so: these counters by the larger value, the others (and
# histogram counts) by their sum. The fold merges so, and so do the upserts.
LARGEST = ("latency_max", "last_at")

# (api_id, bucket_start epoch, version, subscription_id, key_id, status_class)
CounterKey = tuple[str, int, int, str, str, int]
# (api_id, bucket_start epoch, metric, bucket)
HistogramKey = tuple[str, int, str, int]
_LOG_RATIO = math.log(RATIO)  # as histogram.bucket_of has it
# The positions, in a line, of the fields the fold reads.
_EVENT_ID, _STARTED_AT, _LATENCY_MS, _UPSTREAM_MS, _GATEWAY_MS = (
    INDEX[n] for n in ("event_id", "started_at", "latency_ms", "upstream_ms", "gateway_ms")
)
_BYTES_IN, _BYTES_OUT = INDEX["bytes_in"], INDEX["bytes_out"]
_API_ID, _VERSION, _SUBSCRIPTION_ID, _KEY_ID, _STATUS_CODE = (
    INDEX[n] for n in ("api_id", "version", "subscription_id", "key_id", "status_code")
)


def floor_epoch(epoch: float, resolution: int) -> int:
    return int(epoch // resolution) * resolution


def floor_time(value: datetime, resolution: int) -> datetime:
    return datetime.fromtimestamp(floor_epoch(value.timestamp(), resolution), UTC)


_SUMMED_AT = tuple(i for i, c in enumerate(COUNTERS) if c not in LARGEST)
_LARGEST_AT = tuple(COUNTERS.index(c) for c in LARGEST)


def _merge(into: list[Any], other: list[Any]) -> None:
    for i in _SUMMED_AT:
        into[i] += other[i]
    for i in _LARGEST_AT:
        if other[i] > into[i]:
            into[i] = other[i]


class Fold:
    """Folds wire-format lines (shared/events.py) into per-minute rollups.

    `add` takes the lines it can read as they are and returns the others: a time
    not in the encoder's UTC form, a number that does not parse, a key (API,
    version, subscription, key, status) with an escape or not UTF-8; the caller
    reads those carefully, writes them again (`event_line`) and adds them again, or
    drops them. A line whose event id was folded before is skipped (a batch may hold
    an event twice). What the fold does not read (the path, say) it does not check:
    the database refuses a line it cannot store, and the batch is then read again
    carefully (repository.py). Every line `kept` that the database stores adds to
    the rollups what the fold added.
    """

    def __init__(self) -> None:
        self.kept: list[bytes] = []
        self._seen: set[bytes] = set()
        # Keys as the bytes of the line: (api, version, subscription, key, status
        # code, minute epoch); each turned into values once, when first seen. An
        # accumulator is COUNTERS (last_at as the line has it), then the histograms
        # (bucket -> count) of total, upstream and gateway time of its API and minute.
        self._counters: dict[tuple[Any, ...], list[Any]] = {}
        self._keys: dict[tuple[Any, ...], CounterKey] = {}
        self._histograms: dict[tuple[bytes, int], tuple[dict[int, int], ...]] = {}
        self._seconds: dict[bytes, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch

    def add(self, lines: Iterable[bytes]) -> list[bytes]:
        seen, kept, counters = self._seen, self.kept, self._counters
        seconds = self._seconds
        log, min_ms, log_ratio, last_bucket = math.log, MIN_MS, _LOG_RATIO, BUCKETS - 1
        null = b"\\N"
        others: list[bytes] = []
        u = g = 0
        for line in lines:
            p = line.split(b"\t")
            try:
                # Only what the fold reads is checked here: a line PostgreSQL refuses
                # (bad UTF-8, a NUL, too long a field, …) fails the batch's COPY, and
                # the batch is then read again carefully (repository.py).
                if len(p) != EVENT_FIELDS:
                    raise ValueError
                event_id = p[_EVENT_ID]
                if event_id in seen:
                    continue
                at = p[_STARTED_AT]
                second = seconds.get(at[:19])
                if second is None:
                    second = seconds[at[:19]] = _second(at[:19])
                if len(at) != 32 or not at.endswith(b"+00:00"):
                    raise ValueError
                latency = float(p[_LATENCY_MS])
                upstream = None if p[_UPSTREAM_MS] == null else float(p[_UPSTREAM_MS])
                gateway = None if p[_GATEWAY_MS] == null else float(p[_GATEWAY_MS])
                bytes_in = int(p[_BYTES_IN])
                bytes_out = int(p[_BYTES_OUT])
                # histogram.bucket_of, inline (the same expression: the same bucket).
                if latency < min_ms:
                    t = 0
                else:
                    t = 1 + int(log(latency / min_ms) / log_ratio)
                    if t > last_bucket:
                        t = last_bucket
                if upstream is not None:
                    if upstream < min_ms:
                        u = 0
                    else:
                        u = 1 + int(log(upstream / min_ms) / log_ratio)
                        if u > last_bucket:
                            u = last_bucket
                if gateway is not None:
                    if gateway < min_ms:
                        g = 0
                    else:
                        g = 1 + int(log(gateway / min_ms) / log_ratio)
                        if g > last_bucket:
                            g = last_bucket
                # The status code as it is: its class is taken once per key.
                key = (
                    p[_API_ID],
                    p[_VERSION],
                    p[_SUBSCRIPTION_ID],
                    p[_KEY_ID],
                    p[_STATUS_CODE],
                    second - second % MINUTE,
                )
                acc = counters.get(key)
                if acc is None:
                    acc = counters[key] = self._new(key, latency, at)
            except (ValueError, OverflowError):
                others.append(line)
                continue
            seen.add(event_id)
            kept.append(line)
            acc[0] += 1
            acc[1] += bytes_in
            acc[2] += bytes_out
            acc[3] += latency
            if latency > acc[4]:
                acc[4] = latency
            if at > acc[9]:  # the encoder's fixed-width UTC form sorts as time does
                acc[9] = at
            h = acc[10]
            h[t] = h.get(t, 0) + 1
            if upstream is not None:
                acc[5] += 1
                acc[6] += upstream
                h = acc[11]
                h[u] = h.get(u, 0) + 1
            if gateway is not None:
                acc[7] += 1
                acc[8] += gateway
                h = acc[12]
                h[g] = h.get(g, 0) + 1
        return others

    def _new(self, key: tuple[Any, ...], latency: float, at: bytes) -> list[Any]:
        """A new accumulator for `key` (ValueError for a key that is not one)."""
        self._keys[key] = _key_values(key)
        api_minute = (key[0], key[-1])
        histograms = self._histograms.get(api_minute)
        if histograms is None:
            histograms = self._histograms[api_minute] = ({}, {}, {})
        return [0, 0, 0, 0.0, latency, 0, 0.0, 0, 0.0, at, *histograms]

    def rollups(self) -> Rollups:
        """The rollups of every line kept (see `rollups_of`)."""
        minutes: dict[CounterKey, list[Any]] = {}
        for raw, acc in self._counters.items():
            values = [*acc[:9], datetime.fromisoformat(acc[9].decode())]
            key = self._keys[raw]
            found = minutes.get(key)
            if found is None:
                minutes[key] = values
            else:  # e.g. no subscription, written as NULL or as ""
                _merge(found, values)
        apis = {raw[0]: key[0] for raw, key in self._keys.items()}
        histograms: dict[HistogramKey, int] = {}
        for (api, minute), per_metric in self._histograms.items():
            for metric, counts in zip("tug", per_metric, strict=True):
                for bucket, count in counts.items():
                    histograms[(apis[api], minute, metric, bucket)] = count
        return _levels(minutes, histograms)


_SECOND = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def _second(text: bytes) -> int:
    """The epoch second of a UTC time written YYYY-MM-DDTHH:MM:SS; ValueError otherwise."""
    if _SECOND.fullmatch(text) is None:
        raise ValueError(f"not a time: {text!r}")
    return int(datetime.fromisoformat(text.decode()).replace(tzinfo=UTC).timestamp())


def _text(value: bytes) -> str:
    if value == b"\\N":
        return ""
    if b"\\" in value:  # an escape: PostgreSQL would read something else
        raise ValueError("an escape in a key")
    return value.decode()  # UnicodeDecodeError is a ValueError


def _key_values(key: tuple[Any, ...]) -> CounterKey:
    """A key of the fold (bytes of the line) as rollup values; ValueError if it is not one."""
    api, version, subscription, key_id, status_code, minute = key
    if api == b"\\N":
        raise ValueError("no API")
    return (
        _text(api),
        minute,
        0 if version == b"\\N" else int(version),
        _text(subscription),
        _text(key_id),
        int(status_code) // 100,
    )


Rows = list[tuple[Any, ...]]
Rollups = tuple[Rows, Rows, Rows]


def _levels(
    minutes: dict[CounterKey, list[Any]], minute_histograms: dict[HistogramKey, int]
) -> Rollups:
    """Minute, hour and day rollup rows of the minute folds; see `rollups_of`."""
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
                (api, resolution, at, version, subscription, key_id, status_class, *v)
            )
            found = per_api.get((api, start, status_class))
            if found is None:
                per_api[(api, start, status_class)] = list(v)
            else:
                _merge(found, v)
        for (api, start, status_class), v in sorted(per_api.items()):
            api_rows.append((api, resolution, starts[start], status_class, *v))
        for (api, start, metric, bucket), count in sorted(
            hlevel.items(), key=lambda item: (item[0][0], item[0][2], item[0][1], item[0][3])
        ):
            at = starts.get(start)
            if at is None:
                at = starts[start] = datetime.fromtimestamp(start, UTC)
            histogram_rows.append((api, resolution, metric, at, bucket, count))
    return counter_rows, api_rows, histogram_rows


def rollups_of(lines: Iterable[bytes]) -> Rollups:
    """The rollup rows of some events given as wire-format lines, for every resolution:
    counters per version, subscription, key and status class (COUNTER_KEY + COUNTERS),
    counters per API and status class (API_KEY + COUNTERS), histograms
    (HISTOGRAM_COLUMNS). Each list is sorted by resolution, then by the table's key,
    so that concurrent consumers lock rollup rows in the same order. A line that
    `Fold` cannot read as it is is read carefully; one that is not an event raises
    ValueError.
    """
    fold = Fold()
    for line in fold.add(lines):
        if fold.add([event_line(line_values(line))]):
            raise ValueError(f"not an execution event: {line[:200]!r}")
    return fold.rollups()


def rollups(rows: Iterable[Sequence[Any]]) -> Rollups:
    """`rollups_of` execution rows (tuples in the event's field order)."""
    return rollups_of(event_line(tuple(row)) for row in rows)


def rollup_rows(
    events: Iterable[ExecutionEvent],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """`rollups` of some events, each row as a dict of its columns."""
    counters, per_api, histograms = rollups(e.values() for e in events)
    return (
        [dict(zip(COUNTER_KEY + COUNTERS, row, strict=True)) for row in counters],
        [dict(zip(API_KEY + COUNTERS, row, strict=True)) for row in per_api],
        [dict(zip(HISTOGRAM_COLUMNS, row, strict=True)) for row in histograms],
    )
