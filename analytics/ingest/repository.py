"""Exactly-once storage of execution events, with their rollups, in one transaction.

The event id is the primary key: an event stored before is never stored again,
and only the events an insert did store are added to the rollups, so a
redelivered event changes nothing. A batch holds the events as wire-format lines
(shared/events.py), which are rows of PostgreSQL's COPY text format, and their
rollups, folded in Python (rollup.Fold) before the transaction.

PostgreSQL: the lines are COPYed, as they are, straight into `executions` in a
savepoint. A batch with an event stored before (a redelivery: rare) fails that
COPY on the primary key; the savepoint is rolled back and the lines are COPYed
into a staging table instead, from which INSERT … ON CONFLICT DO NOTHING
RETURNING event_id stores what is new. SQLite: every batch takes that staging
path (its rows bound by executemany). On both, the rollups added are the batch's
when every event was new, otherwise those of the lines whose ids were inserted,
folded again: one fold for every path. They are upserted (INSERT … ON CONFLICT
DO UPDATE SET calls = calls + excluded.calls …) by statements made from the same
column lists (statements.py), in one statement from arrays on PostgreSQL. A
batch the database refuses as data (a line our encoder would not write: too long
a field, say) is read again carefully, line by line: what `executions` cannot
hold is logged and dropped, the rest stored.

In the same transaction, each API key called in the events stored gets its newest
call as `last_used_at` (only ever moved forward), read off the stored rollups.
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

from analytics.ingest import statements
from analytics.ingest.entries import checked, checked_line
from analytics.ingest.rollup import COUNTER_KEY, Fold, Rollups
from analytics.ingest.statements import COLUMNS, ROLLUP_TABLES, STAGING
from shared.events import FIELDS, INDEX, ExecutionEvent, event_line, line_values
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
    """Rows as one list per column (UPSERT_ROLLUPS_POSTGRES reads arrays)."""
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


_EVENT_ID = INDEX["event_id"]


def _event_id(line: bytes) -> str:
    field = line.split(b"\t", _EVENT_ID + 1)[_EVENT_ID]
    return line_values(line)[_EVENT_ID] if b"\\" in field else field.decode()


def _stored_rollups(batch: Batch, inserted: set[str]) -> Rollups:
    """The rollups of the batch's events that were inserted: the batch's own when every
    one was, otherwise the fold of exactly those lines."""
    if len(inserted) == len(batch.lines):
        return batch.rollups
    fold = Fold()
    if fold.add([line for line in batch.lines if _event_id(line) in inserted]):
        raise ValueError("a line of a prepared batch that the fold does not take")
    return fold.rollups()


async def _store_postgres(session: AsyncSession, batch: Batch) -> int:
    connection = await session.connection()
    # Through SQLAlchemy, so that its transaction is open before the raw calls below.
    await connection.exec_driver_sql("SAVEPOINT ingest")
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    try:
        try:
            await _copy_lines(raw, "executions", batch.lines)
            folded = batch.rollups
            stored = len(batch.lines)
        except asyncpg.UniqueViolationError:
            await raw.execute("ROLLBACK TO SAVEPOINT ingest")
            inserted = await _store_postgres_redelivered(connection, raw, batch.lines)
            if not inserted:
                return 0
            folded, stored = _stored_rollups(batch, inserted), len(inserted)
    except (asyncpg.DataError, asyncpg.NotNullViolationError) as exc:
        await raw.execute("ROLLBACK TO SAVEPOINT ingest")
        if batch.careful:
            raise
        log.warning("%d events refused (%s); reading them carefully", len(batch.lines), exc)
        return await _store_postgres(session, prepare(batch.lines, careful=True))
    await raw.execute("RELEASE SAVEPOINT ingest")
    arrays = [
        column
        for rows, table in zip(folded, ROLLUP_TABLES, strict=True)
        for column in _arrays(rows, len(table.columns))
    ]
    await raw.fetchrow(statements.UPSERT_ROLLUPS_POSTGRES, *arrays)
    await _touch_keys_postgres(raw, folded)
    return stored


async def _store_postgres_redelivered(
    connection: AsyncConnection, raw: Any, lines: list[bytes]
) -> set[str]:
    """The lines through the staging table: the ids of the events inserted."""
    await connection.exec_driver_sql(statements.CREATE_STAGING_POSTGRES)
    await _copy_lines(raw, STAGING, lines)
    inserted = {row[0] for row in await raw.fetch(statements.INSERT_NEW)}
    await raw.execute(statements.CLEAR_STAGING)  # for a next batch in this transaction
    return inserted


def _sqlite_time(value: datetime) -> str:
    # Stored as SQLAlchemy stores UTCDateTime on SQLite: naive UTC text.
    return value.astimezone(UTC).strftime(SQLITE_TIME)


def _sqlite_rows(rows: Iterable[Sequence[Any]], times: Sequence[int]) -> list[Row]:
    """Rows as SQLite stores them: the values at `times` as text."""
    out = []
    for values in rows:
        row = list(values)
        for i in times:
            if row[i] is not None:
                row[i] = _sqlite_time(row[i])
        out.append(tuple(row))
    return out


_TIMES = tuple(i for i, f in enumerate(FIELDS) if f.kind == "time")
_ROLLUP_TIMES = [tuple(i for i, c in enumerate(t.columns) if t.is_time(c)) for t in ROLLUP_TABLES]


def sqlite_row(values: Sequence[Any]) -> Row:
    """An execution row (COLUMNS order) as SQLite stores it: times as text."""
    return _sqlite_rows([values], _TIMES)[0]


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
    await connection.exec_driver_sql(statements.CREATE_STAGING_SQLITE)
    await connection.exec_driver_sql(statements.CLEAR_STAGING)
    await connection.exec_driver_sql(statements.FILL_STAGING_SQLITE, _sqlite_rows(rows, _TIMES))
    result = await connection.exec_driver_sql(statements.INSERT_NEW)
    inserted = {row[0] for row in result}
    await connection.exec_driver_sql(statements.CLEAR_STAGING)
    if not inserted:
        return 0
    folded = _stored_rollups(batch, inserted)
    for upsert, rollup_rows, times in zip(
        statements.UPSERT_ROLLUPS_SQLITE, folded, _ROLLUP_TIMES, strict=True
    ):
        await connection.exec_driver_sql(upsert, _sqlite_rows(rollup_rows, times))
    await _touch_keys_sqlite(connection, folded)
    return len(inserted)


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
