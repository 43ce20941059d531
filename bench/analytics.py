"""Analytics: exactly-once ingest rate, and stats latency with 1M and 10M stored executions.

Run: `uv run python -m bench.analytics [--quick] [--ingest N] [--pg-rows 1000000,10000000]
[--sqlite-rows N]`. Starts its own Redis and a throw-away PostgreSQL cluster (the test
helpers of tests/services.py: fsync off, as in the tests) and temporary SQLite files.

1. Ingest, per database, through the service's own path: N generated events (as dense
   in time as traffic at the target rate) are XADDed to a fresh stream, then one
   analytics consumer (EventConsumer.run_forever: the service's code, batch size and
   GC settings) reads them, stores each exactly once with its rollups, commits and
   acknowledges. Rate: N / (first read → last event stored). Checked at the end by
   counting: N rows, N calls at every rollup level (and N in the latency histograms),
   nothing pending. Then every entry is delivered again (XGROUP SETID 0): nothing may
   change. The CPU time each process spent per event is measured too (this process,
   the PostgreSQL cluster, redis-server), since the machine is shared. Baseline in the
   same run: a bare insert of the same rows, in the same batches, into a copy of
   `executions` with the same indexes (PostgreSQL: binary COPY of Python rows; SQLite:
   executemany): no Redis, no deduplication, no rollups. The events are XADDed as the
   data plane writes them (wire format 1, shared/events.py).
2. Stats latency. Executions over the last 60 days (80 % on one API, 50 subscriptions
   with a skewed share, a second key on 5 % of their calls, a new version every 20
   days, 10 % errors, log-normal latencies). PostgreSQL: rows made by generate_series
   and read out as wire-format lines (COPY … TO STDOUT), then folded and stored by the
   ingest path (analytics.ingest.repository.prepare_in_turns and store_batch: COPY, and
   the fold's rollups), one slice of whole days per batch, two at a time; the secondary
   indexes of `executions` are dropped for the load and built again afterwards. SQLite:
   rows made in Python, stored by analytics.ingest.repository.store_rows. Then the
   stats of the busy API
   (analytics.stats.service.api_stats: the endpoint's code without HTTP) for windows from
   1 hour to the whole 60 days, the median of 7 runs after a warm-up, beside a bare
   COUNT(*) of the raw rows of the same window (the cheapest raw-table query there is)
   as the baseline; plus one subscription's stats and its billable calls of 30 days
   (analytics.billing.repository.calls_between), as invoices count them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import math
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.billing.repository import calls_between
from analytics.ingest.consumer import EventConsumer, tune_gc
from analytics.ingest.repository import prepare_in_turns, sqlite_row, store_batch, store_rows
from analytics.ingest.statements import COLUMNS
from analytics.stats.service import api_stats
from analytics.stats.windows import ceil_to, floor_to
from shared.db import create_engine, create_sessionmaker
from shared.events import EVENT_FIELD, ExecutionEvent, new_event_id
from shared.migrate import upgrade
from shared.models.execution import MINUTE
from shared.settings import AnalyticsSettings
from tests.services import postgres_server, redis_server

INGEST_TARGET = 50_000  # events/s into PostgreSQL
STATS_TARGET_MS = 100.0  # any window, 10M executions
SPAN = timedelta(days=60)
BUSY_API = "api-main"
BUSY_SUB = "sub-0"  # the subscription with the most calls
RUNS = 7
INDEXES = (("api_id", "started_at"), ("subscription_id", "started_at"))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


# ---- CPU time of the processes involved ---------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _postmaster(port: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"/postgres") and str(port).encode() in argv:
                return int(entry.name)
    raise RuntimeError(f"no postmaster on port {port}")


def cluster_cpu(postmaster: int) -> float:
    """CPU seconds of a PostgreSQL cluster: the postmaster, its live children, and (through
    the postmaster's children totals) every backend that has exited."""
    fields = _stat(postmaster)
    total = sum(int(x) for x in fields[11:15])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(postmaster):
            try:
                child = _stat(int(entry.name))
            except OSError:
                continue
            if int(child[1]) == postmaster:
                total += int(child[11]) + int(child[12])
    return total / _TICK


async def redis_cpu(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# ---- generated executions -----------------------------------------------------------------


def generate(n: int, start: datetime, end: datetime, rng: random.Random) -> list[ExecutionEvent]:
    """n events in [start, end), in time order, distributed like PG_GENERATE below."""
    span = (end - start).total_seconds()
    now = datetime.now(UTC)
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
        # Times in ms to the microsecond, as the data plane writes them.
        latency = round(math.exp(3 + 0.8 * rng.gauss(0, 1)), 3)
        age = (now - at).total_seconds()
        events.append(
            ExecutionEvent(
                event_id=new_event_id(),  # as the data plane makes them (UUIDv7)
                request_id=uuid.uuid4().hex,
                api_id=api,
                deployment_id="dep-1",
                caller_id=None,
                method="GET",
                path="/v1/items",
                status_code=status,
                latency_ms=latency,
                # 429 and 503 are the gateway's own answers: no upstream time, not billed.
                upstream_ms=None if status in (429, 503) else round(latency * 0.9, 3),
                bytes_in=200,
                bytes_out=1500,
                started_at=at,
                key_id=f"{sub}-k{int(rng.random() < 0.05)}" if sub else None,
                subscription_id=sub,
                version=3 if age < 20 * 86400 else 2 if age < 40 * 86400 else 1,
                gateway_ms=round(latency * 0.1, 3),
            )
        )
    return events


# Each field of a generated execution, as SQL over the draws below; a field not here
# takes its default (ExecutionEvent's).
PG_FIELDS = {
    "event_id": "gen_random_uuid()::text",
    "request_id": "md5(g::text)",
    "api_id": "api",
    "deployment_id": "'dep-1'",
    "caller_id": "NULL",
    "method": "'GET'",
    "path": "'/v1/items'",
    "status_code": "status",
    "latency_ms": "latency",
    "upstream_ms": "CASE WHEN status IN (429, 503) THEN NULL ELSE latency * 0.9 END",
    "bytes_in": "200",
    "bytes_out": "1500",
    # As the wire format writes a time.
    "started_at": """to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')""",
    "key_id": "CASE WHEN sub IS NULL THEN NULL ELSE sub || '-k' || (r7 < 0.05)::int END",
    "subscription_id": "sub",
    "version": (
        "CASE WHEN at > $3::timestamptz - interval '20 days' THEN 3 "
        "WHEN at > $3::timestamptz - interval '40 days' THEN 2 ELSE 1 END"
    ),
    "gateway_ms": "latency * 0.1",
}


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + str(value).replace("'", "''") + "'"


_DEFAULTS = {
    f.name: f.default
    for f in dataclasses.fields(ExecutionEvent)
    if f.default is not dataclasses.MISSING
}

# Rows as the wire format's lines, by COPY … TO STDOUT: $1, $2: the slice [start, end);
# $3: now; $4: first row number; $5: rows.
PG_LINES = f"""
SELECT {", ".join(PG_FIELDS.get(name) or _sql_literal(_DEFAULTS[name]) for name in COLUMNS)}
FROM (
    SELECT g, r7,
           $1::timestamptz + ($2::timestamptz - $1::timestamptz) * ((g - $4) + random()) / $5
               AS at,
           CASE WHEN r1 < 0.8 THEN '{BUSY_API}' ELSE 'api-' || (1 + floor(r1 * 100)::int % 4) END
               AS api,
           CASE WHEN r2 < 0.1 THEN NULL ELSE 'sub-' || floor(50 * r3 ^ 3)::int END AS sub,
           CASE WHEN r4 < 0.9 THEN 200 WHEN r4 < 0.94 THEN 404 WHEN r4 < 0.95 THEN 429
                WHEN r4 < 0.98 THEN 500 ELSE 503 END AS status,
           exp(3 + 0.8 * sqrt(-2 * ln(r5)) * cos(2 * pi() * r6)) AS latency
    FROM (
        SELECT g, random() AS r1, random() AS r2, random() AS r3, random() AS r4,
               1 - random() AS r5, random() AS r6, random() AS r7
        FROM generate_series($4::bigint, $4::bigint + $5::bigint - 1) AS g
    ) AS r
) AS x
"""  # noqa: S608  # constants only


async def connect(dsn: str) -> asyncpg.Connection:
    for attempt in range(100):  # the server may still be starting
        try:
            return await asyncpg.connect(dsn)
        except (OSError, asyncpg.CannotConnectNowError):
            if attempt == 99:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


async def load_postgres(url: str, want: int, now: datetime) -> float:
    """`want` rows over the whole SPAN into an empty database; seconds taken."""
    started = time.perf_counter()
    admin = await connect(plain(url))
    indexes = await admin.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'executions' "
        "AND indexname <> 'pk_executions'"
    )
    for name, _ in indexes:  # a bulk load: built again at the end
        await admin.execute(f'DROP INDEX "{name}"')
    # Slices of whole days (the first and last in part): no two slices share a rollup
    # bucket, so two connections load side by side without waiting for each other.
    first = now - SPAN
    midnight = first.replace(hour=0, minute=0, second=0, microsecond=0)
    days = sorted({first, *(midnight + timedelta(days=d) for d in range(1, SPAN.days + 1)), now})
    slices = max(2, math.ceil(want / 100_000))
    cuts = sorted({days[round((len(days) - 1) * k / slices)] for k in range(slices + 1)})
    queue: list[tuple[datetime, datetime, int, int]] = []
    position = 0
    for start, stop in itertools.pairwise(cuts):
        count = round(want * ((stop - first) / SPAN)) - position
        queue.append((start, stop, position, count))
        position += count
    loaded = 0
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)

    async def worker() -> None:
        nonlocal loaded
        connection = await connect(plain(url))
        try:
            while queue:
                start, end, row0, count = queue.pop(0)
                chunks: list[bytes] = []

                async def collect(chunk: bytes) -> None:
                    chunks.append(chunk)  # noqa: B023  # used before the next slice

                await connection.copy_from_query(
                    PG_LINES, start, end, now, row0, count, output=collect
                )
                # The other worker's store goes on while this one folds.
                batch = await prepare_in_turns(b"".join(chunks).split(b"\n")[:-1])
                async with sessions() as session:
                    await store_batch(session, batch)
                    await session.commit()
                loaded += count
                print(
                    f"  … {loaded:,} rows, {time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            await connection.close()

    await asyncio.gather(worker(), worker())
    await engine.dispose()
    await admin.execute("SET maintenance_work_mem = '512MB'")
    for _, definition in indexes:
        await admin.execute(definition)
    await admin.execute("VACUUM ANALYZE")
    await admin.close()
    return time.perf_counter() - started


async def load_sqlite(url: str, n: int, now: datetime) -> float:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    started = time.perf_counter()
    rng = random.Random(11)
    chunk = 100_000
    for k in range(math.ceil(n / chunk)):
        count = min(chunk, n - k * chunk)
        start = now - SPAN + SPAN * (k * chunk) / n
        events = generate(count, start, start + SPAN * count / n, rng)
        async with sessions() as session:
            await store_rows(session, [e.values() for e in events])
            await session.commit()
    async with sessions() as session:
        await session.execute(text("ANALYZE"))
        await session.commit()
    await engine.dispose()
    return time.perf_counter() - started


async def check_rollups(url: str) -> int:
    """The number of stored executions, once every rollup level is seen to hold them all."""
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as session:
        rows = int((await session.execute(text("SELECT count(*) FROM executions"))).scalar_one())
        for table, where in (
            ("execution_rollups", "true"),
            ("api_rollups", "true"),
            ("latency_rollups", "metric = 't'"),
        ):
            column = "count" if table == "latency_rollups" else "calls"
            sums = (
                await session.execute(
                    text(
                        f"SELECT resolution_s, sum({column}) FROM {table} "  # noqa: S608
                        f"WHERE {where} GROUP BY resolution_s ORDER BY 1"
                    )
                )
            ).all()
            assert [(int(r), int(s)) for r, s in sums] == [
                (60, rows),
                (3600, rows),
                (86400, rows),
            ], f"{table}: {sums} for {rows} executions"
    await engine.dispose()
    return rows


# ---- 1. ingest rate -----------------------------------------------------------------------


async def cpu_sample(redis: Redis, postmaster: int | None) -> tuple[float, ...]:
    """Wall clock, then CPU seconds of this process, the PostgreSQL cluster, redis-server."""
    pg = cluster_cpu(postmaster) if postmaster else 0.0
    return time.perf_counter(), time.process_time(), pg, await redis_cpu(redis)


async def run_consumer(consumer: EventConsumer, done: Callable[[], Awaitable[bool]]) -> None:
    task = asyncio.create_task(consumer.run_forever(200))
    try:
        while not await done():
            await asyncio.sleep(0.005)
            if task.done():
                task.result()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def ingest(
    url: str, redis_url: str, n: int, batch: int, postmaster: int | None
) -> dict[str, float]:
    redis = Redis.from_url(redis_url)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    stream = f"bench:{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    events = generate(n, now - timedelta(seconds=n / INGEST_TARGET), now, random.Random(3))
    started = time.perf_counter()
    for i in range(0, n, 5000):
        async with redis.pipeline(transaction=False) as pipe:
            for e in events[i : i + 5000]:
                pipe.xadd(stream, {EVENT_FIELD: e.to_line()})
            await pipe.execute()
    xadd_rate = n / (time.perf_counter() - started)

    consumer = EventConsumer(redis, sessions, stream, "analytics", "bench-1", batch)
    await consumer.ensure_group()
    load_before = os.getloadavg()[0]
    before = await cpu_sample(redis, postmaster)

    async def all_stored() -> bool:
        return consumer.stored >= n

    await run_consumer(consumer, all_stored)
    after = await cpu_sample(redis, postmaster)
    load_after = os.getloadavg()[0]
    assert await check_rollups(url) == n
    assert (await redis.xpending(stream, "analytics"))["pending"] == 0

    # Every entry delivered again: nothing may be stored twice, no rollup may move.
    await redis.xgroup_setid(stream, "analytics", "0")
    last = (await redis.xinfo_stream(stream))["last-generated-id"]
    again = EventConsumer(redis, sessions, stream, "analytics", "bench-2", batch)

    async def all_seen() -> bool:
        (group,) = await redis.xinfo_groups(stream)
        return bool(group["last-delivered-id"] == last and group["pending"] == 0)

    redelivery = time.perf_counter()
    await run_consumer(again, all_seen)
    redelivery = time.perf_counter() - redelivery
    assert again.stored == 0
    assert await check_rollups(url) == n

    baseline = await bare_insert(url, [e.values() for e in events], batch)
    await redis.aclose()
    await engine.dispose()
    wall = after[0] - before[0]
    return {
        "rate": n / wall,
        "xadd": xadd_rate,
        "baseline": baseline,
        "redelivered": n / redelivery,
        "cpu_python": (after[1] - before[1]) / n * 1e6,
        "cpu_postgres": (after[2] - before[2]) / n * 1e6,
        "cpu_redis": (after[3] - before[3]) / n * 1e6,
        "load": (load_before + load_after) / 2,
    }


async def bare_insert(url: str, rows: list[tuple[Any, ...]], batch: int) -> float:
    """Rows/s of a bare insert of the rows, `batch` per transaction, into a copy of
    `executions` with the same indexes: PostgreSQL COPY, SQLite executemany."""
    if url.startswith("postgresql"):
        connection = await connect(plain(url))
        await connection.execute("CREATE TABLE baseline (LIKE executions INCLUDING ALL)")
        started = time.perf_counter()
        for i in range(0, len(rows), batch):
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "baseline", records=rows[i : i + batch], columns=COLUMNS
                )
        elapsed = time.perf_counter() - started
        await connection.close()
        return len(rows) / elapsed
    lite = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
    lite.execute("PRAGMA journal_mode=WAL")
    lite.execute("PRAGMA synchronous=NORMAL")
    lite.execute("CREATE TABLE baseline AS SELECT * FROM executions WHERE 0")
    lite.execute("CREATE UNIQUE INDEX baseline_pk ON baseline (event_id)")
    for i, columns in enumerate(INDEXES):
        lite.execute(f"CREATE INDEX baseline_{i} ON baseline ({', '.join(columns)})")
    insert = f"INSERT INTO baseline VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        lite.execute("BEGIN")
        lite.executemany(insert, [sqlite_row(r) for r in rows[i : i + batch]])
        lite.execute("COMMIT")
    elapsed = time.perf_counter() - started
    lite.close()
    return len(rows) / elapsed


