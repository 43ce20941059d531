"""Rollups against raw data, redelivery, retention, time series and history, on both databases."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics import jobs
from analytics.app import create_app
from analytics.ingest import repository as ingest_repository
from analytics.ingest.consumer import EventConsumer
from analytics.ingest.repository import store_executions
from analytics.ingest.rollup import API_KEY, COUNTER_KEY
from analytics.stats.histogram import MIN_MS, RELATIVE_ERROR, nearest_rank
from analytics.stats.service import api_stats
from shared.events import ExecutionEvent
from shared.models import Execution
from shared.models.execution import ApiRollup, ExecutionRollup, LatencyRollup
from shared.settings import AnalyticsSettings
from tests.conftest import asgi_client
from tests.integration.analytics_support import (
    app_sessions,
    event,
    feed,
    rolled_up,
    service_headers,
    stored,
    wait_stored,
)

BASE = datetime(2026, 1, 1, 22, 30, tzinfo=UTC)  # the data crosses hours and a day boundary


@pytest.fixture
def settings(make_settings: Any) -> AnalyticsSettings:
    result: AnalyticsSettings = make_settings(
        AnalyticsSettings, batch_size=200, reconcile_interval_seconds=3600
    )
    return result


@pytest.fixture
async def analytics(settings: AnalyticsSettings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async for client in asgi_client(create_app(settings)):
        yield client


def random_events(n: int, seed: int = 7) -> list[ExecutionEvent]:
    rng = random.Random(seed)  # noqa: S311
    out = []
    for _ in range(n):
        at = BASE + timedelta(seconds=rng.uniform(0, 3 * 3600))
        status = rng.choices([200, 201, 302, 404, 429, 500, 503], [60, 5, 5, 10, 5, 10, 5])[0]
        latency = rng.lognormvariate(3, 1.2)
        sub = rng.choice(["s-1", "s-2", "s-3", None])
        out.append(
            event(
                rng.choice(["api-1", "api-1", "api-2"]),
                status,
                latency,
                at,
                version=rng.choice([1, 2, None]),
                subscription_id=sub,
                key_id=f"k-{sub}-{rng.randint(1, 2)}" if sub else None,
                upstream_ms=None if status == 503 else latency * 0.9,
                gateway_ms=rng.choice([0.005, latency * 0.1]),
                bytes_in=rng.randint(0, 500),
                bytes_out=rng.randint(0, 5000),
            )
        )
    return out


async def store_all(
    sessions: async_sessionmaker[AsyncSession], events: list[ExecutionEvent]
) -> None:
    for start in range(0, len(events), 400):
        async with sessions() as session:
            await store_executions(session, events[start : start + 400])
            await session.commit()


def exact_percentile(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[nearest_rank(len(ordered), p)]


def assert_close(estimate: float | None, exact: float) -> None:
    assert estimate is not None
    if exact < MIN_MS:
        assert estimate <= MIN_MS
    else:
        assert abs(estimate - exact) <= exact * (RELATIVE_ERROR + 1e-9), (estimate, exact)


async def test_rollups_match_raw_data_and_redelivery_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    events = random_events(3000)
    await store_all(sessions, events)
    await store_all(sessions, events[1000:1600])  # redelivered: stored and rolled up once
    assert await stored(sessions) == 3000
    for resolution in (60, 3600, 86400):
        assert await rolled_up(sessions, resolution) == 3000

    windows = [
        (BASE, BASE + timedelta(hours=3)),
        (BASE + timedelta(minutes=17), BASE + timedelta(hours=2, minutes=41)),  # unaligned
        (BASE + timedelta(minutes=30), BASE + timedelta(minutes=31)),  # one minute
        (BASE - timedelta(days=3), BASE + timedelta(days=3)),  # whole days
    ]
    for since, until in windows:
        for scope in ({}, {"subscription_id": "s-2"}, {"version": 2}, {"key_id": "k-s-1-2"}):
            picked = [
                e
                for e in events
                if e.api_id == "api-1"
                and since <= e.started_at < until
                and all(getattr(e, k) == v for k, v in scope.items())
            ]
            stats = await api_stats(sessions, "api-1", since, until, **scope)
            statuses = Counter(f"{e.status_code // 100}xx" for e in picked)
            assert stats.calls == len(picked)
            assert stats.errors == statuses["5xx"]
            assert stats.client_errors == statuses["4xx"]
            assert stats.status_classes == dict(sorted(statuses.items()))
            assert stats.bytes_in == sum(e.bytes_in for e in picked)
            assert stats.bytes_out == sum(e.bytes_out for e in picked)
            assert stats.latency_ms.max == pytest.approx(max(e.latency_ms for e in picked))
            assert stats.latency_ms.avg == pytest.approx(
                sum(e.latency_ms for e in picked) / len(picked), abs=1e-3
            )
            assert stats.last_call_at is not None
            assert abs(stats.last_call_at - max(e.started_at for e in picked)) < timedelta(
                milliseconds=1
            )
            assert sum(p.calls for p in stats.series.points) == len(picked)
            if scope:
                assert stats.latency_ms.p95 is None  # histograms are per API
                continue
            for name, values in (
                ("latency_ms", [e.latency_ms for e in picked]),
                ("upstream_ms", [e.upstream_ms for e in picked if e.upstream_ms is not None]),
                ("gateway_ms", [e.gateway_ms for e in picked if e.gateway_ms is not None]),
            ):
                summary = getattr(stats, name)
                for p in (50, 95, 99):
                    assert_close(getattr(summary, f"p{p}"), exact_percentile(values, p))
            by_sub = Counter(e.subscription_id for e in picked)
            top = {c.subscription_id: c.calls for c in stats.top_consumers}
            assert top == dict(by_sub)


async def _rollup_rows(
    sessions: async_sessionmaker[AsyncSession], api_id: str
) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Every rollup row of an API, per table: key (without the API) -> values."""
    out: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    async with sessions() as session:
        for model, key in (
            (ExecutionRollup, COUNTER_KEY),
            (ApiRollup, API_KEY),
            (LatencyRollup, ("api_id", "resolution_s", "metric", "bucket_start", "bucket")),
        ):
            rows = (await session.scalars(select(model).where(model.api_id == api_id))).all()
            out[model.__tablename__] = {
                tuple(getattr(r, c) for c in key[1:]): tuple(
                    getattr(r, c.key) for c in model.__table__.columns if c.key not in key
                )
                for r in rows
            }
    return out


