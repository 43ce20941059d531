"""The statements of the ingest path, PostgreSQL's and SQLite's, made from one set of
column lists: the event's fields (shared/events.py) for `executions`, rollup.py's for
the rollup tables. The two databases differ only in how rows come (COPY and arrays on
PostgreSQL, executemany on SQLite) and in how the larger of two values is written.

A batch with an event stored before goes through a staging table: INSERT_NEW inserts
what is new (an event id stored before is skipped) and returns the ids it inserted, so
that exactly those lines are folded and added to the rollups (repository.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Float, Integer, String

from analytics.ingest.rollup import (
    API_KEY,
    COUNTER_KEY,
    COUNTERS,
    HISTOGRAM_COLUMNS,
    LARGEST,
)
from shared.events import NAMES
from shared.models import Base
from shared.models.base import UTCDateTime

COLUMNS = NAMES  # the columns of `executions`, in the order of a line: what is COPYed
STAGING = "executions_incoming"
_NAMES = ", ".join(COLUMNS)

# The staging table lives as long as the connection; PostgreSQL empties it at each commit.
CREATE_STAGING_POSTGRES = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} "
    "(LIKE executions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
CREATE_STAGING_SQLITE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} AS "  # noqa: S608  # constants only
    f"SELECT {_NAMES} FROM executions WHERE 0"
)
FILL_STAGING_SQLITE = f"INSERT INTO {STAGING} ({_NAMES}) VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608
CLEAR_STAGING = f"DELETE FROM {STAGING}"  # noqa: S608
# WHERE true: SQLite reads ON CONFLICT after a bare SELECT … FROM as part of a join.
INSERT_NEW = (
    f"INSERT INTO executions ({_NAMES}) SELECT {_NAMES} FROM {STAGING} "  # noqa: S608
    "WHERE true ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)


# The PostgreSQL type of a column of each SQLAlchemy type (BigInteger is an Integer).
_PG_TYPES = (
    (UTCDateTime, "timestamptz"),
    (BigInteger, "bigint"),
    (Integer, "int"),
    (Float, "float8"),
    (String, "text"),
)


@dataclass(frozen=True)
class RollupTable:
    """A rollup table as the upserts write it: its key, then the values added to a row."""

    name: str
    key: tuple[str, ...]
    values: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key + self.values

    def pg_type(self, column: str) -> str:
        """The PostgreSQL type of a column (of the arrays the upsert reads)."""
        kind = Base.metadata.tables[self.name].c[column].type
        return next(name for cls, name in _PG_TYPES if isinstance(kind, cls))

    def is_time(self, column: str) -> bool:
        return isinstance(Base.metadata.tables[self.name].c[column].type, UTCDateTime)

    def upsert(self, rows: str, larger: str) -> str:
        """INSERT of `rows` (a VALUES or SELECT clause) that adds each to the row of its
        key already there; `larger`: the function giving the larger of two values."""
        added = ", ".join(
            f"{c} = {larger}({self.name}.{c}, excluded.{c})"
            if c in LARGEST
            else f"{c} = {self.name}.{c} + excluded.{c}"
            for c in self.values
        )
        return (
            f"INSERT INTO {self.name} ({', '.join(self.columns)}) {rows} "
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {added}"
        )


# In the order of the lists of rollup.Rollups: counters, per-API counters, histograms.
ROLLUP_TABLES = (
    RollupTable("execution_rollups", COUNTER_KEY, COUNTERS),
    RollupTable("api_rollups", API_KEY, COUNTERS),
    RollupTable("latency_rollups", HISTOGRAM_COLUMNS[:-1], HISTOGRAM_COLUMNS[-1:]),
)


def _upsert_postgres() -> str:
    """One statement for the three tables, each reading its rows as one array per column
    ($1 …: the counters' columns, then the per-API counters', then the histograms').
    Each list is already aggregated (one row per key) and sorted in lock order."""
    parts = []
    first = 1
    for table in ROLLUP_TABLES:
        arrays = ", ".join(
            f"${first + i}::{table.pg_type(c)}[]" for i, c in enumerate(table.columns)
        )
        first += len(table.columns)
        upsert = table.upsert(f"SELECT * FROM unnest({arrays})", "greatest")  # noqa: S608
        parts.append(f"{table.name}_added AS ({upsert} RETURNING 1)")
    counts = ", ".join(f"(SELECT count(*) FROM {t.name}_added)" for t in ROLLUP_TABLES)  # noqa: S608
    return f"WITH {', '.join(parts)} SELECT {counts}"


UPSERT_ROLLUPS_POSTGRES = _upsert_postgres()
# SQLite's two-argument max() is PostgreSQL's greatest().
UPSERT_ROLLUPS_SQLITE = tuple(
    t.upsert(f"VALUES ({', '.join('?' * len(t.columns))})", "max") for t in ROLLUP_TABLES
)
