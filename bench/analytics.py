"""Analytics: exactly-once ingest rate, and stats latency with 1M and 10M stored executions.

Run: `uv run python -m bench.analytics [--ingest N] [--pg-rows 1000000,10000000]
[--sqlite-rows N]`. Starts its own Redis and a throw-away PostgreSQL cluster (the test
helpers in tests/services.py: fsync off, as in the tests) and a temporary SQLite file.

1. Ingest, per database: N generated events (as dense in time as traffic at the target
   rate) are XADDed to a fresh stream, then one analytics consumer
   (EventConsumer.run_forever, the service's code and batch size) reads them, stores
   each exactly once with its rollups, commits and acknowledges; the rate is
   N / (first read → last event stored). Checked: N rows, N calls in every rollup
   level, nothing pending. Baseline in the same run: a bare insert of the same rows, in
   the same batches, into a copy of the executions table with the same indexes
   (PostgreSQL: COPY; SQLite: executemany): no Redis, no rollups.
2. Stats latency: executions spread over the last 30 days (80 % on one API, 50
   subscriptions with a skewed share, a second key on 5 % of their calls, a version
   per 10 days, 10 % errors, log-normal latencies). PostgreSQL: rows made by
   generate_series into the staging table, then stored and rolled up by the
   consumer's own statement (analytics.ingest.pg_rollup), at most 1M rows (one time
   slice) per statement, the secondary indexes of executions rebuilt afterwards.
   SQLite: rows made in Python, stored by analytics.ingest.repository.store_executions
   (Python rollups), 100k at a time. Then the stats of the busy API
   (analytics.stats.service.api_stats: the endpoint's code without HTTP) for windows
   from 1 hour to 30 days, 7 runs each after a warm-up, beside a bare COUNT(*) of the
   raw rows of the same window (the cheapest raw-table query there is) as baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.utils import HIREDIS_AVAILABLE
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.ingest import pg_rollup
from analytics.ingest.consumer import EventConsumer
from analytics.ingest.repository import record, store_executions
from analytics.stats.service import api_stats
from shared.db import create_engine, create_sessionmaker
from shared.events import ExecutionEvent
from shared.migrate import upgrade
from shared.settings import AnalyticsSettings
from tests.services import postgres_server, redis_server

INGEST_TARGET = 50_000  # events/s into PostgreSQL
STATS_TARGET_MS = 100.0  # any window, 10M executions
SPAN = timedelta(days=30)
BUSY_API = "api-main"
RUNS = 7
INDEXES = (  # executions' secondary indexes, for the SQLite baseline table
    ("api_id", "started_at"),
    ("subscription_id", "started_at"),
    ("started_at",),
)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# ---- generated executions -----------------------------------------------------------------


def generate(n: int, start: datetime, end: datetime, rng: random.Random) -> list[ExecutionEvent]:
    """n events in [start, end), in time order, distributed like the SQL generator below."""
    span = (end - start).total_seconds()
    events = []
    for i in range(n):
        at = start + timedelta(seconds=span * (i + rng.random()) / n)
        r = rng.random()
        api = BUSY_API if r < 0.8 else f"api-{1 + int(r * 100) % 4}"
        sub = None if rng.random() < 0.1 else f"sub-{int(50 * rng.random() ** 3)}"
        s = rng.random()
        status = (
            200 if s < 0.9 else 404 if s < 0.94 else 429 if s < 0.95 else 500 if s < 0.98 else 503
        )
        latency = math.exp(3 + 0.8 * rng.gauss(0, 1))
        age = (end - at).total_seconds()
        events.append(
            ExecutionEvent(
                event_id=str(uuid.uuid4()),
                request_id=uuid.uuid4().hex,
                api_id=api,
                deployment_id="dep-1",
                caller_id=None,
                method="GET",
                path="/v1/items",
                status_code=status,
                latency_ms=latency,
                upstream_ms=None if status == 503 else latency * 0.9,
                bytes_in=200,
                bytes_out=1500,
                started_at=at,
                key_id=f"{sub}-k{int(rng.random() < 0.05)}" if sub else None,
                subscription_id=sub,
                version=3 if age < 10 * 86400 else 2 if age < 20 * 86400 else 1,
                gateway_ms=latency * 0.1,
            )
        )
    return events


PG_GENERATE = f"""
INSERT INTO {pg_rollup.STAGING} ({", ".join(pg_rollup.COLUMNS)})
SELECT gen_random_uuid()::text, md5(g::text), api, 'dep-1', NULL, 'GET', '/v1/items',
       status, latency, CASE WHEN status = 503 THEN NULL ELSE latency * 0.9 END, 200, 1500,
       at, CASE WHEN sub IS NULL THEN NULL ELSE sub || '-k' || (g % 20 = 0)::int END, sub,
       CASE WHEN at > $3::timestamptz - interval '10 days' THEN 3
            WHEN at > $3::timestamptz - interval '20 days' THEN 2 ELSE 1 END,
       latency * 0.1