# ---- 2. stats latency ---------------------------------------------------------------------


def windows(now: datetime) -> list[tuple[str, datetime, datetime]]:
    return [
        ("last hour", now - timedelta(hours=1), now),
        ("last 24 hours", now - timedelta(hours=24), now),
        ("last 7 days", now - timedelta(days=7), now),
        ("last 30 days", now - timedelta(days=30), now),
        ("whole range, 60 days", now - SPAN - timedelta(days=1), now),
        (
            "13d 7h 23m, unaligned",
            now - timedelta(days=15, hours=7, minutes=23, seconds=41),
            now - timedelta(days=2, seconds=7),
        ),
    ]


Timing = tuple[str, int, float, float, float | None]  # what, calls, median ms, max ms, baseline


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[Any, float, float]:
    """(result, median ms, max ms) of RUNS runs after a warm-up."""
    times = []
    result = await call()
    for _ in range(RUNS):
        started = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - started) * 1000)
    return result, statistics.median(times), max(times)


def in_session(
    sessions: async_sessionmaker[AsyncSession], call: Callable[..., Awaitable[Any]], **kwargs: Any
) -> Callable[[], Awaitable[Any]]:
    """`call(session, **kwargs)` in a session of its own."""

    async def run() -> Any:
        async with sessions() as session:
            return await call(session, **kwargs)

    return run