async def test_batches_holding_stored_events_roll_up_exactly_the_new_ones(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch holding an event stored before takes the careful path on PostgreSQL (the
    database inserts what is new, and exactly those lines are folded again); a clean
    batch is COPYed and its own fold added. Both must give the same rollups."""
    careful = []
    redelivered = ingest_repository._store_postgres_redelivered

    async def spy(*args: Any) -> set[str]:
        inserted = await redelivered(*args)
        careful.append(len(inserted))
        return inserted

    monkeypatch.setattr(ingest_repository, "_store_postgres_redelivered", spy)
    clean = random_events(600, seed=11)
    again = [
        replace(e, event_id=str(uuid.uuid4()), api_id=f"{e.api_id}-again")
        for e in clean
        if e.api_id == "api-1"
    ]
    async with sessions() as session:
        assert await store_executions(session, clean) == 600
        assert await store_executions(session, again[:1]) == 1
        await session.commit()
    for start in range(0, len(again), 100):  # each batch repeats one stored event
        chunk = again[max(0, start - 1) : start + 100]
        async with sessions() as session:
            assert await store_executions(session, chunk) == len(chunk) - 1
            await session.commit()
    assert await stored(sessions) == 600 + len(again)
    async with sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            assert careful == [
                len(again[max(0, k - 1) : k + 100]) - 1 for k in range(0, len(again), 100)
            ]

    expected = await _rollup_rows(sessions, "api-1")
    found = await _rollup_rows(sessions, "api-1-again")
    for table, rows in expected.items():
        assert found[table].keys() == rows.keys(), table
        for key, values in rows.items():
            for mine, theirs in zip(found[table][key], values, strict=True):
                # Float sums may differ in the last bits: they were added in another order.
                assert mine == (pytest.approx(theirs) if isinstance(theirs, float) else theirs)


async def test_a_crash_after_commit_before_ack_is_redelivered_and_counted_once(
    sessions: async_sessionmaker[AsyncSession], redis: Redis
) -> None:
    stream = "veil:test-redelivery"
    events = random_events(120, seed=3)
    await feed(redis, stream, events)
    consumer = EventConsumer(redis, sessions, stream, "g", "c1", batch_size=50)
    await consumer.ensure_group()
    # c1 reads 50, stores and commits them, and dies before XACK.
    response: Any = await redis.xreadgroup("g", "c1", {stream: ">"}, count=50)
    entries = response[0][1]
    async with sessions() as session:
        await store_executions(session, [ExecutionEvent.from_fields(f) for _, f in entries])
        await session.commit()
    # Another consumer read 30 more and vanished for good: they are claimed.
    await redis.xreadgroup("g", "c-dead", {stream: ">"}, count=30)

    assert await consumer.drain(pending_first=True) == 50
    consumer.claim_idle_ms = 0
    assert await consumer.claim_abandoned() == 30
    while await consumer.drain(block_ms=10):
        pass
    assert await stored(sessions) == 120
    for resolution in (60, 3600, 86400):
        assert await rolled_up(sessions, resolution) == 120
    assert consumer.stored == 70  # the 50 committed before the crash were skipped
    assert (await redis.xpending(stream, "g"))["pending"] == 0


async def test_retention_purge_keeps_rollups(
    sessions: async_sessionmaker[AsyncSession], settings: AnalyticsSettings
) -> None:
    now = datetime.now(UTC)
    old = [event("api-1", 200, 5.0, now - timedelta(days=40, minutes=i)) for i in range(30)]
    old += [event(f"api-{n}", 200, 5.0, now - timedelta(days=31)) for n in (0, 2, 2, 3)]
    new = [event("api-1", 500, 5.0, now - timedelta(days=1, minutes=i)) for i in range(20)]
    new += [event("api-3", 200, 5.0, now - timedelta(days=29))]
    await store_all(sessions, old + new)

    # API by API (there is no index on the time alone), every API with old calls.
    assert await jobs.purge_once(sessions, settings) == 34
    assert await jobs.purge_once(sessions, settings) == 0
    async with sessions() as session:
        left = set((await session.execute(select(Execution.event_id))).scalars())
        assert left == {e.event_id for e in new}
    stats = await api_stats(sessions, "api-1", now - timedelta(days=60), now)
    assert (stats.calls, stats.errors) == (50, 20)
    assert stats.series.resolution == "day"


async def test_time_series_resolution_follows_the_window(
    analytics: httpx.AsyncClient, settings: AnalyticsSettings, redis: Redis
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    events = [event("api-1", 200, 1.0, now - timedelta(minutes=m)) for m in (1, 2, 2, 90)]
    events += [event("api-1", 500, 3.0, now - timedelta(days=d)) for d in (3, 20)]
    await feed(redis, settings.events_stream, events)
    consumer = app_sessions(analytics)
    assert await wait_stored(consumer, len(events)) == len(events)

    async def series(hours: float, **extra: Any) -> dict[str, Any]:
        params = {"since": (now - timedelta(hours=hours)).isoformat(), "until": now.isoformat()}
        response = await analytics.get(
            "/internal/v1/apis/api-1/stats", params=params, headers=service_headers(settings)
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["series"]
        return result

    two_hours = await series(2)
    assert (two_hours["resolution"], two_hours["step_seconds"]) == ("minute", 60)
    assert len(two_hours["points"]) == 120
    assert [p["calls"] for p in two_hours["points"][-2:]] == [2, 1]
    assert sum(p["calls"] for p in two_hours["points"]) == 4
    assert two_hours["points"][-1]["latency_p95_ms"] == pytest.approx(1.0, rel=RELATIVE_ERROR)
    week = await series(24 * 7)
    # Every hour the window [since, until) touches: one more when it starts mid-hour
    # (a run at hh:00 exactly has no partial hour at either end).
    assert (week["resolution"], len(week["points"])) == ("hour", 24 * 7 + (now.minute > 0))
    assert sum(p["errors"] for p in week["points"]) == 1
    sixty_days = await series(24 * 60)
    assert sixty_days["resolution"] == "day"
    assert 60 <= len(sixty_days["points"]) <= 61
    assert sum(p["calls"] for p in sixty_days["points"]) == 6
    three_years = await series(24 * 365 * 3)
    assert three_years["resolution"] == "day"
    assert three_years["step_seconds"] == 3 * 86400
    assert len(three_years["points"]) <= 500


async def test_history_pages_and_filters(
    analytics: httpx.AsyncClient, settings: AnalyticsSettings, redis: Redis
) -> None:
    now = datetime.now(UTC)
    events = []
    for i in range(130):
        at = now - timedelta(seconds=i // 3)  # three calls share each instant: ties on the id
        status = (200, 404, 500, 503)[i % 4]
        events.append(
            event("api-1", status, 1.0, at, key_id=f"k-{i % 2}", subscription_id=f"s-{i % 3}")
        )
    events.append(event("api-2", 200, 1.0, now))
    await feed(redis, settings.events_stream, events)
    assert await wait_stored(app_sessions(analytics), len(events)) == len(events)
    headers = service_headers(settings)
    url = "/internal/v1/apis/api-1/executions"

    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 50}
        if cursor:
            params["cursor"] = cursor
        page = (await analytics.get(url, params=params, headers=headers)).json()
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == 130
    assert len({e["event_id"] for e in seen}) == 130
    keys = [(e["started_at"], e["event_id"]) for e in seen]
    assert keys == sorted(keys, reverse=True)

    async def count(**params: Any) -> int:
        response = await analytics.get(url, params={"limit": 500, **params}, headers=headers)
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    assert await count(status="500") == sum(e.status_code == 500 for e in events[:130])
    assert await count(status="5xx") == sum(e.status_code >= 500 for e in events[:130])
    assert await count(status="4XX") == sum(e.status_code == 404 for e in events[:130])
    assert await count(key_id="k-1") == 65
    assert await count(subscription_id="s-0", status="2xx") == sum(
        e.subscription_id == "s-0" and e.status_code == 200 for e in events[:130]
    )
    since = now - timedelta(seconds=10)
    assert await count(since=since.isoformat()) == sum(e.started_at >= since for e in events[:130])
    for bad in ({"status": "6xx"}, {"status": "abc"}, {"cursor": "!!"}, {"limit": 0}):
        response = await analytics.get(url, params=bad, headers=headers)
        assert response.status_code == 422, (bad, response.text)
    assert (await analytics.get(url)).status_code == 401
