"""Exactly-once storage of execution events, with their rollups, in one transaction.

The event id is the primary key: an event stored before is never stored again,
and only the rows an insert did store are added to the rollups, so a
redelivered event changes nothing. A batch holds the events as wire-format lines
(shared/events.py), which are rows of PostgreSQL's COPY text format.

PostgreSQL (pg_rollup.py): the lines are COPYed, as they are, straight into
`executions` in a savepoint, and the batch's rollups, folded in Python, are
upserted from arrays in one statement. A batch with an event stored before (a
redelivery: rare) fails that COPY on the primary key; the savepoint is rolled back
and the batch goes through a staging table and one statement that inserts what is
new (ON CONFLICT DO NOTHING) and rolls up exactly the rows it inserted
(RETURNING). A batch the database refuses as data (a line our encoder would not
write: too long a field, say) is read again carefully, line by line: what
`executions` cannot hold is logged and dropped, the rest stored.

SQLite: the batch goes into a staging table, then INSERT … ON CONFLICT DO
NOTHING RETURNING event_id; the rollups of those rows are folded in Python and
upserted: INSERT … ON CONFLICT DO UPDATE SET calls = calls + excluded.calls …

In the same transaction, each API key called in the events stored gets its newest
call as `last_used_at` (only ever moved forward), read off the batch's rollups.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from analytics.ingest import pg_rollup
from analytics.ingest.entries import checked, checked_line
from analytics.ingest.rollup import (
    API_KEY,
    COLUMNS,
    COUNTER_KEY,
    COUNTERS,
    HISTOGRAM_COLUMNS,
    Fold,
    Rollups,
    rollups,
)
from shared.events import FIELDS, ExecutionEvent, event_line, line_values
from shared.models.execution import DAY

__all__ = [
    "COLUMNS",
    "Batch",
    "prepare",
    "prepare_rows",
    "sqlite_row",
    "store_batch",
    "store_executions",
    "store_rows",
]

log = logging.getLogger("veil.analytics.ingest")

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
Row = tuple[Any, ...]


@dataclass(frozen=True)
class Batch:
    """Events ready to store, as wire-format lines, one per event id, with the rollups
    of all of them (folded before the transaction, so that the consumer can fold the
    next batch while the database works on this one)."""

    lines: list[bytes]
    rollups: Rollups
    careful: bool = False  # every line was read carefully and checked


def _checked(lines: Iterable[bytes]) -> list[bytes]:
    out = []
    for line in lines:
        try:
            out.append(checked_line(line))
        except ValueError as exc:
            log.error("dropping malformed event %r: %s", line[:100], exc)
    return out


def prepare(lines: Iterable[bytes], *, careful: bool = False) -> Batch:
    """The lines to store (an event id once) and their rollups. `careful`: every line
    read, checked and written again (`entries.checked_line`); otherwise only those the
    fold cannot take as they are."""
    fold = Fold()
    return _prepared(fold, fold.add(_checked(lines) if careful else lines), careful)


async def prepare_in_turns(lines: list[bytes], turn: int = 1_000) -> Batch:
    """`prepare`, `turn` lines at a time, letting the event loop run in between.

    The consumer prepares a batch while the database stores the ones before, but a
    store is a task of the same event loop: it sends its data and its next statement
    only when the loop runs. Folded in one go (a quarter of a second for 25,000
    events), the batch would hold the stores in flight up for that long.
    """
    fold = Fold()
    rest: list[bytes] = []
    for start in range(0, len(lines), turn):
        rest += fold.add(lines[start : start + turn])
        await asyncio.sleep(0)
    return _prepared(fold, rest, careful=False)


def _prepared(fold: Fold, rest: list[bytes], careful: bool) -> Batch:
    if rest:
        rest = fold.add(_checked(rest))
        for line in rest:  # not expected: a line written again is one the fold takes
            log.error("dropping an event the fold cannot read: %r", line[:100])
    return Batch(fold.kept, fold.rollups(), careful)


def prepare_rows(rows: Iterable[Row]) -> Batch:
    """`prepare` execution rows (tuples in COLUMNS order)."""
    return prepare(event_line(tuple(row)) for row in rows)


def _arrays(rows: Sequence[Row], width: int) -> list[list[Any]]:
    """Rows as one list per column (UPSERT_ROLLUPS reads arrays)."""
    return [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(width)]


_KEY_ID = COUNTER_KEY.index("key_id")


def keys_last_used(folded: Rollups) -> list[tuple[str, datetime]]:
    """Each API key called in the rollups, with its newest call, ordered by key id (the
    order both concurrent stores lock `api_keys` rows in)."""
    newest: dict[str, datetime] = {}
    for row in folded[0]:
        # Every call is in exactly one day row; the day rows are the fewest.
        key_id = row[_KEY_ID]
        if key_id and row[1] == DAY:
            at = row[-1]  # last_at
            known = newest.get(key_id)
            if known is None or known < at:
                newest[key_id] = at
    return sorted(newest.items())


# The keys are locked in key id order first (FOR UPDATE in a CTE, which PostgreSQL
# does not inline): an UPDATE … FROM locks rows in whatever order its plan gives.
_TOUCH_KEYS_POSTGRES = """
WITH v AS (SELECT * FROM unnest($1::text[], $2::timestamptz[]) AS v (id, t)),
due AS MATERIALIZED (
    SELECT k.id, v.t FROM api_keys AS k JOIN v ON k.id = v.id
    WHERE k.last_used_at IS NULL OR k.last_used_at < v.t
    ORDER BY k.id
    FOR UPDATE OF k
)
UPDATE api_keys AS k SET last_used_at = due.t FROM due
WHERE k.id = due.id AND (k.last_used_at IS NULL OR k.last_used_at < due.t)
"""
_TOUCH_KEY_SQLITE = (
    "UPDATE api_keys SET last_used_at = ? WHERE id = ? "
    "AND (last_used_at IS NULL OR last_used_at < ?)"
)


async def _touch_keys_postgres(raw: Any, folded: Rollups) -> None:
    used = keys_last_used(folded)
    if used:
        ids, times = zip(*used, strict=True)
        await raw.execute(_TOUCH_KEYS_POSTGRES, list(ids), list(times))


async def _touch_keys_sqlite(connection: AsyncConnection, folded: Rollups) -> None:
    used = [(t, key_id, t) for key_id, at in keys_last_used(folded) for t in [_sqlite_time(at)]]
    if used:
        await connection.exec_driver_sql(_TOUCH_KEY_SQLITE, used)


async def _copy_data(lines: list[bytes]) -> AsyncIterator[bytes]:
    yield b"\n".join(lines) + b"\n"


async def _copy_lines(raw: Any, table: str, lines: list[bytes]) -> None:
    await raw.copy_to_table(table, source=_copy_data(lines), columns=COLUMNS, format="text")


async def _store_postgres(session: AsyncSession, batch: Batch) -> int:
    connection = await session.connection()
    # Through SQLAlchemy, so that its transaction is open before the raw calls below.
    await connection.exec_driver_sql("SAVEPOINT ingest")
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    try:
        try:
            await _copy_lines(raw, "executions", batch.lines)
        except asyncpg.UniqueViolationError:
            await raw.execute("ROLLBACK TO SAVEPOINT ingest")
            inserted = await _store_postgres_redelivered(connection, raw, batch.lines)
            if inserted:
                # The whole batch's times: the events stored before moved the keys at
                # least as far when they were stored (the times only move forward).
                await _touch_keys_postgres(raw, batch.rollups)
            return inserted
    except (asyncpg.DataError, asyncpg.NotNullViolationError) as exc:
        await raw.execute("ROLLBACK TO SAVEPOINT ingest")
        if batch.careful:
            raise
        log.warning("%d events refused (%s); reading them carefully", len(batch.lines), exc)
        return await _store_postgres(session, prepare(batch.lines, careful=True))
    await raw.execute("RELEASE SAVEPOINT ingest")
    counters, per_api, histograms = batch.rollups
    await raw.fetchrow(
        pg_rollup.UPSERT_ROLLUPS,
        *_arrays(counters, len(COUNTER_KEY) + len(COUNTERS)),
        *_arrays(per_api, len(API_KEY) + len(COUNTERS)),
        *_arrays(histograms, len(HISTOGRAM_COLUMNS)),
    )
    await _touch_keys_postgres(raw, batch.rollups)
    return len(batch.lines)


async def _store_postgres_redelivered(
    connection: AsyncConnection, raw: Any, lines: list[bytes]
) -> int:
    # The staging table lives as long as the connection and is emptied at each commit.
    await connection.exec_driver_sql(pg_rollup.CREATE_STAGING)
    # Sorts and hash aggregates of a big batch stay in memory (the default is 4 MB).
    await connection.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    await _copy_lines(raw, pg_rollup.STAGING, lines)
    row = await raw.fetchrow(pg_rollup.STORE_AND_ROLL_UP)
    return int(row[0])


def _sqlite_time(value: datetime) -> str:
    # Stored as SQLAlchemy stores UTCDateTime on SQLite: naive UTC text.
    return value.astimezone(UTC).strftime(SQLITE_TIME)


_TIMES = tuple(i for i, f in enumerate(FIELDS) if f.kind == "time")


def sqlite_row(values: Sequence[Any]) -> tuple[Any, ...]:
    """An execution row (COLUMNS order) as SQLite stores it: times as text."""
    row = list(values)
    for i in _TIMES:
        if row[i] is not None:
            row[i] = _sqlite_time(row[i])
    return tuple(row)


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


async def _store_sqlite(session: AsyncSession, batch: Batch) -> int:
    # SQLite takes whatever it is given: the checks PostgreSQL makes are made here, and
    # a batch with a line that fails them is read carefully, as on PostgreSQL.
    try:
        rows = []
        for line in batch.lines:
            values = line_values(line)
            if checked(values) is not values:
                raise ValueError("a NUL character")
            rows.append(values)
    except ValueError:
        if batch.careful:
            raise
        batch = prepare(batch.lines, careful=True)
        rows = [line_values(line) for line in batch.lines]
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
        [sqlite_row(r) for r in rows],
    )
    result = await connection.exec_driver_sql(
        f"INSERT INTO executions ({names}) SELECT {names} FROM {pg_rollup.STAGING} "  # noqa: S608
        "WHERE true ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )
    inserted = {row[0] for row in result}
    await connection.exec_driver_sql(f"DELETE FROM {pg_rollup.STAGING}")  # noqa: S608
    if len(inserted) == len(rows):
        folded = batch.rollups
    elif inserted:
        folded = rollups([r for r in rows if r[0] in inserted])
    else:
        return 0
    await _add_rollups_sqlite(connection, folded)
    await _touch_keys_sqlite(connection, folded)
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
    if not batch.lines:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        return await _store_postgres(session, batch)
    return await _store_sqlite(session, batch)


async def store_rows(session: AsyncSession, rows: Sequence[Row]) -> int:
    """`store_batch` of some execution rows (COLUMNS order)."""
    return await store_batch(session, prepare_rows(rows))


async def store_executions(session: AsyncSession, events: Sequence[ExecutionEvent]) -> int:
    """`store_batch` of some events."""
    return await store_rows(session, [e.values() for e in events])
