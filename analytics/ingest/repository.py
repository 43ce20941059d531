"""Exactly-once storage of execution events, with their rollups, in one transaction.

The event id is the primary key: an event stored before is never stored again,
and only the rows an insert did store are added to the rollups, so a
redelivered event changes nothing. Rows are tuples in `COLUMNS` order.

PostgreSQL (pg_rollup.py): the batch is COPYed straight into `executions` in a
savepoint, and its rollups, folded in Python, are upserted from arrays in one
statement. A batch with an event stored before (a redelivery: rare) fails that
COPY on the primary key; the savepoint is rolled back and the batch goes through
a staging table and one statement that inserts what is new (ON CONFLICT DO
NOTHING) and rolls up exactly the rows it inserted (RETURNING).

SQLite: the batch goes into a staging table, then INSERT … ON CONFLICT DO
NOTHING RETURNING event_id; the rollups of those rows are folded in Python and
upserted: INSERT … ON CONFLICT DO UPDATE SET calls = calls + excluded.calls …
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from analytics.ingest import pg_rollup
from analytics.ingest.rollup import (
    API_KEY,
    COLUMNS,
    COUNTER_KEY,
    COUNTERS,
    HISTOGRAM_COLUMNS,
    record,
    rollups,
)
from shared.events import ExecutionEvent

__all__ = ["COLUMNS", "Batch", "prepare", "record", "store_batch", "store_executions", "store_rows"]

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
Row = tuple[Any, ...]
Rollups = tuple[list[Row], list[Row], list[Row]]


@dataclass(frozen=True)
class Batch:
    """Execution rows ready to store, one per event id, with the rollups of all of them
    (folded before the transaction, so that the consumer can fold the next batch while
    the database works on this one)."""

    rows: list[Row]
    rollups: Rollups


def prepare(rows: Iterable[Row]) -> Batch:
    unique = list({r[0]: r for r in rows}.values())  # a batch may repeat an event
    return Batch(unique, rollups(unique))


def _arrays(rows: Sequence[Row], width: int) -> list[list[Any]]:
    """Rows as one list per column (UPSERT_ROLLUPS reads arrays)."""
    return [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(width)]


async def _store_postgres(session: AsyncSession, batch: Batch) -> int:
    rows = batch.rows
    connection = await session.connection()
    # Through SQLAlchemy, so that its transaction is open before the raw calls below.
    await connection.exec_driver_sql("SAVEPOINT ingest")
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    try:
        await raw.copy_records_to_table("executions", records=rows, columns=COLUMNS)
    except asyncpg.UniqueViolationError:
        await raw.execute("ROLLBACK TO SAVEPOINT ingest")
        return await _store_postgres_redelivered(connection, raw, rows)
    await raw.execute("RELEASE SAVEPOINT ingest")
    counters, per_api, histograms = batch.rollups
    await raw.fetchrow(
        pg_rollup.UPSERT_ROLLUPS,
        *_arrays(counters, len(COUNTER_KEY) + len(COUNTERS)),
        *_arrays(per_api, len(API_KEY) + len(COUNTERS)),
        *_arrays(histograms, len(HISTOGRAM_COLUMNS)),
    )
    return len(rows)


async def _store_postgres_redelivered(
    connection: AsyncConnection, raw: Any, rows: Sequence[Row]
) -> int:
    # The staging table lives as long as the connection and is emptied at each commit.
    await connection.exec_driver_sql(pg_rollup.CREATE_STAGING)
    # Sorts and hash aggregates of a big batch stay in memory (the default is 4 MB).
    await connection.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    await raw.copy_records_to_table(pg_rollup.STAGING, records=rows, columns=COLUMNS)
    row = await raw.fetchrow(pg_rollup.STORE_AND_ROLL_UP)
    return int(row[0])


def _sqlite_time(value: datetime) -> str:
    # Stored as SQLAlchemy stores UTCDateTime on SQLite: naive UTC text.
    return value.astimezone(UTC).strftime(SQLITE_TIME)


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


async def _store_sqlite(session: AsyncSession, batch: Batch) -> int:
    rows = batch.rows
    connection = await session.connection()
    names = ", ".join(COLUMNS)
    await connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {pg_rollup.STAGING} AS "  # noqa: S608
        f"SELECT {names} FROM executions WHERE 0"
    )
    await connection.exec_driver_sql(f"DELETE FROM {pg_rollup.STAGING}")  # noqa: S608
    await connection.exec_driver_sql(
        f"INSERT INTO {pg_rollup.STAGING} ({names}) "  # noqa: S608
        f"VALUES ({_placeholders(len(COLUMNS))})",
        [(*r[:12], _sqlite_time(r[12]), *r[13:]) for r in rows],
    )
    result = await connection.exec_driver_sql(
        f"INSERT INTO executions ({names}) SELECT {names} FROM {pg_rollup.STAGING} "  # noqa: S608
        "WHERE true ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )
    inserted = {row[0] for row in result}
    await connection.exec_driver_sql(f"DELETE FROM {pg_rollup.STAGING}")  # noqa: S608
    if len(inserted) == len(rows):
        await _add_rollups_sqlite(connection, batch.rollups)
    elif inserted:
        await _add_rollups_sqlite(connection, rollups([r for r in rows if r[0] in inserted]))
    return len(inserted)


def _add_counters_sql(table: str, key: tuple[str, ...]) -> str:
    summed = [
        f"{c} = {table}.{c} + excluded.{c}" for c in COUNTERS if c not in ("latency_max", "last_at")
    ]
    # SQLite's two-argument max() is PostgreSQL's greatest().
    summed += [f"{c} = max({table}.{c}, excluded.{c})" for c in ("latency_max", "last_at")]
    return (
        f"INSERT INTO {table} ({', '.join(key + COUNTERS)}) "  # noqa: S608  # constants only
        f"VALUES ({_placeholders(len(key) + len(COUNTERS))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(summed)}"
    )


_ADD_COUNTERS = _add_counters_sql("execution_rollups", COUNTER_KEY)
_ADD_API_COUNTERS = _add_counters_sql("api_rollups", API_KEY)
_ADD_HISTOGRAMS = (
    f"INSERT INTO latency_rollups ({', '.join(HISTOGRAM_COLUMNS)}) "  # noqa: S608
    f"VALUES ({_placeholders(len(HISTOGRAM_COLUMNS))}) "
    "ON CONFLICT (api_id, resolution_s, metric, bucket_start, bucket) "
    "DO UPDATE SET count = latency_rollups.count + excluded.count"
)


async def _add_rollups_sqlite(connection: AsyncConnection, folded: Rollups) -> None:
    counters, per_api, histograms = folded
    await connection.exec_driver_sql(
        _ADD_COUNTERS,
        [(*r[:2], _sqlite_time(r[2]), *r[3:-1], _sqlite_time(r[-1])) for r in counters],
    )
    await connection.exec_driver_sql(
        _ADD_API_COUNTERS,
        [(*r[:2], _sqlite_time(r[2]), *r[3:-1], _sqlite_time(r[-1])) for r in per_api],
    )
    await connection.exec_driver_sql(
        _ADD_HISTOGRAMS, [(*r[:3], _sqlite_time(r[3]), *r[4:]) for r in histograms]
    )


async def store_batch(session: AsyncSession, batch: Batch) -> int:
    """Store the rows of the batch not stored before and add them to the rollups; how
    many were new. The caller commits. Safe to call again with the same rows: nothing
    changes.
    """
    if not batch.rows:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        return await _store_postgres(session, batch)
    return await _store_sqlite(session, batch)


async def store_rows(session: AsyncSession, rows: Sequence[Row]) -> int:
    """`store_batch` of some execution rows (COLUMNS order)."""
    return await store_batch(session, prepare(rows))


async def store_executions(session: AsyncSession, events: Sequence[ExecutionEvent]) -> int:
    """`store_batch` of some events."""
    return await store_rows(session, [record(e) for e in events])