async def stats_latency(url: str, now: datetime) -> list[Timing]:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    count = text(
        "SELECT count(*) FROM executions WHERE api_id = :api "
        "AND started_at >= :since AND started_at < :until"
    )
    out: list[Timing] = []
    for name, since, until in windows(now):
        stats, median, worst = await timed(partial(api_stats, sessions, BUSY_API, since, until))
        window = {"api": BUSY_API, "since": stats.since, "until": stats.until}
        _, baseline, _ = await timed(
            in_session(sessions, AsyncSession.execute, statement=count, params=window)
        )
        out.append((name, stats.calls, median, worst, baseline))

    since, until = floor_to(now - timedelta(days=30), MINUTE), ceil_to(now, MINUTE)
    stats, median, worst = await timed(
        partial(api_stats, sessions, BUSY_API, since, until, subscription_id=BUSY_SUB)
    )
    out.append((f"{BUSY_SUB}, last 30 days", stats.calls, median, worst, None))
    billed, median, worst = await timed(
        in_session(
            sessions,
            calls_between,
            api_id=BUSY_API,
            subscription_id=BUSY_SUB,
            start=since,
            end=until,
        )
    )
    out.append((f"billable calls of {BUSY_SUB}, 30 days", int(billed), median, worst, None))
    await engine.dispose()
    return out