FROM (
    SELECT g, $1::timestamptz + ($2::timestamptz - $1::timestamptz) * ((g - $4) + random()) / $5
               AS at,
           CASE WHEN r1 < 0.8 THEN '{BUSY_API}' ELSE 'api-' || (1 + floor(r1 * 100)::int % 4) END
               AS api,
           CASE WHEN r2 < 0.1 THEN NULL ELSE 'sub-' || floor(50 * r3 ^ 3)::int END AS sub,
           CASE WHEN r4 < 0.9 THEN 200 WHEN r4 < 0.94 THEN 404 WHEN r4 < 0.95 THEN 429
                WHEN r4 < 0.98 THEN 500 ELSE 503 END AS status,
           exp(3 + 0.8 * sqrt(-2 * ln(r5)) * cos(2 * pi() * r6)) AS latency
    FROM (
        SELECT g, random() AS r1, random() AS r2, random() AS r3, random() AS r4,
               1 - random() AS r5, random() AS r6
        FROM generate_series($4::bigint, $4::bigint + $5::bigint - 1) AS g
    ) AS r
) AS x
"""  # noqa: S608  # constants only


async def load_postgres(dsn: str, have: int, want: int, now: datetime) -> float:
    """Grow the PostgreSQL data set from `have` to `want` rows; seconds taken."""
    started = time.perf_counter()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            f"CREATE UNLOGGED TABLE IF NOT EXISTS {pg_rollup.STAGING} "
            "(LIKE executions INCLUDING DEFAULTS)"
        )
        await connection.execute("SET work_mem = '256MB'")
        await connection.execute("SET maintenance_work_mem = '512MB'")
        # A bulk load: the secondary indexes of executions are built again afterwards.
        definitions = [
            row[0]
            for row in await connection.fetch(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'executions' "
                "AND indexname <> 'pk_executions'"
            )
        ]
        for row in await connection.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'executions' "
            "AND indexname <> 'pk_executions'"
        ):
            await connection.execute(f'DROP INDEX "{row[0]}"')
        # The new rows cover the whole 30 days, a time slice per statement of at most
        # 1M rows, so that each statement rolls up one stretch of time.
        slices = math.ceil((want - have) / 1_000_000)
        per_slice = math.ceil((want - have) / slices)
        position = have
        for k in range(slices):
            count = min(per_slice, want - position)
            start = now - SPAN + SPAN * k / slices
            end = start + SPAN / slices
            async with connection.transaction():
                await connection.execute(PG_GENERATE, start, end, now, position, count)
                await connection.fetchrow(pg_rollup.STORE_AND_ROLL_UP)
                await connection.execute(f"TRUNCATE {pg_rollup.STAGING}")
            position += count
            print(
                f"  … {position:,} rows, {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        for definition in definitions:
            await connection.execute(definition)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    return time.perf_counter() - started


async def load_sqlite(sessions: async_sessionmaker[AsyncSession], n: int, now: datetime) -> float:
    started = time.perf_counter()
    rng = random.Random(11)
    chunk = 100_000
    for k in range(math.ceil(n / chunk)):
        start = now - SPAN + SPAN * k * chunk / n
        events = generate(min(chunk, n - k * chunk), start, start + SPAN * chunk / n, rng)
        async with sessions() as session:
            await store_executions(session, events)
            await session.commit()
    async with sessions() as session:
        await session.execute(text("ANALYZE"))
        await session.commit()
    return time.perf_counter() - started


# ---- 1. ingest rate -----------------------------------------------------------------------


async def ingest(
    url: str,
    redis_url: str,
    n: int,
    batch: int,
    bare_insert: Callable[[list[Any]], Awaitable[None]],
) -> dict[str, float]:
    redis = Redis.from_url(redis_url)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    stream = f"bench:{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    # As dense in time as traffic at the target rate would be.
    events = generate(n, now - timedelta(seconds=n / INGEST_TARGET), now, random.Random(3))
    started = time.perf_counter()
    for i in range(0, n, 5000):
        async with redis.pipeline(transaction=False) as pipe:
            for e in events[i : i + 5000]:
                pipe.xadd(stream, e.to_fields())  # type: ignore[arg-type]
            await pipe.execute()
    xadd_rate = n / (time.perf_counter() - started)

    consumer = EventConsumer(redis, sessions, stream, "analytics", "bench-1", batch)
    await consumer.ensure_group()
    started = time.perf_counter()
    task = asyncio.create_task(consumer.run_forever(200))
    while consumer.stored < n:
        await asyncio.sleep(0.005)
        if task.done():
            task.result()
    elapsed = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    async with sessions() as session:
        rows = (await session.execute(text("SELECT count(*) FROM executions"))).scalar_one()
        levels = (
            await session.execute(
                text("SELECT sum(calls) FROM execution_rollups GROUP BY resolution_s")
            )
        ).scalars()
        rolled = sorted(int(x) for x in levels)
    pending = (await redis.xpending(stream, "analytics"))["pending"]
    assert rows == n, f"stored {rows} of {n}"
    assert rolled == [n, n, n], f"rollups {rolled}"
    assert pending == 0

    records = [record(e) for e in events]
    started = time.perf_counter()
    for i in range(0, n, batch):
        await bare_insert(records[i : i + batch])
    baseline = n / (time.perf_counter() - started)
    await redis.aclose()
    await engine.dispose()
    return {"rate": n / elapsed, "xadd": xadd_rate, "baseline": baseline}


def pg_bare_insert(dsn: str) -> tuple[Callable[[list[Any]], Awaitable[None]], Any]:
    state: dict[str, Any] = {}

    async def insert(rows: list[Any]) -> None:
        if "c" not in state:
            state["c"] = await asyncpg.connect(dsn)
            await state["c"].execute(
                "CREATE TABLE executions_baseline (LIKE executions INCLUDING ALL)"
            )
        async with state["c"].transaction():
            await state["c"].copy_records_to_table(
                "executions_baseline", records=rows, columns=list(pg_rollup.COLUMNS)
            )

    async def close() -> None:
        if "c" in state:
            await state["c"].close()

    return insert, close


def sqlite_bare_insert(path: Path) -> tuple[Callable[[list[Any]], Awaitable[None]], Any]:
    import sqlite3

    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE executions_baseline AS SELECT * FROM executions WHERE 0")
    connection.execute("CREATE UNIQUE INDEX b_pk ON executions_baseline (event_id)")
    for i, columns in enumerate(INDEXES):
        connection.execute(f"CREATE INDEX b_{i} ON executions_baseline ({', '.join(columns)})")
    placeholders = ", ".join("?" * len(pg_rollup.COLUMNS))
    names = ", ".join(pg_rollup.COLUMNS)

    async def insert(rows: list[Any]) -> None:
        converted = [(*r[:12], r[12].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[13:]) for r in rows]
        connection.execute("BEGIN")
        connection.executemany(
            f"INSERT INTO executions_baseline ({names}) VALUES ({placeholders})",  # noqa: S608
            converted,
        )
        connection.execute("COMMIT")

    async def close() -> None:
        connection.close()

    return insert, close


# ---- 2. stats latency ---------------------------------------------------------------------


def windows(now: datetime) -> list[tuple[str, datetime, datetime]]:
    return [
        ("last hour", now - timedelta(hours=1), now),
        ("last 6 hours", now - timedelta(hours=6), now),
        ("last 24 hours", now - timedelta(hours=24), now),
        ("last 7 days", now - timedelta(days=7), now),
        ("last 30 days", now - timedelta(days=30), now),
        (
            "13d 7h 23m, unaligned",
            now - timedelta(days=15, hours=7, minutes=23, seconds=41),
            now - timedelta(days=2, seconds=7),
        ),
    ]


async def stats_latency(url: str, now: datetime) -> list[tuple[str, int, float, float, float]]:
    """(window, calls, median ms, max ms, baseline COUNT(*) median ms) per window."""
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    out = []
    count = text(
        "SELECT count(*) FROM executions WHERE api_id = :api "
        "AND started_at >= :since AND started_at < :until"
    )
    for name, since, until in windows(now):
        times, baseline = [], []
        calls = 0
        for run in range(RUNS + 1):
            async with sessions() as session:
                started = time.perf_counter()
                stats = await api_stats(session, BUSY_API, since, until)
                elapsed = (time.perf_counter() - started) * 1000
                calls = stats.calls
            async with sessions() as session:
                started = time.perf_counter()
                await session.execute(
                    count, {"api": BUSY_API, "since": stats.since, "until": stats.until}
                )
                counted = (time.perf_counter() - started) * 1000
            if run:  # the first run warms the caches
                times.append(elapsed)
                baseline.append(counted)
        out.append((name, calls, statistics.median(times), max(times), statistics.median(baseline)))
    await engine.dispose()
    return out


def print_stats(title: str, rows: list[tuple[str, int, float, float, float]]) -> float:
    print(f"\n{title}")
    print(
        f"  {'window':24} {'calls':>10} {'stats p50':>10} {'max':>8} {'COUNT(*)':>10} {'ratio':>7}"
    )
    for name, calls, median, worst, baseline in rows:
        print(
            f"  {name:24} {calls:>10,} {median:>8.1f}ms {worst:>6.1f}ms {baseline:>8.1f}ms"
            f" {baseline / median:>6.1f}x"
        )
    return max(median for _, _, median, _, _ in rows)


# ---- main ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    batch = AnalyticsSettings.model_fields["batch_size"].default
    tmp = Path(tempfile.mkdtemp(prefix="veil-bench-analytics-"))
    try:
        return await _run(args, batch, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _run(args: argparse.Namespace, batch: int, tmp: Path) -> int:
    with redis_server() as redis_url, postgres_server() as admin_url:
        admin = admin_url.replace("postgresql+asyncpg://", "postgresql://")
        for _ in range(100):
            try:
                connection = await asyncpg.connect(admin)
                break
            except (OSError, asyncpg.CannotConnectNowError):
                await asyncio.sleep(0.2)
        for name in ("ingest", "stats"):
            await connection.execute(f"CREATE DATABASE {name}")
        await connection.close()
        base = admin_url.rsplit("/", 1)[0]
        pg_ingest, pg_stats = f"{base}/ingest", f"{base}/stats"
        sqlite_ingest = tmp / "ingest.db"
        sqlite_stats = tmp / "stats.db"
        for url in (
            pg_ingest,
            pg_stats,
            f"sqlite+aiosqlite:///{sqlite_ingest}",
            f"sqlite+aiosqlite:///{sqlite_stats}",
        ):
            await asyncio.to_thread(upgrade, url)

        parser = "hiredis (C)" if HIREDIS_AVAILABLE else "redis-py's pure-Python parser"
        print(
            f"Veil analytics benchmark ({os.cpu_count()} CPUs; batch {batch} events;"
            f" Redis replies parsed by {parser})"
        )
        results: dict[str, dict[str, float]] = {}
        insert, close = pg_bare_insert(pg_ingest.replace("postgresql+asyncpg://", "postgresql://"))
        results["PostgreSQL"] = await ingest(pg_ingest, redis_url, args.ingest, batch, insert)
        await close()
        insert, close = sqlite_bare_insert(sqlite_ingest)
        sqlite_n = max(1, args.ingest // 4)
        results["SQLite"] = await ingest(
            f"sqlite+aiosqlite:///{sqlite_ingest}", redis_url, sqlite_n, batch, insert
        )
        await close()
        print("\n1. Ingest, exactly-once path (XADD → consumer → DB, rollups in the transaction)")
        for db, r in results.items():
            n = args.ingest if db == "PostgreSQL" else sqlite_n
            print(
                f"  {db:10} {n:>9,} events: {r['rate']:>8,.0f} events/s"
                f"   bare insert of the same rows {r['baseline']:>8,.0f} rows/s"
                f" ({r['rate'] / r['baseline']:.2f}x)   XADD {r['xadd']:,.0f}/s"
            )
        sys.stdout.flush()
        pg_rate = results["PostgreSQL"]["rate"]

        now = datetime.now(UTC)
        worst: dict[str, float] = {}
        have = 0
        pg_dsn = pg_stats.replace("postgresql+asyncpg://", "postgresql://")

        async def sqlite_stats_part() -> None:
            engine = create_engine(f"sqlite+aiosqlite:///{sqlite_stats}")
            took = await load_sqlite(create_sessionmaker(engine), args.sqlite_rows, now)
            await engine.dispose()
            print(
                f"\n(SQLite: {args.sqlite_rows:,} executions generated and stored in {took:.0f} s)"
            )
            title = f"2. Stats of one API, SQLite, {args.sqlite_rows:,} executions"
            worst[f"SQLite {args.sqlite_rows:,}"] = print_stats(
                title, await stats_latency(f"sqlite+aiosqlite:///{sqlite_stats}", now)
            )

        for step, rows in enumerate(r for r in args.pg_rows if r > 0):
            took = await load_postgres(pg_dsn, have, rows, now)
            have = rows
            print(f"\n(PostgreSQL: {rows:,} executions generated and rolled up in {took:.0f} s)")
            title = f"2. Stats of one API, PostgreSQL, {rows:,} executions (80 % on this API)"
            worst[f"PostgreSQL {rows:,}"] = print_stats(title, await stats_latency(pg_stats, now))
            sys.stdout.flush()
            if step == 0 and args.sqlite_rows:  # the smaller sizes first
                await sqlite_stats_part()
                sys.stdout.flush()

    print(f"\n(load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    print("\nTargets:")
    print(
        f"  ingest into PostgreSQL ≥ {INGEST_TARGET:,}/s: {pg_rate:,.0f}/s"
        f"  {verdict(pg_rate >= INGEST_TARGET)}"
    )
    for what, ms in worst.items():
        print(
            f"  stats ≤ {STATS_TARGET_MS:g} ms, {what}: slowest window {ms:.1f} ms"
            f"  {verdict(ms <= STATS_TARGET_MS)}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ingest", type=int, default=200_000, help="events (SQLite: a quarter)")
    parser.add_argument(
        "--pg-rows",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1_000_000, 10_000_000],
        help="stored executions to measure stats at, ascending (0: no stats part)",
    )
    parser.add_argument("--sqlite-rows", type=int, default=1_000_000)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
