"""The execution event's wire format (one stream field, one line) and the fold that reads it."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from analytics.ingest.entries import checked, checked_line, line_of
from analytics.ingest.repository import prepare
from analytics.ingest.rollup import Fold, rollup_rows, rollups_of
from analytics.stats.histogram import bucket_of
from shared.events import EVENT_FIELD, EVENT_FIELDS, INDEX, ExecutionEvent, event_line, line_values

T0 = datetime(2026, 3, 1, 23, 58, tzinfo=UTC)
AT, PATH = INDEX["started_at"], INDEX["path"]


def _with(fields: list[bytes], name: str, value: bytes) -> bytes:
    """The line of these fields with one of them replaced."""
    return b"\t".join([value if i == INDEX[name] else f for i, f in enumerate(fields)])


def _event(**extra: Any) -> ExecutionEvent:
    values: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "request_id": uuid.uuid4().hex,
        "api_id": "api-1",
        "deployment_id": "d-1",
        "caller_id": None,
        "method": "GET",
        "path": "/x",
        "status_code": 200,
        "latency_ms": 12.5,
        "upstream_ms": 11.25,
        "bytes_in": 10,
        "bytes_out": 100,
        "started_at": T0,
        "key_id": "k-1",
        "subscription_id": "s-1",
        "version": 3,
        "gateway_ms": 1.25,
    }
    values.update(extra)
    return ExecutionEvent(**values)


AWKWARD = [
    "/tab\there",
    "/new\nline\rand\\back\\slash",
    "\\N",
    "/x\\N",
    "/caf\u00e9/\u2603",
    "",
    "\\",
]


def test_a_line_reads_back_as_the_event() -> None:
    events = [_event(path=p) for p in AWKWARD]
    events += [
        _event(deployment_id=None, upstream_ms=None, key_id=None, subscription_id=None),
        _event(version=None, gateway_ms=None, status_code=503, latency_ms=0.0),
        _event(key_id="", subscription_id=""),  # empty text is not a missing value
    ]
    for e in events:
        line = e.to_line()
        assert line.count(b"\t") == EVENT_FIELDS - 1
        assert b"\n" not in line
        assert b"\r" not in line
        assert ExecutionEvent.from_fields({EVENT_FIELD.encode(): line}) == e
        assert ExecutionEvent.from_fields({EVENT_FIELD: line.decode()}) == e
        assert line_values(line) == e.values()


def test_times_are_written_in_utc_with_microseconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    naive = T0.replace(tzinfo=None, microsecond=7)  # taken as UTC
    for at, text in (
        (T0, b"2026-03-01T23:58:00.000000+00:00"),
        (T0.astimezone(plus_two), b"2026-03-01T23:58:00.000000+00:00"),
        (naive, b"2026-03-01T23:58:00.000007+00:00"),
    ):
        line = _event(started_at=at).to_line()
        assert line.split(b"\t")[AT] == text
        assert line_values(line)[AT] == datetime.fromisoformat(text.decode())


def test_nul_is_replaced_and_lone_surrogates_do_not_break_the_writer() -> None:
    assert line_values(_event(path="/a\x00b").to_line())[PATH] == "/a\ufffdb"
    assert line_values(_event(path="/a\udcffb").to_line())[PATH] == "/a?b"
    assert checked(_event(path="/a\x00b").values())[PATH] == "/a\ufffdb"
    values = _event().values()
    assert checked(values) is values


def test_lines_that_are_not_events_are_refused() -> None:
    good = _event().to_line()
    fields = good.split(b"\t")
    for broken in (
        b"",
        good + b"\textra",
        b"\t".join(fields[:-1]),
        good.replace(b"GET", b"G\\qT"),  # an escape the format does not use
        _with(fields, "status_code", b"OK"),
        _with(fields, "started_at", b"yesterday"),
        _with(fields, "started_at", b"2026-03-01T23:58:00"),  # no offset
        _with(fields, "event_id", b"\\N"),  # no event id
        good.replace(b"/x", b"/\xff"),
    ):
        with pytest.raises(ValueError):  # noqa: PT011  # many reasons, one exception
            line_values(broken)
    with pytest.raises(ValueError, match="longer"):
        checked_line(_event(method="X" * 11).to_line())
    with pytest.raises(ValueError, match="range"):
        checked_line(_event(bytes_in=2**63).to_line())
    with pytest.raises(ValueError, match="finite"):
        checked_line(_event(latency_ms=float("inf")).to_line())


def test_an_entry_becomes_its_line_and_one_without_it_is_refused() -> None:
    e = _event(path="/a\tb", subscription_id=None)
    assert line_of({EVENT_FIELD.encode(): e.to_line()}) == e.to_line()
    assert line_of({EVENT_FIELD: e.to_line().decode()}) == e.to_line()  # decoded replies
    for entry in ({}, {b"event_id": b"e-1", b"api_id": b"api-1"}, {"e0": "x"}):
        with pytest.raises(ValueError, match=EVENT_FIELD):
            line_of(entry)
        with pytest.raises(ValueError, match=EVENT_FIELD):
            ExecutionEvent.from_fields(entry)


def _reference(events: list[ExecutionEvent]) -> tuple[Counter[Any], Counter[Any]]:
    """Minute counts and histogram counts, computed the obvious way."""
    counts: Counter[Any] = Counter()
    histograms: Counter[Any] = Counter()
    for e in {e.event_id: e for e in events}.values():
        minute = e.started_at.replace(second=0, microsecond=0)
        key = (
            e.api_id,
            minute,
            e.version or 0,
            e.subscription_id or "",
            e.key_id or "",
            e.status_code // 100,
        )
        counts[(*key, "calls")] += 1
        counts[(*key, "bytes_in")] += e.bytes_in
        counts[(*key, "upstream_calls")] += e.upstream_ms is not None
        for metric, value in (("t", e.latency_ms), ("u", e.upstream_ms), ("g", e.gateway_ms)):
            if value is not None:
                histograms[(e.api_id, minute, metric, bucket_of(value))] += 1
    return counts, histograms


def test_the_fold_of_lines_agrees_with_the_obvious_sums() -> None:
    rng = random.Random(5)  # noqa: S311
    events = []
    for i in range(3000):
        latency = round(rng.lognormvariate(2, 1.5), 3)
        sub = rng.choice(["s-1", "s-2", None, ""])
        events.append(
            _event(
                api_id=rng.choice(["api-1", "api-2"]),
                path=rng.choice(["/a", "/b", *AWKWARD]),
                status_code=rng.choice([200, 204, 404, 500, 503]),
                latency_ms=latency,
                upstream_ms=rng.choice([None, round(latency * 0.9, 3)]),
                gateway_ms=rng.choice([None, 0.004, round(latency * 0.1, 3)]),
                bytes_in=rng.randint(0, 999),
                started_at=T0 + timedelta(seconds=rng.uniform(0, 300), microseconds=i),
                subscription_id=sub,
                key_id=f"k-{sub}" if sub else rng.choice([None, ""]),
                version=rng.choice([None, 0, 1, 2]),
            )
        )
    events += events[:50]  # redelivered within the batch
    batch = prepare([e.to_line() for e in events])
    assert len(batch.lines) == 3000
    counters, _, histograms = batch.rollups
    assert batch.rollups == rollups_of(e.to_line() for e in events)
    counts, expected_histograms = _reference(events)
    found: Counter[Any] = Counter()
    for row in counters:
        if row[1] == 60:
            key = (row[0], row[2], *row[3:7])
            found[(*key, "calls")] += row[7]
            found[(*key, "bytes_in")] += row[8]
            found[(*key, "upstream_calls")] += row[12]
    assert found == counts
    assert {
        (api, at, metric, bucket): count
        for api, resolution, metric, at, bucket, count in histograms
        if resolution == 60
    } == dict(expected_histograms)
    for resolution in (3600, 86400):
        assert sum(row[7] for row in counters if row[1] == resolution) == 3000


def test_the_fold_sets_aside_what_it_cannot_read_as_it_is() -> None:
    plain = _event().to_line()
    escaped = _event(path="/a\tb").to_line()
    odd_time = _event().to_line().replace(b"+00:00", b"+01:00")
    fields = _event().to_line().split(b"\t")
    not_a_number = _with(fields, "latency_ms", b"fast")
    fold = Fold()
    assert fold.add([plain, escaped, odd_time, not_a_number, b"junk", plain]) == [
        odd_time,
        not_a_number,
        b"junk",
    ]
    assert fold.kept == [plain, escaped]
    # The careful way writes a time in another offset again, in UTC: then it is folded.
    again = checked_line(odd_time)
    assert b"2026-03-01T22:58:00.000000+00:00" in again
    assert fold.add([again]) == []
    batch = prepare([plain, odd_time, not_a_number])
    assert len(batch.lines) == 2  # not_a_number is dropped (and logged)
    minutes = {row[2] for row in batch.rollups[0] if row[1] == 60}
    assert minutes == {T0, T0 - timedelta(hours=1)}


def test_rollup_rows_of_events_and_of_lines_are_the_same() -> None:
    events = [_event(started_at=T0 + timedelta(seconds=s)) for s in range(0, 240, 7)]
    counters, per_api, histograms = rollup_rows(events)
    assert sum(r["calls"] for r in counters) == 3 * len(events)
    assert sum(r["calls"] for r in per_api) == 3 * len(events)
    assert sum(r["count"] for r in histograms if r["metric"] == "t") == 3 * len(events)
    assert max(r["last_at"] for r in counters) == events[-1].started_at


def test_event_line_takes_a_row() -> None:
    e = _event()
    assert event_line(e.values()) == e.to_line() == event_line(list(e.values()))