def print_stats(title: str, rows: list[Timing]) -> float:
    print(f"\n{title}")
    print("| window | calls | stats, median | max | raw COUNT(*), median | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, calls, median, worst, baseline in rows:
        raw = f"{baseline:.1f} ms | {baseline / median:.1f}x" if baseline is not None else "— | —"
        print(f"| {name} | {calls:,} | {median:.1f} ms | {worst:.1f} ms | {raw} |")
    sys.stdout.flush()
    return max(median for _, _, median, _, _ in rows)


# ---- main ---------------------------------------------------------------------------------


@contextmanager
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="veil-bench-analytics-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def create_databases(admin_url: str, *names: str) -> list[str]:
    connection = await connect(plain(admin_url))
    for name in names:
        await connection.execute(f"CREATE DATABASE {name}")
    await connection.close()
    base = admin_url.rsplit("/", 1)[0]
    return [f"{base}/{name}" for name in names]


def print_ingest(results: dict[str, tuple[int, dict[str, float]]]) -> None:
    print("\n1. Ingest: XADD → consumer → database, exactly once, rollups in the transaction")
    print(
        "| database | events | events/s | bare insert, rows/s | ratio | redelivered, events/s "
        "| CPU µs/event: consumer / database / Redis | load |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for db, (n, r) in results.items():
        database = f"{r['cpu_postgres']:.1f}" if db == "PostgreSQL" else "(in-process)"
        print(
            f"| {db} | {n:,} | {r['rate']:,.0f} | {r['baseline']:,.0f}"
            f" | {r['rate'] / r['baseline']:.2f}x | {r['redelivered']:,.0f}"
            f" | {r['cpu_python']:.1f} / {database} / {r['cpu_redis']:.1f} | {r['load']:.1f} |"
        )
    print(
        "(every event counted once at every rollup level; a second delivery of all of them"
        " stored nothing)"
    )
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> int:
    batch = args.batch or AnalyticsSettings.model_fields["batch_size"].default
    tune_gc(AnalyticsSettings.model_fields["ingest_gc_threshold"].default)
    print(
        f"Veil analytics benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs,"
        f" batch {batch:,} events; load average at the start {load_average()}"
    )
    targets: list[str] = []
    with scratch() as tmp, redis_server() as redis_url, postgres_server() as admin_url:
        postmaster = _postmaster(int(admin_url.rsplit(":", 1)[1].split("/")[0]))
        if args.ingest:
            (pg,) = await create_databases(admin_url, "ingest")
            sqlite = f"sqlite+aiosqlite:///{tmp / 'ingest.db'}"
            for url in (pg, sqlite):
                await asyncio.to_thread(upgrade, url)
            n = max(1, args.ingest // 4)
            results = {
                "PostgreSQL": (
                    args.ingest,
                    await ingest(pg, redis_url, args.ingest, batch, postmaster),
                ),
                "SQLite": (n, await ingest(sqlite, redis_url, n, batch, None)),
            }
            print_ingest(results)
            r = results["PostgreSQL"][1]
            ceiling = 1e6 / max(r["cpu_python"], r["cpu_postgres"])
            targets.append(
                f"ingest into PostgreSQL ≥ {INGEST_TARGET:,}/s: {r['rate']:,.0f}/s"
                f" {verdict(r['rate'] >= INGEST_TARGET)}; CPU-bound (a core for the consumer,"
                f" one for PostgreSQL) {ceiling:,.0f}/s {verdict(ceiling >= INGEST_TARGET)}"
            )

        now = datetime.now(UTC)
        sizes = [("SQLite", args.sqlite_rows)] if args.sqlite_rows else []
        sizes += [("PostgreSQL", rows) for rows in args.pg_rows if rows]
        for db, rows in sizes:
            if db == "SQLite":
                url = f"sqlite+aiosqlite:///{tmp / 'stats.db'}"
                await asyncio.to_thread(upgrade, url)
                took = await load_sqlite(url, rows, now)
            else:
                (url,) = await create_databases(admin_url, f"stats_{rows}")
                await asyncio.to_thread(upgrade, url)
                took = await load_postgres(url, rows, now)
            n = await check_rollups(url)
            print(f"\n({db}: {n:,} executions generated, stored and rolled up in {took:.0f} s)")
            title = f"2. Stats of one API (80 % of the calls), {db}, {n:,} executions"
            slowest = print_stats(title, await stats_latency(url, now))
            print(f"(load average {load_average()})")
            targets.append(
                f"stats ≤ {STATS_TARGET_MS:g} ms, {db}, {n:,} executions: slowest {slowest:.1f} ms"
                + (
                    f" {verdict(slowest <= STATS_TARGET_MS)}"
                    if db == "PostgreSQL"
                    else " (a figure: the target is PostgreSQL's)"
                )
            )
            if db == "PostgreSQL":  # make room for the next size
                connection = await connect(plain(admin_url))
                await connection.execute(f"DROP DATABASE stats_{rows}")
                await connection.close()

    print(f"\nTargets (load average at the end {load_average()}):")
    for line in targets:
        print(f"  {line}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    parser.add_argument("--ingest", type=int, help="events (SQLite: a quarter); 200,000 (0: none)")
    parser.add_argument(
        "--pg-rows",
        type=lambda s: [int(x) for x in s.split(",")],
        help="stored executions to measure stats at, ascending (0: none); 1,000,000,10,000,000",
    )
    parser.add_argument("--sqlite-rows", type=int, help="1,000,000 (0: none)")
    parser.add_argument("--batch", type=int, help="events per read (default: the service's)")
    args = parser.parse_args()
    quick = args.quick
    if args.ingest is None:
        args.ingest = 40_000 if quick else 200_000
    if args.pg_rows is None:
        args.pg_rows = [100_000, 300_000] if quick else [1_000_000, 10_000_000]
    if args.sqlite_rows is None:
        args.sqlite_rows = 100_000 if quick else 1_000_000
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
