"""Exactly-once storage of execution events, with their rollups, in one transaction.

The raw insert skips event ids seen before, and only the rows it did insert
are added to the rollups, so a redelivered event changes nothing.
Both databases take the batch into a per-connection staging table first
(PostgreSQL: COPY; SQLite: executemany). PostgreSQL then inserts and rolls up
in one statement (pg_rollup.py). SQLite inserts with ON CONFLICT DO NOTHING
RETURNING event_id, and upserts the rollups of those events, computed in
Python (rollup.py): INSERT … ON CONFLICT DO UPDATE SET calls = calls + excluded.calls …
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import Table, func
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.ingest import pg_rollup
from analytics.ingest.rollup import COUNTERS, rollup_rows
from shared.events import ExecutionEvent
from shared.models.execution import ApiRollup, ExecutionRollup, LatencyRollup

COLUMNS = pg_rollup.COLUMNS
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


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


async def _store_postgres(session: AsyncSession, events: Sequence[ExecutionEvent]) -> int:
    connection = await session.connection()
    # Through SQLAlchemy first, so that its transaction is open before the COPY,
    # which goes straight to asyncpg. The staging table lives as long as the
    # connection and is emptied at each commit.
    await connection.exec_driver_sql(pg_rollup.CREATE_STAGING)
    # Sorts and hash aggregates of a big batch stay in memory (the default is 4 MB).
    await connection.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    await raw.copy_records_to_table(
        pg_rollup.STAGING, records=[record(e) for e in events], columns=list(COLUMNS)
    )
    row = await raw.fetchrow(pg_rollup.STORE_AND_ROLL_UP)
    return int(row[0])


async def _store_sqlite(session: AsyncSession, events: Sequence[ExecutionEvent]) -> int:
    connection = await session.connection()
    names = ", ".join(COLUMNS)
    await connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {pg_rollup.STAGING} AS "  # noqa: S608
        f"SELECT {names} FROM executions WHERE 0"
    )
    await connection.exec_driver_sql(f"DELETE FROM {pg_rollup.STAGING}")  # noqa: S608
    await connection.exec_driver_sql(
        f"INSERT INTO {pg_rollup.STAGING} ({names}) "  # noqa: S608
        f"VALUES ({', '.join('?' * len(COLUMNS))})",
        [_sqlite_record(e) for e in events],
    )
    result = await connection.exec_driver_sql(
        f"INSERT INTO executions ({names}) SELECT {names} FROM {pg_rollup.STAGING} "  # noqa: S608
        "WHERE true ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )
    inserted = {row[0] for row in result}
    await connection.exec_driver_sql(f"DELETE FROM {pg_rollup.STAGING}")  # noqa: S608
    new = [e for e in events if e.event_id in inserted]
    if new:
        await _add_rollups_sqlite(session, new)
    return len(new)


def _sqlite_record(e: ExecutionEvent) -> tuple[Any, ...]:
    # Stored as SQLAlchemy stores UTCDateTime on SQLite: naive UTC text.
    at = e.started_at.astimezone(UTC).strftime(SQLITE_TIME)
    return (*record(e)[:12], at, *record(e)[13:])


async def _add_counters_sqlite(
    session: AsyncSession, counters: Table, rows: list[dict[str, Any]]
) -> None:
    statement = sqlite_insert(counters)
    excluded = statement.excluded
    summed: dict[str, Any] = {
        name: counters.c[name] + excluded[name]
        for name in COUNTERS
        if name not in ("latency_max", "last_at")
    }
    # SQLite's two-argument max() is PostgreSQL's greatest().
    summed["latency_max"] = func.max(counters.c.latency_max, excluded.latency_max)
    summed["last_at"] = func.max(counters.c.last_at, excluded.last_at)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[c.name for c in counters.primary_key.columns], set_=summed
        ),
        rows,
    )


async def _add_rollups_sqlite(session: AsyncSession, events: Sequence[ExecutionEvent]) -> None:
    counter_rows, api_rows, histogram_rows = rollup_rows(events)
    await _add_counters_sqlite(session, ExecutionRollup.__table__, counter_rows)  # type: ignore[arg-type]
    await _add_counters_sqlite(session, ApiRollup.__table__, api_rows)  # type: ignore[arg-type]
    histograms: Table = LatencyRollup.__table__  # type: ignore[assignment]
    hstatement = sqlite_insert(histograms)
    await session.execute(
        hstatement.on_conflict_do_update(
            index_elements=[c.name for c in histograms.primary_key.columns],
            set_={"count": histograms.c["count"] + hstatement.excluded["count"]},
        ),
        histogram_rows,
    )


async def store_executions(session: AsyncSession, events: Sequence[ExecutionEvent]) -> int:
    """Store the events not stored before, add them to the rollups; how many were new.

    The caller commits. Safe to call again with the same events: nothing changes.
    """
    unique = list({e.event_id: e for e in events}.values())  # a batch may repeat an event
    if not unique:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        return await _store_postgres(session, unique)
    return await _store_sqlite(session, unique)
